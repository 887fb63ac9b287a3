// One measured phase (phase.hpp): connecting its senders and receivers, the measured window and
// its figures, the peak search, the slow-receiver phase and the interleaved overload cycles.
#include "relay_openloop/phase.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

namespace relay_openloop {
namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What a flood sender writes per write(): spec.k masked WebSocket messages, each one datagram
// frame to `dst` (a batch frame of spec.batch datagrams when set); nullopt when the frame is over
// the relay protocol's limit (relay.md §5.4).
std::optional<relay::Bytes> datagram_block(const relay::EndpointId& dst, const PhaseSpec& spec) {
  const relay::Bytes contents(spec.size * (spec.batch ? spec.batch : 1), 0xa5);
  const auto frame = relay::encode_client_datagram(
      dst, relay::Ecn::NotEct, static_cast<std::uint16_t>(spec.batch ? spec.size : 0), contents);
  if (!frame) return std::nullopt;
  relay::Bytes block;
  for (std::size_t k = 0; k < spec.k; ++k) append_ws_message(block, *frame);
  return block;
}

}  // namespace

PhaseResult run_phase(const Target& target, const PhaseSpec& spec, Sink* sink,
                      const Target* rx_target) {
  const Target& rx_at = rx_target ? *rx_target : target;
  PhaseResult r;
  std::atomic<bool> stop_senders{false}, stop_receivers{false};
  std::size_t per_frame = spec.batch ? spec.batch : 1;

  std::vector<relay::SecretKey> rx_keys, tx_keys;
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    rx_keys.push_back(relay::SecretKey::generate());
    tx_keys.push_back(relay::SecretKey::generate());
  }
  auto by_rx_key = relay::SecretKey::generate();
  auto by_tx_key = relay::SecretKey::generate();
  bool bystander = spec.bystander && target.relay;

  std::vector<std::unique_ptr<Stream>> rx, tx, sinks;
  std::unique_ptr<Stream> by_rx, by_tx;
  std::vector<std::unique_ptr<ReceiverStats>> rx_stats;
  std::vector<std::unique_ptr<SenderStats>> tx_stats;
  std::vector<relay::Bytes> blocks;
  std::size_t message_bytes = 0;
  try {
    if (target.relay) {
      for (auto& key : rx_keys) rx.push_back(rx_at.connect(key));
      if (bystander) by_rx = rx_at.connect(by_rx_key);
    }
    for (std::size_t i = 0; i < spec.pairs; ++i) {
      tx.push_back(target.connect(tx_keys[i]));
      if (!target.relay) sinks.push_back(sink->accept_one());
    }
    if (bystander) by_tx = target.connect(by_tx_key);
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  if (!tx.empty()) r.tls = tx.front()->tls_info();
  if (!sinks.empty()) r.upstream_tls = sinks.front()->tls_info();
  const auto& flood_rx = target.relay ? rx : sinks;
  r.tls13_records_counted =
      spec.count_tls13_records && !flood_rx.empty() &&
      std::all_of(flood_rx.begin(), flood_rx.end(), [](auto& s) { return s->tls13_socket() >= 0; });
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    auto block = datagram_block(rx_keys[i].public_key(), spec);
    if (!block) {
      r.error = "frame too large for the relay protocol (relay.md §5.4)";
      return r;
    }
    message_bytes = block->size() / spec.k;
    blocks.push_back(std::move(*block));
  }

  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    rx_stats.push_back(std::make_unique<ReceiverStats>());
    tx_stats.push_back(std::make_unique<SenderStats>());
  }
  ReceiverStats by_stats;
  BystanderLog by_log;
  std::atomic<std::uint64_t> by_sent{0};
  std::atomic<bool> by_failed{false};
  auto by_max = static_cast<std::size_t>((spec.seconds + 1) * 1000 +
                                         static_cast<double>(spec.warmup.count()));
  by_log.seen.assign(by_max, false);
  by_log.delay_ns.reserve(by_max);
  if (spec.relay_cpu_delay) {
    by_log.relay_pid = target.pid;
    by_log.relay_cpu_ms.reserve(by_max);
  }
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    if (r.tls13_records_counted) {
      threads.emplace_back(tls13_record_receiver, flood_rx[i]->tls13_socket(),
                           std::ref(*rx_stats[i]), target.relay ? &stop_receivers : nullptr);
    } else if (target.relay) {
      threads.emplace_back(relay_receiver, std::ref(*rx[i]), std::ref(*rx_stats[i]),
                           std::cref(stop_receivers), nullptr, nullptr);
    } else {
      threads.emplace_back(sink_receiver, std::ref(*sinks[i]), std::ref(*rx_stats[i]));
    }
  }
  if (bystander) {
    threads.emplace_back(relay_receiver, std::ref(*by_rx), std::ref(by_stats),
                         std::cref(stop_receivers), &by_log, nullptr);
  }
  std::thread pinger;
  std::atomic<bool> stop_pinger{false};
  if (spec.pinger && target.relay) {
    pinger = std::thread(ping_timer, target.port, target.tls ? target.client_tls : nullptr,
                         std::cref(stop_pinger), std::ref(r.ping));
  }
  std::vector<std::thread> senders;
  double rate_each = spec.rate_per_s / static_cast<double>(spec.pairs) /
                     static_cast<double>(per_frame);  // frames/s per sender
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    senders.emplace_back(flood_sender, std::ref(*tx[i]), std::cref(blocks[i]), spec.k, rate_each,
                         std::cref(stop_senders), std::ref(*tx_stats[i]));
  }
  if (bystander) {
    senders.emplace_back(bystander_sender, std::ref(*by_tx), by_rx_key.public_key(), spec.size,
                         by_max, by_log.relay_pid, std::cref(stop_senders), std::ref(by_sent),
                         std::ref(by_failed));
  }

  auto sum_rx = [&] {
    std::uint64_t d = 0, b = 0;
    for (auto& s : rx_stats) {
      d += s->datagrams.load();
      b += s->bytes.load();
    }
    return std::pair{d, b};
  };
  auto sum_tx = [&] {
    std::uint64_t f = 0;
    for (auto& s : tx_stats) f += s->frames.load();
    return f;
  };
  std::this_thread::sleep_until(t0 + spec.warmup);
  auto [d0, b0] = sum_rx();
  auto f0 = sum_tx();
  double cpu0 = lt::cpu_seconds(target.pid, !target.relay);
  const double steal_relay0 = lt::steal_seconds(spec.relay_cpu);
  const double steal_gen0 = lt::steal_seconds(spec.gen_cpu);
  auto w0 = Clock::now();
  std::this_thread::sleep_until(w0 + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(spec.seconds)));
  auto [d1, b1] = sum_rx();
  auto f1 = sum_tx();
  double cpu1 = lt::cpu_seconds(target.pid, !target.relay);
  double window = seconds_since(w0);
  r.steal_relay_pct = (lt::steal_seconds(spec.relay_cpu) - steal_relay0) / window * 100;
  r.steal_gen_pct = (lt::steal_seconds(spec.gen_cpu) - steal_gen0) / window * 100;

  stop_senders = true;
  for (auto& s : tx) s->abort();  // a sender may be blocked in write() on a full socket
  if (by_tx) by_tx->abort();
  for (auto& t : senders) t.join();
  // Grace for bystander datagrams still in flight: they count as delivered, with their delay.
  auto grace_end = Clock::now() + 3s;
  while (bystander && by_log.received.load() < by_sent.load() && Clock::now() < grace_end) {
    std::this_thread::sleep_for(10ms);
  }
  stop_pinger = true;
  if (pinger.joinable()) pinger.join();
  stop_receivers = true;
  for (auto& s : rx) s->abort();
  if (by_rx) by_rx->abort();
  for (auto& s : sinks) s->abort();
  for (auto& t : threads) t.join();

  r.ran = true;
  r.cpu_cores = (cpu1 - cpu0) / window;
  r.offered_per_s = static_cast<double>(f1 - f0) * static_cast<double>(per_frame) / window;
  if (target.relay && !r.tls13_records_counted) {
    r.delivered_per_s = static_cast<double>(d1 - d0) / window;
    r.mb_per_s = static_cast<double>(b1 - b0) / window / 1e6;
  } else {
    // nginx forwards raw bytes: whole messages of the same size as the relay's input. The relay's
    // receivers counted the bytes of its messages (RelayToClientDatagram(Batch), relay.md §5.3,
    // in an unmasked WebSocket message): nothing else reaches a flood receiver within a phase
    // (the relay's first keepalive Ping comes after 16 s, §6.5).
    const std::size_t frame = relay::server_datagram_size(
        static_cast<std::uint16_t>(spec.batch ? spec.size : 0), spec.size * per_frame);
    const std::size_t delivered_message_bytes = target.relay ? frame + (frame < 126     ? 2
                                                                        : frame < 65536 ? 4
                                                                                        : 10)
                                                             : message_bytes;
    double messages = static_cast<double>(b1 - b0) / static_cast<double>(delivered_message_bytes);
    r.delivered_per_s = messages * static_cast<double>(per_frame) / window;
    r.mb_per_s = messages * static_cast<double>(spec.size * per_frame) / window / 1e6;
  }
  r.receivers = spec.pairs + (bystander ? 1 : 0);
  for (auto& s : rx_stats) {
    if (s->disconnected) {
      ++r.disconnected;
      r.disconnect_reason = s->end_reason;
    }
  }
  if (by_stats.disconnected) {
    ++r.disconnected;
    r.disconnect_reason = "bystander: " + by_stats.end_reason;
  }
  for (auto& s : tx_stats) r.senders_failed += s->failed ? 1 : 0;
  r.bystander_sender_failed = by_failed.load();
  if (bystander) {
    r.by_sent = by_sent.load();
    r.by_received = by_log.received.load();
    std::vector<double> ms;
    for (auto ns : by_log.delay_ns) ms.push_back(static_cast<double>(ns) / 1e6);
    r.by_p50_ms = percentile(ms, 0.50);
    r.by_p99_ms = percentile(ms, 0.99);
    r.by_max_ms = percentile(ms, 1.0);
    if (!by_log.relay_cpu_ms.empty()) r.by_cpu_p99_ms = percentile(by_log.relay_cpu_ms, 0.99);
  }
  return r;
}

