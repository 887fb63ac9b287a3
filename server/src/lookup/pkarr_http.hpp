// The pkarr relay HTTP API of iroh-dns-server (spec address-lookup.md §4) on the daemon's router:
//   PUT /pkarr/{z32}   publish a signed packet (relay payload body), 204 once it is durable
//   GET /pkarr/{z32}   200 application/x-pkarr-signed-packet with the stored payload, or 404
//   GET /healthcheck   200 "OK" (deprecated in the reference, kept for its clients)
//   OPTIONS (any path) 200 with the CORS headers of §4.4
// Every response of these routes carries `access-control-allow-origin: *` and the CORS `vary`.
#pragma once

#include <array>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/rate_limit.hpp"
#include "iroh/config.hpp"
#include "iroh/pkarr.hpp"
#include "iroh/server/http_router.hpp"

namespace iroh::server {

class PkarrStoreService;

// Largest request body the /pkarr routes read: the largest valid relay payload (§4.2, 1072
// bytes = 64 signature + 8 timestamp + 1000 DNS). Larger bodies get 413 from the Content-Length
// before any body byte is read, or as soon as a chunked body passes it (issue 19 item 2; the
// pkarr spec's 413, §4.6; iroh-dns-server buffers up to 2 MiB first).
inline constexpr std::size_t kPkarrMaxHttpBody = pkarr::kMaxRelayPayloadSize;

// Per-client GCRA (the `governor` crate's algorithm, §4.5): `burst` requests at once, then one
// every `refill` seconds. Thread-safe. Keys whose bucket is full again are dropped by a sweep at
// most every 60 s (or sooner when the table is full); the table holds at most `max_keys` keys and
// refuses new keys while it is full of active ones (fail closed: a flood of source addresses
// cannot push out the state of the clients it floods alongside). IPv6 clients share one bucket
// per `ipv6_prefix` bits (one /64 is one site; issue 19 item 4); IPv4 clients one per address.
class PutRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  PutRateLimiter(std::uint32_t burst, double refill_secs, std::size_t max_keys = 1 << 20,
                 unsigned ipv6_prefix = 128);

  // nullopt = allowed (and counted); otherwise the time to wait before the next request fits.
  std::optional<Clock::duration> check(const boost::asio::ip::address& client,
                                       Clock::time_point now = Clock::now());
  std::size_t key_count() const;

 private:
  // IPv6 bytes (IPv4 as v4-mapped), hashed with a per-process secret so that clients cannot
  // choose addresses that collide in one bucket.
  using Key = std::array<std::uint8_t, 16>;
  struct KeyHash {
    std::array<std::uint8_t, 16> secret;
    KeyHash();
    std::size_t operator()(const Key& key) const noexcept;
  };
  void sweep_locked(Clock::time_point now);

  Gcra gcra_;
  unsigned ipv6_prefix_;
  std::size_t max_keys_;
  mutable std::mutex mutex_;
  Clock::time_point last_sweep_;
  // Theoretical arrival time of the next request per client (GCRA's TAT).
  std::unordered_map<Key, Clock::time_point, KeyHash> tat_;
};

// The client address a request is rate limited by. `simple`: the TCP peer. `smart`: the TCP
// peer unless it is in `config.trusted_proxies`; then, walking X-Forwarded-For from the right
// (the entries the trusted proxies appended), the first address that is not a trusted proxy
// (the left-most one if all are); without X-Forwarded-For, X-Real-IP, then the `for=` elements
// of Forwarded walked the same way. A client cannot pick its key by sending its own header: only
// entries appended by trusted proxies are believed (issue 19 item 4). An unparseable entry stops
// the walk at the trusted hop to its right. IPv4-mapped IPv6 addresses count as the IPv4 address.
boost::asio::ip::address rate_limit_key(const HttpRequest& req, const RequestInfo& info,
                                        const config::PkarrConfig& config);

// Registers the routes above (and 405 for other methods on /pkarr/{z32}). `store` must outlive
// the router.
// `also`: more routers served by the same API, rate limiter included (the plain HTTP listener
// with config lookup_on_http_listener, the lookup_listeners' router); null entries are skipped.
void add_pkarr_routes(HttpRouter& router, PkarrStoreService& store,
                      const config::PkarrConfig& config, const std::vector<HttpRouter*>& also = {});

}  // namespace iroh::server
