// Relay throughput vs a plain TCP proxy (socat) on loopback, in one run.
//
// Phase 1: iroh-relay as a child process; N pairs of RelayClients in this process, each sender
// pushing S-byte datagrams to its receiver for T seconds. Phase 2: socat as a child process
// forwarding N TCP connections from this process to a sink in this process, the same payload
// bytes. Both proxies get the same machine and the same kind of load generator, so the ratio of
// delivered MB/s says what the relay protocol costs compared to moving the bytes at all.
// A benchmark, not a test: it prints and exits 0 unless it could not run at all.
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "iroh/relay_client.hpp"
#include "relay_harness.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using iroh::client::ReceivedDatagram;
using iroh::client::RelayClient;
using iroh::loadtest::Args;
namespace relay = iroh::relay;

constexpr const char* kUsage =
    "usage: relay_throughput IROH_RELAY_BINARY [options]\n"
    "  --pairs=N          sender/receiver pairs (default 4)\n"
    "  --size=S           datagram payload bytes (default 1200)\n"
    "  --seconds=T        duration of each phase, 2..120 (default 10)\n"
    "  --datagrams=D      stop each sender after D datagrams (default 0 = only T bounds it)\n"
    "  --warmup-ms=W      not measured at the start of each phase (default 1000)\n"
    "  --tcp-batch=B      datagrams per write() on the TCP path (default 16, like a burst)\n"
    "  --socat=PATH       socat binary (default socat)\n"
    "  --relay-only / --socat-only\n";

struct Options {
  std::string relay_binary;
  std::string socat = "socat";
  int pairs = 4;
  std::size_t size = 1200;
  std::chrono::seconds duration{10};
  std::uint64_t datagrams = 0;
  std::chrono::milliseconds warmup{1000};
  std::size_t tcp_batch = 16;
};

double self_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

// Delivered-bytes counter sampled at the start and end of the measured window, together with
// the CPU time of the proxy under test and of this process.
struct Window {
  std::uint64_t bytes = 0;
  std::uint64_t datagrams = 0;
  bool stop = false;
  std::uint64_t bytes_at_start = 0, bytes_at_end = 0;
  std::uint64_t datagrams_at_start = 0, datagrams_at_end = 0;
  double proxy_cpu_start = 0, proxy_cpu_end = 0;
  double self_cpu_start = 0, self_cpu_end = 0;
  std::chrono::steady_clock::time_point start, end;

  double seconds() const { return std::chrono::duration<double>(end - start).count(); }
  double mb_per_s() const { return (bytes_at_end - bytes_at_start) / seconds() / 1e6; }
  double datagrams_per_s() const { return (datagrams_at_end - datagrams_at_start) / seconds(); }
  double proxy_cores() const { return (proxy_cpu_end - proxy_cpu_start) / seconds(); }
  double self_cores() const { return (self_cpu_end - self_cpu_start) / seconds(); }
};

asio::awaitable<void> measure(Window& w, const Options& o, std::function<double()> proxy_cpu) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  timer.expires_after(o.warmup);
  co_await timer.async_wait(asio::use_awaitable);
  w.start = std::chrono::steady_clock::now();
  w.bytes_at_start = w.bytes;
  w.datagrams_at_start = w.datagrams;
  w.proxy_cpu_start = proxy_cpu();
  w.self_cpu_start = self_cpu_seconds();
  timer.expires_after(o.duration - o.warmup);
  co_await timer.async_wait(asio::use_awaitable);
  w.end = std::chrono::steady_clock::now();
  w.bytes_at_end = w.bytes;
  w.datagrams_at_end = w.datagrams;
  w.proxy_cpu_end = proxy_cpu();
  w.self_cpu_end = self_cpu_seconds();
  w.stop = true;
}

relay::Bytes payload(std::size_t size) {
  relay::Bytes out(size);
  std::mt19937 rng(42);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

// Runs `ctx` until `done` or `limit`.
void run_until(asio::io_context& ctx, const bool& done, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < deadline) ctx.run_for(50ms);
}