void print_result(const std::string& label, const PhaseResult& r, bool relay) {
  if (!r.ran) {
    std::printf("%-28s did not run: %s\n", label.c_str(), r.error.c_str());
    std::fflush(stdout);
    return;
  }
  // CPU microseconds per delivered datagram: on a machine that other work keeps busy the
  // throughput follows the CPU share the process got; this figure does not.
  std::printf(
      "%-28s delivered %11.0f datagrams/s %8.1f MB/s | offered %11.0f/s | CPU %.2f | %.3f "
      "CPU-us/datagram\n",
      label.c_str(), r.delivered_per_s, r.mb_per_s, r.offered_per_s, r.cpu_cores,
      r.delivered_per_s > 0 ? r.cpu_cores / r.delivered_per_s * 1e6 : NAN);
  // Time the hypervisor gave to other guests: throughput and delays of such a phase follow it.
  if (!std::isnan(r.steal_relay_pct) || !std::isnan(r.steal_gen_pct)) {
    std::printf("%-28s host steal: relay's CPU %.1f %%, generator's CPU %.1f %%\n", "",
                r.steal_relay_pct, r.steal_gen_pct);
  }
  // What was negotiated, so that a TLS comparison is seen to be like with like.
  if (!r.tls.empty()) {
    std::printf("%-28s TLS: %s%s%s%s\n", "", r.tls.c_str(),
                r.upstream_tls.empty() ? "" : "; nginx -> sink: ", r.upstream_tls.c_str(),
                r.tls13_records_counted ? " (receivers count records, not decrypting)" : "");
  }
  if (relay) {
    std::printf("%-28s receivers disconnected %zu/%zu%s%s; senders cut off %zu%s\n", "",
                r.disconnected, r.receivers, r.disconnected ? " (last: " : "",
                r.disconnected ? (r.disconnect_reason + ")").c_str() : "", r.senders_failed,
                r.bystander_sender_failed ? " + the bystander's" : "");
    if (r.by_sent) {
      double loss = 100.0 * static_cast<double>(r.by_sent - std::min(r.by_sent, r.by_received)) /
                    static_cast<double>(r.by_sent);
      std::printf(
          "%-28s bystander %llu sent, %llu received, loss %.2f %%, one-way p50 %.2f ms p99 "
          "%.2f ms max %.2f ms\n",
          "", static_cast<unsigned long long>(r.by_sent),
          static_cast<unsigned long long>(r.by_received), loss, r.by_p50_ms, r.by_p99_ms,
          r.by_max_ms);
      if (!std::isnan(r.by_cpu_p99_ms))
        std::printf("%-28s bystander in flight: relay CPU time p99 %.2f ms\n", "", r.by_cpu_p99_ms);
    }
    if (!r.ping.ms.empty() || r.ping.failed) {
      std::printf("%-28s GET /ping %zu ok, %llu failed, p50 %.2f ms p99 %.2f ms max %.2f ms\n", "",
                  r.ping.ms.size(), static_cast<unsigned long long>(r.ping.failed),
                  percentile(r.ping.ms, 0.5), percentile(r.ping.ms, 0.99),
                  percentile(r.ping.ms, 1.0));
    }
  }
  std::fflush(stdout);
}

