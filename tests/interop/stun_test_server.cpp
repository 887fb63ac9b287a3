// Runs StunService alone on a given address until SIGTERM/SIGINT, for the interop script and the
// load test (the daemon wiring can replace it later). Prints "listening <port>" once bound and the
// counters on exit.
//   stun_test_server [--host H] [--port P] [--sockets N] [--threads T]
//   (defaults 127.0.0.1, 3478 (0 = any), 1 socket, 1 thread)
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "core/log.hpp"
#include "stun/stun_service.hpp"

int main(int argc, char** argv) {
  iroh::config::StunConfig cfg;
  cfg.enabled = true;
  cfg.bind_addr.host = "127.0.0.1";
  cfg.bind_addr.port = 3478;
  iroh::server::StunOptions options;
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--host") == 0) {
      cfg.bind_addr.host = argv[i + 1];
    } else if (std::strcmp(argv[i], "--sockets") == 0) {
      options.sockets = static_cast<unsigned>(std::atoi(argv[i + 1]));
    } else if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::max(1, std::min(64, std::atoi(argv[i + 1])));
    } else if (std::strcmp(argv[i], "--port") == 0) {
      cfg.bind_addr.port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    } else {
      std::cerr << "usage: stun_test_server [--host H] [--port P] [--sockets N] [--threads T]\n";
      return 2;
    }
  }
  iroh::log::set_level(iroh::log::Level::Warn);
  boost::asio::io_context io;
  iroh::server::StunService service(io, cfg, options);
  try {
    service.start();
  } catch (const std::exception& e) {
    std::cerr << "stun_test_server: " << e.what() << "\n";
    return 1;
  }
  std::cout << "listening " << service.local_endpoint().port() << std::endl;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    service.stop();
    io.stop();
  });
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  const auto& c = service.metrics();
  std::cout << "requests " << c.requests.Value() << " ipv4_success " << c.ipv4_success.Value()
            << " ipv6_success " << c.ipv6_success.Value() << " bad_requests "
            << c.bad_requests.Value() << " failures " << c.failures.Value() << " ignored "
            << c.ignored.Value() << std::endl;
  return 0;
}
