// Soak (issue 19 item 11): iroh-relay under a steady, modest mixed load for a long time, watching
// its resident memory, open file descriptors and relay queue depth for growth.
//
// Starts iroh-relay as a child (release build, loopback) with relay, pkarr, DNS (UDP + TCP),
// DoH and metrics on, then until --minutes have passed, from one thread of this process:
//   * relay: --pairs client pairs (client-lib RelayClient) send datagrams to each other at
//     --relay-rate per client; each pair disconnects after 15-45 s and reconnects, half the time
//     with fresh keys (connect/disconnect churn);
//   * pkarr: --put-rate PUTs per second, alternately an update of one of --keys long-lived keys
//     and a fresh key (the store evicts packets older than --eviction-secs, 240 by default, so
//     its size levels off within the warm-up of a 30-minute run);
//   * DNS: --dns-rate TXT queries per second over UDP for stored names;
//   * DoH: --doh-rate RFC 8484 GETs per second for stored names.
// Every --sample-secs it prints the daemon's VmRSS and open fds (/proc), the relay queue depth and
// connection gauges (/metrics), request counts and errors and the CPU use of both processes. At
// the end: the least-squares RSS slope (KiB/min) after the warm-up (the first 20 %), RSS min/max
// after warm-up as +-% of its mean, the fd slope, and the error counts.
//
// Exit status 1 if RSS after warm-up leaves +-5 % of its mean, open fds grow (slope x window
// > max(5, 10 % of the mean)), or the daemon dies; 2 for usage errors. Not a CI test.
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "iroh/http_client.hpp"
#include "iroh/lookup.hpp"
#include "iroh/relay_client.hpp"
#include "relay_harness.hpp"

namespace {

namespace asio = boost::asio;
namespace lt = iroh::loadtest;
namespace relay = iroh::relay;
namespace client = iroh::client;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kUsage =
    "usage: soak IROH_RELAY_BINARY [options]\n"
    "  --minutes=N        duration (default 30; fractions allowed)\n"
    "  --sample-secs=S    sampling interval (default 10)\n"
    "  --warmup-percent=P samples ignored by the verdict (default 20)\n"
    "  --pairs=N          relay client pairs (default 4)\n"
    "  --relay-rate=R     datagrams per second per relay client (default 20)\n"
    "  --put-rate=R       pkarr PUTs per second (default 4)\n"
    "  --keys=K           long-lived pkarr keys that get updated (default 200)\n"
    "  --dns-rate=R       DNS UDP queries per second (default 5)\n"
    "  --doh-rate=R       DoH GETs per second (default 2)\n"
    "  --eviction-secs=E  zone_store.eviction_secs of the daemon (default 240)\n"
    "  --relay-cpu=C --gen-cpu=G  pin the daemon and this driver (default 0 and 1; -1 = none)\n"
    "  --keep-log         print the daemon's log tail at the end\n";

constexpr const char* kOrigin = "soak.example.";

// Driver-side counts; `errors` are failures that should not happen on a healthy relay.
struct Counters {
  std::uint64_t relay_sent = 0, relay_received = 0, relay_send_dropped = 0;
  std::uint64_t relay_sessions = 0, relay_connect_errors = 0, relay_lost = 0;
  std::uint64_t put_ok = 0, put_err = 0;
  std::uint64_t dns_ok = 0, dns_err = 0;
  std::uint64_t doh_ok = 0, doh_err = 0;
  std::uint64_t metrics_err = 0;
  std::map<std::string, std::string> last_error;  // per kind

  std::uint64_t errors() const {
    return relay_connect_errors + relay_lost + put_err + dns_err + doh_err + metrics_err;
  }
  void error(const std::string& kind, const std::string& what) { last_error[kind] = what; }
};

struct Settings {
  std::string relay_url, pkarr_url, doh_url, metrics_url, dns_server;
  std::size_t pairs = 4;
  double relay_rate = 20, put_rate = 4, dns_rate = 5, doh_rate = 2;
  std::size_t keys = 200;
};

// The stored names the lookups pick from: long-lived keys once their first PUT succeeded, and
// fresh keys for 60 s after theirs (well before the store evicts them).
struct Names {
  std::vector<relay::SecretKey> pool;
  std::vector<bool> published;
  std::vector<std::size_t> published_idx;
  std::deque<std::pair<Clock::time_point, relay::EndpointId>> fresh;

