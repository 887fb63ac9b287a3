// The HTTP(S) relay service (spec relay.md §2-§6): listeners, routes, WebSocket upgrade, relay
// handshake, per-client actors and the client registry.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/net.hpp"
#include "iroh/config.hpp"
#include "iroh/server/http_router.hpp"
#include "iroh/server/metrics.hpp"
#include "iroh/server/service.hpp"

namespace iroh::server {

// A Service like the others (issue 14): the daemon starts it first (the other services start
// after its listeners are bound) and stops it last.
class RelayService final : public Service {
 public:
  // Throws config::ConfigError for settings this build rejects (access.http). The TLS contexts
  // come from the owner, which picks the certificate once (certificate.hpp): `tls_context` for
  // the HTTPS listener (required in TLS mode with the relay enabled: std::invalid_argument
  // otherwise), `lookup_tls_context` for lookup_listeners.https (required when that is set).
  RelayService(const config::Config& config, RelayMetrics& metrics,
               std::shared_ptr<boost::asio::ssl::context> tls_context,
               std::shared_ptr<boost::asio::ssl::context> lookup_tls_context);
  ~RelayService() override;

  std::string_view name() const override { return "relay"; }

  // Routes of the relay service (the HTTPS listener in TLS mode, the only listener otherwise).
  HttpRouter& router();
  // Routes of the plain listener: the captive-portal one in TLS mode, router() otherwise.
  HttpRouter& plain_router();
  bool tls_mode() const;
  // Routes of the lookup_listeners (issue 17); nothing listens there unless configured.
  HttpRouter& lookup_router();

  // Reload: the limits and access control of `next` for connections accepted (limits) or
  // authenticated (access) from now on. Throws config::ConfigError (nothing changes) if the
  // access control cannot be built. Thread-safe.
  void apply(const config::Config& next);
  // New TLS handshakes use `ctx`; running connections keep the context they started with.
  void set_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx);
  // The same for the lookup HTTPS listener's own certificate.
  void set_lookup_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx);

  // Starts the relay workers (config relay_threads), binds the listeners (one acceptor per
  // worker) and starts accepting. Throws boost::system::system_error.
  void start() override;
  // Stops accepting and closes every connection; returns immediately.
  void stop() override;
  // After stop(): stops the relay workers' loops and joins their threads; connections still open
  // are destroyed. Idempotent; the destructor calls it.
  void join();
  // Stops accepting; relay clients get Restarting(reconnect_in, try_for) and a WebSocket Close
  // and are closed once those are written; handshakes in progress are closed. Returns at once;
  // open_connections() reaches 0 when all are gone.
  void drain(std::chrono::milliseconds reconnect_in, std::chrono::milliseconds try_for);

  std::optional<boost::asio::ip::tcp::endpoint> http_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> https_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> lookup_http_endpoint() const;
  std::optional<boost::asio::ip::tcp::endpoint> lookup_https_endpoint() const;
  std::size_t client_count() const;
  RelayQueueDepth queue_depth() const;
  std::int64_t open_connections() const;

 private:
  void stop_accepting();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Exposed for unit tests.
// The 400 response for an invalid upgrade request (§3.1), or the negotiated version.
struct UpgradeCheck {
  bool ok = false;
  int version = 0;              // 1 or 2 when ok
  std::string error;            // plain-text body when !ok
  bool bad_ws_version = false;  // add "Sec-WebSocket-Version: 13"
};
UpgradeCheck check_upgrade_request(const HttpRequest& req);
// The X-Iroh-Response value for an X-Iroh-Challenge, if the challenge is acceptable (§2.4).
std::optional<std::string> captive_portal_response(std::string_view challenge);
// "127.0.0.1:80" / "[::1]:443" (core/net.hpp, shared with the other listeners).
using net::format_endpoint;
// IMF-fixdate for the Date header.
std::string http_date();

}  // namespace iroh::server