double find_peak(const Target& target, PhaseSpec spec, const Target* rx_target) {
  spec.seconds = 1;
  spec.warmup = 300ms;
  spec.bystander = spec.pinger = false;
  double peak = 0;
  for (double rate = 8000; rate < 1e8; rate *= 2) {
    spec.rate_per_s = rate;
    auto r = run_phase(target, spec, nullptr, rx_target);
    if (!r.ran) {
      std::printf("%-28s did not run: %s\n", spec.label.empty() ? "relay ramp" : spec.label.c_str(),
                  r.error.c_str());
      break;
    }
    std::printf("%-28s offered %11.0f/s delivered %11.0f datagrams/s\n",
                ((spec.label.empty() ? std::string("relay") : spec.label) + " ramp " +
                 std::to_string(static_cast<long long>(rate)) + "/s")
                    .c_str(),
                r.offered_per_s, r.delivered_per_s);
    std::fflush(stdout);
    peak = std::max(peak, r.delivered_per_s);
    if (r.delivered_per_s < 0.9 * r.offered_per_s || r.offered_per_s < 0.9 * rate) break;
  }
  return peak;
}

SlowResult run_slow_phase(const Target& target, const PhaseSpec& spec, double bytes_per_s) {
  SlowResult r;
  const auto rx_key = relay::SecretKey::generate(), tx_key = relay::SecretKey::generate();
  std::unique_ptr<Stream> rx, tx;
  try {
    rx = target.connect(rx_key);
    tx = target.connect(tx_key);
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  const auto block = datagram_block(rx_key.public_key(), spec);
  if (!block) {
    r.error = "frame too large for the relay protocol (relay.md §5.4)";
    return r;
  }
  ReceiverStats rx_stats;
  SenderStats tx_stats;
  std::atomic<bool> stop_rx{false}, stop_tx{false};
  r.reader.bytes_per_s = bytes_per_s;
  r.reader.measure_from_ns =
      now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(spec.warmup).count();
  std::thread receiver(relay_receiver, std::ref(*rx), std::ref(rx_stats), std::cref(stop_rx),
                       nullptr, &r.reader);
  std::thread sender(flood_sender, std::ref(*tx), std::cref(*block), spec.k, 0.0,
                     std::cref(stop_tx), std::ref(tx_stats));
  std::this_thread::sleep_for(spec.warmup);
  const auto d0 = rx_stats.datagrams.load();
  std::this_thread::sleep_for(std::chrono::duration<double>(spec.seconds));
  const auto d1 = rx_stats.datagrams.load();
  // Pongs still queued get the time one more Ping interval takes, then both ends stop.
  std::this_thread::sleep_for(kSlowPingInterval);
  stop_tx = true;
  tx->abort();
  sender.join();
  stop_rx = true;
  rx->abort();
  receiver.join();
  r.delivered_per_s = static_cast<double>(d1 - d0) / spec.seconds;
  r.disconnected = rx_stats.disconnected;
  r.disconnect_reason = rx_stats.end_reason;
  r.ran = true;
  return r;
}

void print_slow_result(const SlowResult& r, double bytes_per_s) {
  const std::string label = "relay slow receiver";
  if (!r.ran) {
    std::printf("%-28s did not run: %s\n", label.c_str(), r.error.c_str());
    return;
  }
  std::printf(
      "%-28s reads %.1f MB/s: Pong delay p50 %.1f ms p99 %.1f ms max %.1f ms (%zu of %llu Pings "
      "answered) | delivered %.0f datagrams/s | %s\n",
      label.c_str(), bytes_per_s / 1e6, percentile(r.reader.pong_ms, 0.5),
      percentile(r.reader.pong_ms, 0.99), percentile(r.reader.pong_ms, 1.0),
      r.reader.pong_ms.size(), static_cast<unsigned long long>(r.reader.pings_sent),
      r.delivered_per_s,
      r.disconnected ? ("disconnected: " + r.disconnect_reason).c_str() : "not disconnected");
  std::fflush(stdout);
}

InterleavedOverload interleaved_overload(const Target& target, PhaseSpec spec, double peak,
                                         int cycles) {
  InterleavedOverload out;
  double rate = peak;
  for (int c = 1; c <= cycles; ++c) {
    spec.rate_per_s = rate;
    const auto paced = run_phase(target, spec, nullptr);
    spec.rate_per_s = 4 * rate;
    const auto over4 = run_phase(target, spec, nullptr);
    spec.rate_per_s = 16 * rate;
    const auto over16 = run_phase(target, spec, nullptr);
    if (!paced.ran || !over4.ran || !over16.ran) {
      std::printf("%-28s cycle %d did not run: %s\n", "relay interleaved", c,
                  (paced.error + over4.error + over16.error).c_str());
      break;
    }
    ++out.cycles;
    const bool sustained = paced.delivered_per_s >= 0.97 * rate;
    std::printf(
        "%-28s cycle %d: paced %9.0f/s delivered %9.0f%s | 4x %9.0f (%.3f) | 16x %9.0f (%.3f)\n",
        "relay interleaved", c, rate, paced.delivered_per_s, sustained ? "" : " (not sustained)",
        over4.delivered_per_s, over4.delivered_per_s / paced.delivered_per_s,
        over16.delivered_per_s, over16.delivered_per_s / paced.delivered_per_s);
    std::fflush(stdout);
    if (sustained) {
      out.ratio4.push_back(over4.delivered_per_s / paced.delivered_per_s);
      out.ratio16.push_back(over16.delivered_per_s / paced.delivered_per_s);
      rate *= 1.03;
    } else {
      rate *= 0.9;
    }
  }
  return out;
}

}  // namespace relay_openloop