  std::optional<relay::EndpointId> pick(std::mt19937_64& rng) {
    while (!fresh.empty() && Clock::now() - fresh.front().first > 60s) fresh.pop_front();
    bool use_fresh = !fresh.empty() && (published_idx.empty() || rng() % 10 < 3);
    if (use_fresh) return fresh[rng() % fresh.size()].second;
    if (published_idx.empty()) return std::nullopt;
    return pool[published_idx[rng() % published_idx.size()]].public_key();
  }
};

struct Shared {
  Settings settings;
  Counters counters;
  Names names;
  bool stopping = false;
  std::size_t loops_running = 0;
};

asio::awaitable<void> sleep_for(Clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

// Calls `step` at `rate` per second on a fixed schedule (a schedule more than 1 s behind is reset,
// not burst out) until stopping.
template <class Step>
asio::awaitable<void> paced(Shared& s, double rate, Step step) {
  if (rate <= 0) co_return;
  const auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
  auto next = Clock::now();
  while (!s.stopping) {
    co_await step();
    next += period;
    auto now = Clock::now();
    if (next < now - 1s) next = now;
    if (next > now) co_await sleep_for(next - now);
  }
}

// State a relay client's callbacks may outlive the pair loop with.
struct Session {
  bool closing = false;
};

asio::awaitable<void> pair_loop(Shared& s, std::size_t index) {
  auto ex = co_await asio::this_coro::executor;
  std::mt19937_64 rng(0x50a4 + index);
  auto& c = s.counters;
  relay::SecretKey ka = relay::SecretKey::generate(), kb = relay::SecretKey::generate();
  std::vector<std::uint8_t> payload(1200);
  for (auto& b : payload) b = std::uint8_t(rng());
  client::RelayClientOptions options;
  options.connect_timeout = 10s;
  while (!s.stopping) {
    if (rng() % 2) {
      ka = relay::SecretKey::generate();
      kb = relay::SecretKey::generate();
    }
    auto session = std::make_shared<Session>();
    auto a = std::make_unique<client::RelayClient>(ex, s.settings.relay_url, ka, options);
    auto b = std::make_unique<client::RelayClient>(ex, s.settings.relay_url, kb, options);
    std::string failure;
    try {
      co_await a->connect();
      co_await b->connect();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      ++c.relay_connect_errors;
      c.error("relay connect", failure);
      a->close();
      b->close();
      co_await sleep_for(1s);
      continue;
    }
    ++c.relay_sessions;
    for (auto* rc : {a.get(), b.get()}) {
      rc->start_receiving(
          [&c](client::Received r) {
            if (std::holds_alternative<client::ReceivedDatagram>(r)) ++c.relay_received;
          },
          [&c, session](const client::RelayClientError& e) {
            if (session->closing) return;
            ++c.relay_lost;  // the relay ended a connection nobody asked to close
            c.error("relay connection lost", e.what());
          });
    }
    auto ida = a->endpoint_id(), idb = b->endpoint_id();
    auto lifetime = std::chrono::milliseconds(15000 + rng() % 30000);
    auto end = Clock::now() + lifetime;
    auto period = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / std::max(s.settings.relay_rate, 0.1)));
    auto next = Clock::now();
    while (!s.stopping && Clock::now() < end && a->is_connected() && b->is_connected()) {
      std::size_t len = 64 + rng() % (payload.size() - 64);
      std::span<const std::uint8_t> data(payload.data(), len);
      for (auto [from, to] : {std::pair{a.get(), &idb}, std::pair{b.get(), &ida}}) {
        if (from->send(*to, data)) {
          ++c.relay_sent;
        } else {
          ++c.relay_send_dropped;
        }
      }
      next += period;
      auto now = Clock::now();
      if (next < now - 1s) next = now;
      if (next > now) co_await sleep_for(next - now);
    }
    // Datagrams still in flight get a moment before the pair leaves.
    co_await sleep_for(200ms);
    session->closing = true;
    a->close();
    b->close();
    co_await sleep_for(100ms);
  }
}

