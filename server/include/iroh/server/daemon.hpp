// The iroh-relay daemon: owns the io_context and its threads, the HTTP(S) listeners of the relay
// service (spec relay.md §2) and any other services the binary wires in (STUN, QAD, DNS, ...).
//
// Usage (tests run it in-process):
//   iroh::server::Daemon daemon(config);   // throws config::ConfigError on unsupported settings
//   daemon.start();                        // binds; port 0 allowed; throws on bind errors
//   auto ep = daemon.http_endpoint();      // the real bound address
//   daemon.stop();                         // closes listeners and clients, joins the threads
#pragma once

#include <prometheus/registry.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tls.hpp"
#include "iroh/config.hpp"
#include "iroh/server/http_router.hpp"
#include "iroh/server/metrics.hpp"
#include "iroh/server/service.hpp"

namespace iroh::server {

class Daemon {
 public:
  // `threads` = 0 -> the CPUs this process may run on (core/cpus.hpp), as the relay workers.
  explicit Daemon(config::Config config, unsigned threads = 0);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Before start(): extra routes on the relay service (plain mode: the single listener; TLS mode:
  // the HTTPS listener) and extra services, started in order after the listeners.
  HttpRouter& router();
  // Before start(): routes of the plain-HTTP listener on http_bind_addr. In TLS mode that is the
  // captive-portal listener (port 80; e.g. ACME HTTP-01 registers
  // "/.well-known/acme-challenge/" as a Prefix route here); in plain mode it is router().
  HttpRouter& plain_router();
  // Before start(): routes of config lookup_listeners (issue 17: address lookup on listeners of
  // its own, the HTTPS one with its own certificate).
  HttpRouter& lookup_router();
  void add_service(std::unique_ptr<Service> service);
  // Before start(): the address-lookup store's packet count and health for the status page and
  // /healthz (the daemon registers those routes once, at construction).
  void set_lookup_status(std::function<std::optional<std::size_t>()> store_size,
                         std::function<std::string_view()> store_health);

  void start();
  // Blocks until stop() is called (from another thread or a signal handler via request_stop()).
  void wait();
  // Thread-safe, async-signal-unsafe; wakes wait().
  void request_stop();
  void stop();
  // Graceful shutdown (SIGTERM): stop accepting, send Restarting (relay.md §6.7) to every relay
  // client and close it after that frame, wait for connections to finish for at most `grace`
  // (default: config shutdown_grace_secs), then stop() (services flush their state there).
  void drain_and_stop(std::optional<std::chrono::milliseconds> grace = std::nullopt);

  // SIGHUP: validates `next` against the running daemon (certificate files load, access control
  // builds, services accept it) and applies limits, access control, certificate, log level and
  // format to the relay and reload() to every service; the lookup HTTPS listener's certificate
  // too (manual: its files are reread; self_signed: a new one when the first domain changed;
  // letsencrypt: its ACME service takes the new domains). Settings that need a restart (bind
  // addresses, including the lookup listeners', enabling services, cert_mode) are kept with a
  // warning naming the key. On failure logs one line naming
  // file:line: key: reason, keeps the old config everywhere and returns false. Thread-safe.
  bool reload(config::Config next);
  // A new TLS certificate chain + private key (PEM text) for the HTTPS listener and every
  // service (Service::reload_certificate, e.g. QAD). New TLS handshakes use it at once; existing
  // connections keep theirs. Throws std::runtime_error on bad PEM or a key that does not match;
  // then nothing changes. Thread-safe.
  void reload_certificate(const std::string& cert_chain_pem, const std::string& key_pem);
  // The same for the lookup HTTPS listener's own certificate (lookup_listeners.https; its ACME
  // service calls this). Services are not told: QAD serves the relay's certificate. Throws
  // std::runtime_error (nothing changes) on bad PEM or a mismatching key. Thread-safe.
  void reload_lookup_certificate(const std::string& cert_chain_pem, const std::string& key_pem);
  // Re-reads tls.manual_cert_path / manual_key_path now (also done by a poll of their mtime,
  // inode and size every few seconds). False (logged) if they cannot be loaded.
  bool reload_certificate_files();

  // Bound listener addresses (after start()). In plain mode http_endpoint() serves everything;
  // in TLS mode it is the captive-portal listener and https_endpoint() the relay service.
  std::optional<boost::asio::ip::tcp::endpoint> http_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> https_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> lookup_http_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> lookup_https_endpoint() const;

  // The certificate chain + key picked at construction (certificate.hpp) when the relay serves
  // HTTPS or QAD is enabled; empty otherwise. The starting certificate: later ones arrive
  // through reload_certificate(). wiring.cpp hands it to QAD so both serve the same one.
  const std::optional<PemPair>& certificate() const;

  // The config the daemon was constructed with (reloads do not change it; see current_config()).
  const config::Config& config() const;
  // The config of the last successful reload (or the initial one).
  config::Config current_config() const;
  boost::asio::io_context& io_context();
  RelayMetrics& metrics();
  // The registry every service registers its Prometheus families in (prometheus-cpp builders:
  // prometheus::BuildCounter().Name(...).Register(*daemon.metrics_registry())). The metrics
  // listener serialises it; it outlives all services.
  std::shared_ptr<prometheus::Registry> metrics_registry();
  // Authenticated relay connections right now.
  std::size_t client_count() const;
  // Datagrams waiting in the relay clients' send queues (walks the client registry; for the
  // metrics listener's scrape).
  RelayQueueDepth relay_queue_depth() const;

 private:
  void apply_certificate_locked(const std::string& cert_chain_pem, const std::string& key_pem);
  void poll_certificate_files();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iroh::server
