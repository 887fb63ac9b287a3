// Resident memory of iroh-relay per idle authenticated client.
//
// Starts iroh-relay as a child, reads its VmRSS, connects K RelayClients from this process
// (bounded concurrency), lets them sit idle, reads VmRSS again and prints the difference per
// client. A benchmark, not a test: it prints and exits 0 unless it could not run at all.
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "iroh/relay_client.hpp"
#include "relay_harness.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using iroh::client::RelayClient;
namespace relay = iroh::relay;

constexpr const char* kUsage =
    "usage: relay_idle_rss IROH_RELAY_BINARY [options]\n"
    "  --clients=K        idle clients (default 10000)\n"
    "  --concurrency=C    connects in flight at once (default 64)\n"
    "  --settle-ms=M      idle time before the second reading (default 3000)\n"
    "  --target-bytes=B   per-client target to compare against (default 8192)\n";

void run_for_until(asio::io_context& ctx, const std::size_t& done, std::size_t want,
                   std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (done < want && std::chrono::steady_clock::now() < deadline) ctx.run_for(50ms);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    iroh::loadtest::Args args(argc, argv, kUsage);
    if (args.positional().size() != 1) {
      std::cerr << kUsage;
      return 2;
    }
    std::string relay_binary = args.positional()[0];
    auto clients =
        static_cast<std::size_t>(std::clamp<long long>(args.get_int("clients", 10000), 1, 30000));
    auto concurrency =
        static_cast<std::size_t>(std::clamp<long long>(args.get_int("concurrency", 64), 1, 1024));
    auto settle =
        std::chrono::milliseconds(std::clamp<long long>(args.get_int("settle-ms", 3000), 0, 60000));
    auto target = args.get_int("target-bytes", 8192);

    // One socket per client on each side; the child inherits the limit.
    auto nofile = iroh::loadtest::raise_nofile_limit(2 * clients + 1024);
    if (nofile < clients + 256) {
      std::cerr << "RLIMIT_NOFILE is " << nofile << ", too low for " << clients
                << " clients (run as root or raise ulimit -n)\n";
      return 1;
    }

    iroh::loadtest::TempDir dir;
    auto port = iroh::loadtest::free_tcp_port();
    auto config = iroh::loadtest::write_relay_config(dir.path(), port);
    iroh::loadtest::ChildProcess relay_process({relay_binary, "--config", config.string()},
                                               dir.path() / "relay.log");
    if (!iroh::loadtest::wait_for_port(port, 10s)) {
      std::cerr << "relay did not listen on 127.0.0.1:" << port << " within 10 s; its log:\n"
                << iroh::loadtest::read_tail(dir.path() / "relay.log") << "\n";
      return 1;
    }
    std::this_thread::sleep_for(500ms);
    auto rss_before = iroh::loadtest::vm_rss_bytes(relay_process.pid());
    auto self_before = iroh::loadtest::vm_rss_bytes(getpid());
    if (!rss_before) {
      std::cerr << "cannot read the relay's VmRSS\n";
      return 1;
    }

    asio::io_context ctx;
    std::string url = "http://127.0.0.1:" + std::to_string(port);
    std::vector<std::unique_ptr<RelayClient>> pool;
    pool.reserve(clients);
    for (std::size_t i = 0; i < clients; ++i) {
      iroh::client::RelayClientOptions options;
      options.send_queue_capacity = 16;
      options.receive_queue_capacity = 16;
      pool.push_back(std::make_unique<RelayClient>(ctx.get_executor(), url,
                                                   relay::SecretKey::generate(), options));
    }
    std::size_t next = 0, connected = 0, failed = 0, workers_done = 0;
    std::string first_error;
    auto started = std::chrono::steady_clock::now();
    for (std::size_t w = 0; w < concurrency; ++w) {
      asio::co_spawn(
          ctx,
          [&]() -> asio::awaitable<void> {
            while (next < pool.size()) {
              auto& client = *pool[next++];
              try {
                co_await client.connect();
                ++connected;
              } catch (const std::exception& e) {
                if (failed++ == 0) first_error = e.what();
              }
            }
          },
          [&](std::exception_ptr) { ++workers_done; });
    }
    run_for_until(ctx, workers_done, concurrency, 300s);
    auto connect_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (connected == 0) {
      std::cerr << "no client connected: " << first_error << "\n"
                << iroh::loadtest::read_tail(dir.path() / "relay.log") << "\n";
      return 1;
    }
    // Idle: the clients only answer relay Pings, if any come in this window.
    ctx.run_for(settle);
    auto rss_after = iroh::loadtest::vm_rss_bytes(relay_process.pid());
    auto self_after = iroh::loadtest::vm_rss_bytes(getpid());
    std::size_t still_connected = 0;
    for (auto& c : pool) still_connected += c->is_connected() ? 1 : 0;
    if (!rss_after) {
      std::cerr << "relay exited; its log:\n"
                << iroh::loadtest::read_tail(dir.path() / "relay.log") << "\n";
      return 1;
    }

    double per_client = (static_cast<double>(*rss_after) - static_cast<double>(*rss_before)) /
                        static_cast<double>(still_connected ? still_connected : 1);
    std::printf(
        "relay_idle_rss: %zu clients connected in %.1f s (%zu failed%s%s), %zu still "
        "connected after %lld ms idle\n",
        connected, connect_seconds, failed, failed ? ": " : "", first_error.c_str(),
        still_connected, static_cast<long long>(settle.count()));
    std::printf("relay VmRSS %.1f MiB -> %.1f MiB\n", *rss_before / 1048576.0,
                *rss_after / 1048576.0);
    std::printf("relay RSS per idle authenticated client: %.0f bytes (target <= %lld: %s)\n",
                per_client, target, per_client <= static_cast<double>(target) ? "met" : "NOT met");
    if (self_before && self_after) {
      std::printf("load generator RSS per client (for reference): %.0f bytes\n",
                  (static_cast<double>(*self_after) - static_cast<double>(*self_before)) /
                      static_cast<double>(connected));
    }
    std::fflush(stdout);
    for (auto& c : pool) c->close();
    ctx.run_for(500ms);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "relay_idle_rss: " << e.what() << "\n";
    return 1;
  }
}