asio::awaitable<void> put_loop(Shared& s) {
  std::mt19937_64 rng(0x9a11);
  auto& c = s.counters;
  auto& names = s.names;
  std::size_t next_pool = 0;
  std::uint64_t n = 0;
  client::HttpOptions http;
  http.timeout = 5s;
  co_await paced(s, s.settings.put_rate, [&]() -> asio::awaitable<void> {
    const bool update = n++ % 2 == 0;
    std::size_t slot = next_pool;
    relay::SecretKey key = update ? names.pool[slot] : relay::SecretKey::generate();
    if (update) next_pool = (next_pool + 1) % names.pool.size();
    iroh::pkarr::EndpointInfo info;
    info.relay_urls = {s.settings.relay_url + "/"};
    info.addrs = {"127.0.0.1:" + std::to_string(1024 + rng() % 60000)};
    std::string failure;
    try {
      co_await client::pkarr_publish(s.settings.pkarr_url, client::sign_endpoint_packet(key, info),
                                     http);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      ++c.put_err;
      c.error("pkarr PUT", failure);
      co_return;
    }
    ++c.put_ok;
    if (update) {
      if (!names.published[slot]) {
        names.published[slot] = true;
        names.published_idx.push_back(slot);
      }
    } else {
      names.fresh.emplace_back(Clock::now(), key.public_key());
    }
  });
}

asio::awaitable<void> dns_loop(Shared& s) {
  std::mt19937_64 rng(0xd45);
  auto& c = s.counters;
  client::DnsOptions options;
  options.timeout = 2s;
  options.attempts = 2;
  co_await paced(s, s.settings.dns_rate, [&]() -> asio::awaitable<void> {
    auto id = s.names.pick(rng);
    if (!id) co_return;
    std::string failure;
    try {
      co_await client::resolve_dns(s.settings.dns_server, kOrigin, *id, options);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (failure.empty()) {
      ++c.dns_ok;
    } else {
      ++c.dns_err;
      c.error("DNS", failure);
    }
  });
}

asio::awaitable<void> doh_loop(Shared& s) {
  std::mt19937_64 rng(0xd0e);
  auto& c = s.counters;
  client::HttpOptions http;
  http.timeout = 5s;
  co_await paced(s, s.settings.doh_rate, [&]() -> asio::awaitable<void> {
    auto id = s.names.pick(rng);
    if (!id) co_return;
    std::string failure;
    try {
      co_await client::resolve_doh(s.settings.doh_url, kOrigin, *id, client::DohMethod::Get, http);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (failure.empty()) {
      ++c.doh_ok;
    } else {
      ++c.doh_err;
      c.error("DoH", failure);
    }
  });
}

// Sum of the samples of every series named `name` (any labels) in a Prometheus text page.
double metric(const std::string& page, const std::string& name) {
  double sum = 0;
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || !line.starts_with(name)) continue;
    char after = line.size() > name.size() ? line[name.size()] : '\0';
    if (after != ' ' && after != '{') continue;
    auto space = line.rfind(' ');
    try {
      sum += std::stod(line.substr(space + 1));
    } catch (const std::exception&) {
    }
  }
  return sum;
}

std::size_t open_fds(pid_t pid) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

struct Sample {
  double minutes = 0;
  double rss_kib = 0;
  double fds = 0;
};

struct Fit {
  double slope = 0;  // per minute
  double mean = 0, min = 0, max = 0;
};

// Least squares y = a + slope * x.
Fit fit(const std::vector<Sample>& samples, double Sample::*y) {
  Fit f;
  if (samples.empty()) return f;
  double mx = 0, my = 0;
  f.min = f.max = samples.front().*y;
  for (const auto& s : samples) {
    mx += s.minutes;
    my += s.*y;
    f.min = std::min(f.min, s.*y);
    f.max = std::max(f.max, s.*y);
  }
  mx /= double(samples.size());
  my /= double(samples.size());
  double sxy = 0, sxx = 0;
  for (const auto& s : samples) {
    sxy += (s.minutes - mx) * (s.*y - my);
    sxx += (s.minutes - mx) * (s.minutes - mx);
  }
  f.mean = my;
  f.slope = sxx > 0 ? sxy / sxx : 0;
  return f;
}

// "--minutes 5" as "--minutes=5", so both spellings work.
std::vector<char*> join_values(int argc, char** argv, std::vector<std::string>& storage) {
  storage.clear();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.starts_with("--") && arg.find('=') == std::string::npos && i + 1 < argc &&
        !std::string(argv[i + 1]).starts_with("--") && arg != "--keep-log" && arg != "--help") {
      std::string value = argv[i + 1];
      bool numeric = !value.empty() && (std::isdigit(static_cast<unsigned char>(value[0])) ||
                                        value[0] == '-' || value[0] == '.');
      if (numeric) {
        storage.push_back(arg + "=" + value);
        ++i;
        continue;
      }
    }
    storage.push_back(arg);
  }
  std::vector<char*> out{argv[0]};
  for (auto& s : storage) out.push_back(s.data());
  return out;
}