// ---- relay phase ----------------------------------------------------------------------------

struct RelayResult {
  Window window;
  std::uint64_t written = 0, received = 0, client_drops = 0;
  bool ok = false;
};

asio::awaitable<void> relay_sender(RelayClient& client, relay::EndpointId dst,
                                   const relay::Bytes& bytes, const Options& o, Window& w) {
  std::uint64_t sent = 0;
  try {
    while (!w.stop && (o.datagrams == 0 || sent < o.datagrams)) {
      auto space = client.send_queue_space();
      if (space == 0) {
        co_await client.wait_send_space(256);
        continue;
      }
      for (; space > 0 && (o.datagrams == 0 || sent < o.datagrams); --space, ++sent) {
        client.send(dst, bytes);
      }
    }
  } catch (const std::exception&) {
    // Closed at the end of the phase.
  }
}

asio::awaitable<void> relay_receiver(RelayClient& client, Window& w) {
  try {
    for (;;) {
      auto event = co_await client.receive();
      if (auto* d = std::get_if<ReceivedDatagram>(&event)) {
        w.bytes += d->contents.size();
        ++w.datagrams;
      }
    }
  } catch (const std::exception&) {
  }
}

RelayResult run_relay_phase(const Options& o) {
  RelayResult result;
  iroh::loadtest::TempDir dir;
  auto port = iroh::loadtest::free_tcp_port();
  auto config = iroh::loadtest::write_relay_config(dir.path(), port);
  iroh::loadtest::ChildProcess relay_process({o.relay_binary, "--config", config.string()},
                                             dir.path() / "relay.log");
  if (!iroh::loadtest::wait_for_port(port, 10s)) {
    std::cerr << "relay did not listen on 127.0.0.1:" << port << " within 10 s; its log:\n"
              << iroh::loadtest::read_tail(dir.path() / "relay.log") << "\n";
    return result;
  }
  asio::io_context ctx;
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::vector<std::unique_ptr<RelayClient>> senders, receivers;
  for (int i = 0; i < o.pairs; ++i) {
    iroh::client::RelayClientOptions options;
    options.send_queue_capacity = 1024;
    options.receive_queue_capacity = 4096;
    senders.push_back(std::make_unique<RelayClient>(ctx.get_executor(), url,
                                                    relay::SecretKey::generate(), options));
    receivers.push_back(std::make_unique<RelayClient>(ctx.get_executor(), url,
                                                      relay::SecretKey::generate(), options));
  }
  bool connected = false;
  std::string error;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < o.pairs; ++i) {
          co_await senders[i]->connect();
          co_await receivers[i]->connect();
        }
      },
      [&](std::exception_ptr e) {
        connected = true;
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            error = ex.what();
          }
        }
      });
  run_until(ctx, connected, 30s);
  if (!connected || !error.empty()) {
    std::cerr << "relay phase: connect failed: " << (error.empty() ? "timeout" : error) << "\n"
              << iroh::loadtest::read_tail(dir.path() / "relay.log") << "\n";
    return result;
  }

  auto bytes = payload(o.size);
  Window& w = result.window;
  for (int i = 0; i < o.pairs; ++i) {
    asio::co_spawn(ctx, relay_receiver(*receivers[i], w), asio::detached);
    asio::co_spawn(ctx, relay_sender(*senders[i], receivers[i]->endpoint_id(), bytes, o, w),
                   asio::detached);
  }
  pid_t relay_pid = relay_process.pid();
  bool measured = false;
  asio::co_spawn(ctx, measure(w, o, [relay_pid] { return iroh::loadtest::cpu_seconds(relay_pid); }),
                 [&](std::exception_ptr) { measured = true; });
  run_until(ctx, measured, o.duration + 10s);
  // Let datagrams in flight arrive before counting losses.
  ctx.run_for(300ms);
  for (int i = 0; i < o.pairs; ++i) {
    result.written += senders[i]->stats().datagrams_written;
    result.client_drops += senders[i]->stats().send_dropped_queue_full;
    result.received += receivers[i]->stats().datagrams_received;
  }
  for (auto& c : senders) c->close();
  for (auto& c : receivers) c->close();
  ctx.run_for(200ms);
  result.ok = measured;
  if (!relay_process.running()) {
    std::cerr << "relay exited during the run; its log:\n"
              << iroh::loadtest::read_tail(dir.path() / "relay.log") << "\n";
  }
  return result;
}

