// Authorization after the relay handshake (spec relay.md §6.9): everyone, allowlist, denylist,
// shared token, HTTP callout (timeout, bounded decision cache with TTL, fail-open/closed) and
// locally verified capability tokens (capability_token.hpp).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "http/http_client.hpp"
#include "iroh/config.hpp"
#include "iroh/relay_proto.hpp"
#include "iroh/server/http_router.hpp"

namespace iroh::server {

struct AccessDecision {
  bool allowed = false;
  std::string reason;  // for ServerDeniesAuth; never contains a secret
};

class AccessControl {
 public:
  // Throws config::ConfigError for an empty shared_token list or a malformed callout URL.
  AccessControl(const config::AccessConfig& access, const std::string& config_source);

  // Runs on the caller's executor (the connection's strand); the HTTP mode performs the callout
  // there (bounded by access.http.timeout_ms). Thread-safe.
  boost::asio::awaitable<AccessDecision> check(const relay::EndpointId& id,
                                               const HttpRequest& upgrade_request);

  // The token a client presented: first "Authorization: Bearer <t>", else ?token=<t>.
  static std::optional<std::string> presented_token(const HttpRequest& req);

  config::AccessMode mode() const { return config_.mode; }
  // HTTP mode: callouts made (cache misses) and decisions served from the cache.
  std::uint64_t callouts() const;
  std::uint64_t cache_hits() const;

 private:
  // Allow/deny from the callout; nullopt if it failed (timeout, connect error, bad status).
  boost::asio::awaitable<std::optional<bool>> callout(const relay::EndpointId& id);
  std::optional<bool> cached(const relay::EndpointId& id);
  void remember(const relay::EndpointId& id, bool allowed);

  config::AccessConfig config_;
  std::unordered_set<relay::EndpointId, relay::EndpointIdHash> ids_;
  std::unordered_set<std::string> tokens_;
  // HTTP mode: the callout's URL and the client (one TLS context for every callout).
  HttpUrl url_;
  std::unique_ptr<HttpClient> client_;

  using Clock = std::chrono::steady_clock;
  struct CacheEntry {
    bool allowed;
    Clock::time_point expires;
    std::list<relay::EndpointId>::iterator order;
  };
  mutable std::mutex cache_mutex_;
  std::unordered_map<relay::EndpointId, CacheEntry, relay::EndpointIdHash> cache_;
  std::list<relay::EndpointId> cache_order_;  // front = oldest insertion
  std::uint64_t callouts_ = 0;
  std::uint64_t cache_hits_ = 0;
};

}  // namespace iroh::server
