// The iroh-relay daemon: owns the io_context and its threads, the HTTP(S) listeners of the relay
// service (spec relay.md §2) and any other services the binary wires in (STUN, QAD, DNS, ...).
//
// Usage (tests run it in-process):
//   iroh::server::Daemon daemon(config);   // throws config::ConfigError on unsupported settings
//   daemon.start();                        // binds; port 0 allowed; throws on bind errors
//   auto ep = daemon.http_endpoint();      // the real bound address
//   daemon.stop();                         // closes listeners and clients, joins the threads
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <prometheus/registry.h>
#include <string_view>
#include <vector>

#include "iroh/config.hpp"
#include "iroh/server/http_router.hpp"
#include "iroh/server/metrics.hpp"

namespace iroh::server {

// A service with the daemon's lifecycle. start() runs on the caller's thread after the relay
// listeners are bound and may post work onto Daemon::io_context(); stop() must be idempotent.
class Service {
 public:
  virtual ~Service() = default;
  virtual std::string_view name() const = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
};

class Daemon {
 public:
  // `threads` = 0 -> std::thread::hardware_concurrency().
  explicit Daemon(config::Config config, unsigned threads = 0);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Before start(): extra routes on the relay service (plain mode: the single listener; TLS mode:
  // the HTTPS listener) and extra services, started in order after the listeners.
  HttpRouter& router();
  void add_service(std::unique_ptr<Service> service);

  void start();
  // Blocks until stop() is called (from another thread or a signal handler via request_stop()).
  void wait();
  // Thread-safe, async-signal-unsafe; wakes wait().
  void request_stop();
  void stop();

  // Bound listener addresses (after start()). In plain mode http_endpoint() serves everything;
  // in TLS mode it is the captive-portal listener and https_endpoint() the relay service.
  std::optional<boost::asio::ip::tcp::endpoint> http_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> https_endpoint() const;

  const config::Config& config() const;
  boost::asio::io_context& io_context();
  RelayMetrics& metrics();
  // The registry every service registers its Prometheus families in (prometheus-cpp builders:
  // prometheus::BuildCounter().Name(...).Register(*daemon.metrics_registry())). The metrics
  // listener serialises it; it outlives all services.
  std::shared_ptr<prometheus::Registry> metrics_registry();
  // Authenticated relay connections right now.
  std::size_t client_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iroh::server