// ---- socat phase ----------------------------------------------------------------------------

struct TcpResult {
  Window window;
  bool ok = false;
};

asio::awaitable<void> sink_reader(tcp::socket socket, Window& w, std::size_t datagram_size) {
  std::vector<std::uint8_t> buffer(64 * 1024);
  std::uint64_t carry = 0;
  for (;;) {
    boost::system::error_code ec;
    auto n = co_await socket.async_read_some(asio::buffer(buffer),
                                             asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    w.bytes += n;
    carry += n;
    w.datagrams += carry / datagram_size;
    carry %= datagram_size;
  }
}

asio::awaitable<void> sink_acceptor(tcp::acceptor& acceptor, Window& w, std::size_t size) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket(acceptor.get_executor());
    co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), sink_reader(std::move(socket), w, size),
                   asio::detached);
  }
}

asio::awaitable<void> tcp_sender(tcp::socket& socket, const relay::Bytes& chunk, const Options& o,
                                 Window& w) {
  std::uint64_t sent = 0;
  std::size_t per_chunk = chunk.size() / o.size;
  while (!w.stop && (o.datagrams == 0 || sent < o.datagrams)) {
    boost::system::error_code ec;
    co_await asio::async_write(socket, asio::buffer(chunk),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    sent += per_chunk;
  }
}

TcpResult run_socat_phase(const Options& o) {
  TcpResult result;
  iroh::loadtest::TempDir dir;
  asio::io_context ctx;
  Window& w = result.window;
  tcp::acceptor sink(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  auto sink_port = sink.local_endpoint().port();
  asio::co_spawn(ctx, sink_acceptor(sink, w, o.size), asio::detached);
  auto proxy_port = iroh::loadtest::free_tcp_port();
  iroh::loadtest::ChildProcess socat(
      {o.socat, "TCP-LISTEN:" + std::to_string(proxy_port) + ",bind=127.0.0.1,reuseaddr,fork",
       "TCP:127.0.0.1:" + std::to_string(sink_port)},
      dir.path() / "socat.log");
  // Polling the port opens one empty connection through socat; the sink just sees EOF.
  if (!iroh::loadtest::wait_for_port(proxy_port, 10s)) {
    std::cerr << "socat did not listen within 10 s: "
              << iroh::loadtest::read_tail(dir.path() / "socat.log") << "\n";
    return result;
  }
  std::vector<std::unique_ptr<tcp::socket>> senders;
  for (int i = 0; i < o.pairs; ++i) {
    auto s = std::make_unique<tcp::socket>(ctx);
    boost::system::error_code ec;
    s->connect({asio::ip::make_address("127.0.0.1"), proxy_port}, ec);
    if (ec) {
      std::cerr << "connect to socat failed: " << ec.message() << "\n";
      return result;
    }
    s->set_option(tcp::no_delay(true));
    senders.push_back(std::move(s));
  }
  relay::Bytes chunk;
  auto one = payload(o.size);
  for (std::size_t i = 0; i < o.tcp_batch; ++i) chunk.insert(chunk.end(), one.begin(), one.end());
  for (auto& s : senders) asio::co_spawn(ctx, tcp_sender(*s, chunk, o, w), asio::detached);
  pid_t socat_pid = socat.pid();
  bool measured = false;
  asio::co_spawn(
      ctx, measure(w, o, [socat_pid] { return iroh::loadtest::cpu_seconds(socat_pid, true); }),
      [&](std::exception_ptr) { measured = true; });
  run_until(ctx, measured, o.duration + 10s);
  for (auto& s : senders) {
    boost::system::error_code ignored;
    s->close(ignored);
  }
  ctx.run_for(200ms);
  result.ok = measured;
  return result;
}

void print_window(const char* name, const Window& w, const char* proxy) {
  std::printf("%-6s %9.1f MB/s  %9.0f datagrams/s  %s CPU %.2f cores, load generator %.2f cores\n",
              name, w.mb_per_s(), w.datagrams_per_s(), proxy, w.proxy_cores(), w.self_cores());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args args(argc, argv, kUsage);
    if (args.positional().size() != 1) {
      std::cerr << kUsage;
      return 2;
    }
    Options o;
    o.relay_binary = args.positional()[0];
    o.socat = args.get("socat", o.socat);
    o.pairs = static_cast<int>(std::clamp<long long>(args.get_int("pairs", 4), 1, 256));
    o.size = static_cast<std::size_t>(
        std::clamp<long long>(args.get_int("size", 1200), 1, relay::kMaxDatagramContents));
    o.duration = std::chrono::seconds(std::clamp<long long>(args.get_int("seconds", 10), 2, 120));
    o.datagrams = static_cast<std::uint64_t>(std::max<long long>(args.get_int("datagrams", 0), 0));
    o.warmup = std::chrono::milliseconds(std::clamp<long long>(
        args.get_int("warmup-ms", 1000), 0, std::chrono::milliseconds(o.duration).count() / 2));
    o.tcp_batch =
        static_cast<std::size_t>(std::clamp<long long>(args.get_int("tcp-batch", 16), 1, 1024));
    bool run_relay = !args.has("socat-only");
    bool run_socat = !args.has("relay-only");

    std::printf(
        "relay_throughput: %d pairs, %zu-byte datagrams, %llds per phase (%lld ms warm-up)\n",
        o.pairs, o.size, static_cast<long long>(o.duration.count()),
        static_cast<long long>(o.warmup.count()));
    std::fflush(stdout);
    RelayResult relay_result;
    TcpResult tcp_result;
    if (run_relay) {
      relay_result = run_relay_phase(o);
      if (relay_result.ok) {
        print_window("relay", relay_result.window, "iroh-relay");
        std::uint64_t lost = relay_result.written > relay_result.received
                                 ? relay_result.written - relay_result.received
                                 : 0;
        std::printf(
            "       written %llu, received %llu (%.2f%% lost in the relay), "
            "%llu dropped at full client queues\n",
            static_cast<unsigned long long>(relay_result.written),
            static_cast<unsigned long long>(relay_result.received),
            relay_result.written ? 100.0 * lost / relay_result.written : 0.0,
            static_cast<unsigned long long>(relay_result.client_drops));
      } else {
        std::printf("relay  phase failed (see stderr)\n");
      }
      std::fflush(stdout);
    }
    if (run_socat) {
      tcp_result = run_socat_phase(o);
      if (tcp_result.ok) {
        print_window("socat", tcp_result.window, "socat");
      } else {
        std::printf("socat  phase failed (see stderr)\n");
      }
    }
    if (relay_result.ok && tcp_result.ok && tcp_result.window.mb_per_s() > 0) {
      double ratio = relay_result.window.mb_per_s() / tcp_result.window.mb_per_s();
      std::printf("ratio  relay/socat throughput = %.2f (target >= 0.80: %s)\n", ratio,
                  ratio >= 0.8 ? "met" : "NOT met");
      // On a shared machine the proxies get whatever CPU is left; MB per CPU-second of the proxy
      // is the figure that survives contention.
      auto per_core = [](const Window& w) {
        return w.proxy_cores() > 0 ? w.mb_per_s() / w.proxy_cores() : 0.0;
      };
      double relay_eff = per_core(relay_result.window), socat_eff = per_core(tcp_result.window);
      std::printf("       per proxy CPU-second: relay %.1f MB, socat %.1f MB, ratio %.2f\n",
                  relay_eff, socat_eff, socat_eff > 0 ? relay_eff / socat_eff : 0.0);
    }
    return (run_relay && !relay_result.ok) || (run_socat && !tcp_result.ok) ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "relay_throughput: " << e.what() << "\n";
    return 1;
  }
}
