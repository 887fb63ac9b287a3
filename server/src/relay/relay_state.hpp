// State shared by every connection of the relay service (spec relay.md §2-§6): the settings a
// reload replaces, the registry, the queue budgets, the routers, the set of open connections and
// the accept-time limits (limits.accept_conn_limit, max_connections_per_ip, issue 19's pre-auth
// limits). One instance per RelayService; connections keep it alive.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/rate_limit.hpp"
#include "iroh/config.hpp"
#include "iroh/server/http_router.hpp"
#include "iroh/server/metrics.hpp"
#include "relay/access_control.hpp"
#include "relay/client_registry.hpp"
#include "relay/key_cache.hpp"
#include "relay/mesh.hpp"
#include "relay/send_queue.hpp"

namespace iroh::server {

// Lookup: the address-lookup listeners of config lookup_listeners (issue 17), with their own
// routes and certificate; no relay upgrade, no relay-connection limits.
enum class ListenerRole { RelayService, CaptivePortal, Lookup };

class TrackedConnection {
 public:
  virtual ~TrackedConnection() = default;
  // Any thread; only posts.
  virtual void close() = 0;
  // Any thread; only posts. Relay clients get Restarting (§6.7) and a WebSocket Close, then the
  // connection closes; connections still in their handshake close at once.
  virtual void drain(const relay::Restarting& restarting) = 0;
  // Null once the connection is being destroyed.
  virtual std::shared_ptr<TrackedConnection> lock_tracked() = 0;
};

// Every open connection (handshake or relay phase), for stop() and drain().
class ConnectionSet {
 public:
  void add(TrackedConnection* c);
  void remove(TrackedConnection* c);
  template <class F>
  void for_each(F&& f) {
    for (auto& c : alive()) f(*c);
  }
  void close_all();

 private:
  // Strong references taken under the lock, used and released outside it: the last release runs
  // the destructor, which takes the lock again.
  std::vector<std::shared_ptr<TrackedConnection>> alive();

  std::mutex mutex_;
  std::unordered_set<TrackedConnection*> set_;
};

// The settings a reload (SIGHUP) replaces. Connections take a snapshot when they are accepted;
// the access control in force is read when a client authenticates.
struct RelaySettings {
  config::Limits limits;
  std::shared_ptr<AccessControl> access;
};

struct RelayServiceState {
  RelayServiceState(const config::Config& c, RelayMetrics& m);

  // The startup config; reloadable parts live in settings().
  const config::Config& config;
  RelayMetrics& metrics;
  ClientRegistry registry;
  KeyCache key_cache;
  QueueBudget queue_budget;     // limits.total_queue_bytes
  QueueBudget pre_auth_budget;  // limits.pre_auth_bytes
  HttpRouter relay_router;
  HttpRouter captive_router;
  HttpRouter lookup_router;
  ConnectionSet connections;
  // Issue 16: the relay mesh, null without mesh.peers (a single-node relay).
  std::unique_ptr<Mesh> mesh;
  bool tls_mode = false;
  std::atomic<bool> stopping{false};

  std::shared_ptr<const RelaySettings> settings() const;
  void set_settings(std::shared_ptr<const RelaySettings> next);
  std::shared_ptr<boost::asio::ssl::context> tls_context() const;
  void set_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx);
  // The lookup HTTPS listener's own certificate (lookup_listeners.https).
  std::shared_ptr<boost::asio::ssl::context> lookup_tls_context() const;
  void set_lookup_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx);

  // limits.accept_conn_limit / accept_conn_burst: a token bucket over accepted connections.
  bool take_accept_token(const config::Limits& limits);
  // limits.max_connections_per_ip: false (nothing counted) if `ip` is at its limit.
  bool add_ip(const boost::asio::ip::address& ip, const config::Limits& limits);
  void remove_ip(const boost::asio::ip::address& ip);
  // Issue 19: a pre-auth reservation (limits.pre_auth_bytes) and a slot among `ip`'s
  // unauthenticated connections (limits.max_unauthenticated_per_ip); the reason if refused.
  const char* take_pre_auth(const boost::asio::ip::address& ip, const config::Limits& limits);
  void release_pre_auth(const boost::asio::ip::address& ip);

 private:
  static double accept_burst(const config::Limits& limits);
  void reset_accept_bucket(const config::Limits& limits);

  mutable std::mutex settings_mutex_;
  std::shared_ptr<const RelaySettings> settings_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;
  std::shared_ptr<boost::asio::ssl::context> lookup_tls_context_;
  std::mutex accept_mutex_;
  TokenBucket accept_bucket_{0, 1};  // limits.accept_conn_limit; set by reset_accept_bucket
  std::mutex ip_mutex_;
  std::unordered_map<boost::asio::ip::address, std::size_t> per_ip_;
  std::unordered_map<boost::asio::ip::address, std::size_t> unauth_per_ip_;
};

// The counted IP of a connection (v4-mapped IPv6 counted as the IPv4 address).
boost::asio::ip::address counted_address(const boost::asio::ip::tcp::endpoint& ep);

}  // namespace iroh::server