double get_double(const lt::Args& args, const std::string& name, double fallback, double lo,
                  double hi) {
  auto text = args.get(name, "");
  if (text.empty()) return fallback;
  double v = 0;
  try {
    v = std::stod(text);
  } catch (const std::exception&) {
    throw std::runtime_error("--" + name + " needs a number, got '" + text + "'");
  }
  if (!(v >= lo && v <= hi)) {
    throw std::runtime_error("--" + name + " must be in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "]");
  }
  return v;
}

int run(int argc, char** argv) {
  std::vector<std::string> storage;
  auto joined = join_values(argc, argv, storage);
  lt::Args args(int(joined.size()), joined.data(), kUsage);
  if (args.positional().size() != 1) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string binary = args.positional()[0];
  const double minutes = get_double(args, "minutes", 30, 0.1, 7 * 24 * 60);
  const double sample_secs = get_double(args, "sample-secs", 10, 1, 600);
  const double warmup_percent = get_double(args, "warmup-percent", 20, 0, 90);
  auto shared = std::make_unique<Shared>();
  auto& st = shared->settings;
  st.pairs = std::size_t(get_double(args, "pairs", 4, 0, 256));
  st.relay_rate = get_double(args, "relay-rate", 20, 0.1, 10000);
  st.put_rate = get_double(args, "put-rate", 4, 0, 1000);
  st.keys = std::size_t(get_double(args, "keys", 200, 1, 1000000));
  st.dns_rate = get_double(args, "dns-rate", 5, 0, 10000);
  st.doh_rate = get_double(args, "doh-rate", 2, 0, 10000);
  const auto eviction_secs =
      static_cast<long long>(get_double(args, "eviction-secs", 240, 60, 604800));
  auto [relay_cpu, gen_cpu] = lt::pinning(args);

  lt::TempDir dir;
  const auto http_port = lt::free_tcp_port();
  const auto metrics_port = lt::free_tcp_port();
  const auto dns_port = lt::free_tcp_port();  // UDP and TCP; loopback ports are rarely taken
  const auto config = dir.path() / "relay.yaml";
  {
    std::ofstream out(config);
    // Production defaults except: loopback ports, no PUT rate limit (one client IP), and packets
    // evicted after --eviction-secs so that the store of fresh keys levels off within the
    // warm-up (long-lived keys are updated every 2 * keys / put-rate = 100 s by default).
    out << "http_bind_addr: \"127.0.0.1:" << http_port << "\"\n"
        << "enable_metrics: true\n"
        << "metrics_bind_addr: \"127.0.0.1:" << metrics_port << "\"\n"
        << "enable_stun: false\n"
        << "enable_pkarr: true\n"
        << "pkarr_put_rate_limit: disabled\n"
        << "enable_dns: true\n"
        << "dns:\n"
        << "  bind_addr: \"127.0.0.1:" << dns_port << "\"\n"
        << "  origins: [\"" << kOrigin << "\"]\n"
        << "zone_store:\n"
        << "  eviction_secs: " << eviction_secs << "\n"
        << "  eviction_interval_secs: 10\n"
        << "data_dir: \"" << (dir.path() / "data").string() << "\"\n"
        << "log_level: warn\n";
  }
  const auto log = dir.path() / "relay.log";
  lt::ChildProcess daemon(lt::pinned(relay_cpu, {binary, "--config", config.string()}), log);
  if (!lt::wait_for_port(http_port, 15s) || !lt::wait_for_port(metrics_port, 5s)) {
    std::cerr << "soak: iroh-relay did not listen; its log:\n" << lt::read_tail(log) << "\n";
    return 1;
  }
  const pid_t pid = daemon.pid();
  const std::string base = "http://127.0.0.1:" + std::to_string(http_port);
  st.relay_url = base;
  st.pkarr_url = base + "/pkarr";
  st.doh_url = base + "/dns-query";
  st.metrics_url = "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics";
  st.dns_server = "127.0.0.1:" + std::to_string(dns_port);
  for (std::size_t i = 0; i < st.keys; ++i) {
    shared->names.pool.push_back(relay::SecretKey::generate());
    shared->names.published.push_back(false);
  }

  std::printf(
      "soak: %.1f min, sample every %.0f s, warm-up %.0f %%; daemon pid %d on CPU %d, "
      "driver on CPU %d\n"
      "soak: %zu relay pairs x %.0f datagrams/s per client, %.1f PUT/s (%zu long-lived "
      "keys + fresh), %.1f DNS/s, %.1f DoH/s\n",
      minutes, sample_secs, warmup_percent, int(pid), relay_cpu, gen_cpu, st.pairs, st.relay_rate,
      st.put_rate, st.keys, st.dns_rate, st.doh_rate);
  std::fflush(stdout);

  asio::io_context ctx;
  auto& s = *shared;
  auto spawn = [&](asio::awaitable<void> loop, const char* name) {
    ++s.loops_running;
    asio::co_spawn(ctx, std::move(loop), [&s, name](std::exception_ptr e) {
      --s.loops_running;
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "soak: %s loop failed: %s\n", name, ex.what());
      }
    });
  };
  for (std::size_t i = 0; i < st.pairs; ++i) spawn(pair_loop(s, i), "relay");
  spawn(put_loop(s), "pkarr");
  spawn(dns_loop(s), "dns");
  spawn(doh_loop(s), "doh");

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(minutes * 60));
  const auto sample_every =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(sample_secs));
  const double cpu_daemon0 = lt::cpu_seconds(pid), cpu_self0 = lt::cpu_seconds(getpid());
  double cpu_daemon_prev = cpu_daemon0, cpu_self_prev = cpu_self0;
  std::vector<Sample> samples;
  bool daemon_died = false;
  std::uint64_t errors_prev = 0;
  auto next_sample = start + sample_every;
  while (Clock::now() < end) {
    ctx.run_until(std::min(next_sample, end));
    if (ctx.stopped()) {  // no loop left (all rates 0): just wait for the next sample
      ctx.restart();
      std::this_thread::sleep_for(std::min<Clock::duration>(next_sample - Clock::now(), 100ms));
    }
    if (Clock::now() < next_sample) continue;
    next_sample += sample_every;
    if (!daemon.running()) {
      daemon_died = true;
      std::printf("soak: iroh-relay exited; its log:\n%s\n", lt::read_tail(log).c_str());
      break;
    }
    // /metrics, fetched on the same io_context (bounded by its 5 s timeout).
    std::string page;
    bool fetched = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
          client::HttpOptions http;
          http.timeout = 5s;
          http.max_body = 4 << 20;
          auto res = co_await client::http_request("GET", st.metrics_url, {}, {}, http);
          if (res.status != 200) throw std::runtime_error("status " + std::to_string(res.status));
          page = res.body_text();
        },
        [&](std::exception_ptr e) {
          fetched = true;
          if (!e) return;
          ++s.counters.metrics_err;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            s.counters.error("metrics", ex.what());
          }
        });
    auto fetch_deadline = Clock::now() + 6s;
    while (!fetched && Clock::now() < fetch_deadline) {
      ctx.run_for(20ms);
      if (ctx.stopped()) ctx.restart();
    }
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    auto rss = lt::vm_rss_bytes(pid);
    const std::size_t fds = open_fds(pid);
    const double cpu_daemon = lt::cpu_seconds(pid), cpu_self = lt::cpu_seconds(getpid());
    const auto& c = s.counters;
    samples.push_back({t / 60, rss ? double(*rss) / 1024 : 0, double(fds)});
    std::printf(
        "[%6.0f s] rss %7.0f KiB  fds %4zu  queue %3.0f dg %7.0f B  clients %3.0f  conns %3.0f  "
        "store %5.0f  zones %5.0f  relay sent %8llu recv %8llu  put %6llu  dns %6llu  doh %5llu  "
        "errors %llu "
        "(+%llu)  cpu relay %4.1f%% soak %4.1f%%\n",
        t, samples.back().rss_kib, fds, metric(page, "relayserver_queued_datagrams"),
        metric(page, "relayserver_queued_bytes"), metric(page, "relayserver_clients_connected"),
        metric(page, "relayserver_open_connections"), metric(page, "dns_server_store_packets"),
        metric(page, "dns_server_cache_zones"), (unsigned long long)c.relay_sent,
        (unsigned long long)c.relay_received, (unsigned long long)c.put_ok,
        (unsigned long long)c.dns_ok, (unsigned long long)c.doh_ok, (unsigned long long)c.errors(),
        (unsigned long long)(c.errors() - errors_prev),
        100 * (cpu_daemon - cpu_daemon_prev) / sample_secs,
        100 * (cpu_self - cpu_self_prev) / sample_secs);
    std::fflush(stdout);
    errors_prev = c.errors();
    cpu_daemon_prev = cpu_daemon;
    cpu_self_prev = cpu_self;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_daemon_total = lt::cpu_seconds(pid) - cpu_daemon0;
  const double cpu_self_total = lt::cpu_seconds(getpid()) - cpu_self0;

  // Wind down: the loops stop at their next step, the relay clients close.
  s.stopping = true;
  auto wind_down = Clock::now() + 20s;
  while (s.loops_running > 0 && Clock::now() < wind_down) {
    ctx.run_for(50ms);
    if (ctx.stopped()) ctx.restart();
  }
  ctx.run_for(500ms);

  const auto& c = s.counters;
  std::printf("\n== soak summary (%.1f min, %zu samples)\n", elapsed / 60, samples.size());
  std::printf(
      "relay: %llu sessions, %llu datagrams sent, %llu received (%.2f %%), %llu dropped "
      "by the client queue; %llu connect errors, %llu connections lost\n",
      (unsigned long long)c.relay_sessions, (unsigned long long)c.relay_sent,
      (unsigned long long)c.relay_received,
      c.relay_sent ? 100.0 * double(c.relay_received) / double(c.relay_sent) : 0.0,
      (unsigned long long)c.relay_send_dropped, (unsigned long long)c.relay_connect_errors,
      (unsigned long long)c.relay_lost);
  std::printf(
      "pkarr PUT: %llu ok, %llu errors; DNS: %llu ok, %llu errors; DoH: %llu ok, %llu "
      "errors; metrics scrapes failed: %llu\n",
      (unsigned long long)c.put_ok, (unsigned long long)c.put_err, (unsigned long long)c.dns_ok,
      (unsigned long long)c.dns_err, (unsigned long long)c.doh_ok, (unsigned long long)c.doh_err,
      (unsigned long long)c.metrics_err);
  for (const auto& [kind, what] : c.last_error)
    std::printf("  last %s error: %s\n", kind.c_str(), what.c_str());
  std::printf("cpu: relay %.1f %% of a core, soak driver %.1f %% (averages)\n",
              100 * cpu_daemon_total / elapsed, 100 * cpu_self_total / elapsed);

  std::vector<Sample> steady;
  for (const auto& x : samples)
    if (x.minutes * 60 >= elapsed * warmup_percent / 100) steady.push_back(x);
  int status = daemon_died ? 1 : 0;
  if (steady.size() < 3) {
    std::printf("verdict: too few samples after the warm-up (%zu) to judge\n", steady.size());
    status = 1;
  } else {
    auto rss = fit(steady, &Sample::rss_kib);
    auto fds = fit(steady, &Sample::fds);
    const double window = steady.back().minutes - steady.front().minutes;
    const double lo = 100 * (rss.min - rss.mean) / rss.mean;
    const double hi = 100 * (rss.max - rss.mean) / rss.mean;
    const bool rss_flat = lo >= -5 && hi <= 5;
    const double fd_growth = fds.slope * window;
    const bool fds_flat = fd_growth <= std::max(5.0, 0.1 * fds.mean);
    std::printf(
        "after warm-up (%zu samples from %.1f min): RSS mean %.0f KiB, slope %+.1f KiB/min "
        "(%+.2f %% of the mean per 10 min), min %+.2f %% / max %+.2f %% of the mean "
        "(bound +-5 %%): %s\n",
        steady.size(), steady.front().minutes, rss.mean, rss.slope,
        rss.mean > 0 ? 1000 * rss.slope / rss.mean : 0.0, lo, hi, rss_flat ? "flat" : "NOT flat");
    std::printf(
        "open fds: mean %.1f, min %.0f, max %.0f, slope %+.2f /min (%+.1f over %.1f min): "
        "%s\n",
        fds.mean, fds.min, fds.max, fds.slope, fd_growth, window,
        fds_flat ? "no growth" : "GROWING");
    if (!rss_flat || !fds_flat) status = 1;
  }
  if (daemon_died) std::printf("verdict: the daemon died\n");
  if (args.has("keep-log")) std::printf("daemon log tail:\n%s\n", lt::read_tail(log).c_str());
  std::printf("verdict: %s\n", status == 0 ? "PASS" : "FAIL");
  daemon.stop();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "soak: " << e.what() << "\n";
    return 2;
  }
}
