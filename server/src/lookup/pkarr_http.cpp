#include "lookup/pkarr_http.hpp"

#include <sodium.h>

#include <algorithm>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/log.hpp"
#include "core/net.hpp"
#include "http/cors.hpp"
#include "iroh/pkarr.hpp"
#include "lookup/lookup_metrics.hpp"
#include "lookup/pkarr_store_service.hpp"

namespace iroh::server {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kPkarrPrefix = "/pkarr/";
constexpr auto kSweepInterval = std::chrono::seconds(60);

// ---- responses ----------------------------------------------------------------------------------

// Why `text` is not a public key, for the 400 detail (the checks of pkarr::key_from_z32).
std::string invalid_key_reason(std::string_view text) {
  if (text.size() != pkarr::kZ32KeyLength) {
    return "expected " + std::to_string(pkarr::kZ32KeyLength) + " z-base-32 characters, found " +
           std::to_string(text.size());
  }
  if (!pkarr::z32_decode(text)) return "not lowercase z-base-32";
  return "not an Ed25519 public key";
}

// The z32 segment of /pkarr/{z32}; nullopt for /pkarr/ and deeper paths (404 like axum).
std::optional<std::string_view> key_segment(const HttpRequest& req) {
  std::string_view path = target_path(req.target());
  if (!path.starts_with(kPkarrPrefix)) return std::nullopt;
  std::string_view segment = path.substr(kPkarrPrefix.size());
  if (segment.empty() || segment.find('/') != std::string_view::npos) return std::nullopt;
  return segment;
}

// ---- handlers -----------------------------------------------------------------------------------

struct PkarrApi {
  PkarrApi(PkarrStoreService& s, const config::PkarrConfig& c)
      : store(s), metrics(s.metrics()), config(c) {
    if (c.put_rate_limit != config::PutRateLimitMode::Disabled) {
      limiter.emplace(c.put_burst, c.put_refill_secs, std::size_t{1} << 20,
                      c.put_rate_limit_ipv6_prefix);
    }
  }

  PkarrStoreService& store;
  LookupMetrics& metrics;
  config::PkarrConfig config;
  std::optional<PutRateLimiter> limiter;

  // http_requests* of §9 for every request of these routes.
  void account(const HttpResponse& res, Clock::time_point started) {
    metrics.http_requests.Increment();
    const unsigned status = res.result_int();
    if (status >= 200 && status < 300) {
      metrics.http_requests_success.Increment();
    } else {
      metrics.http_requests_error.Increment();
    }
    metrics.http_requests_duration_ms.Increment(
        std::chrono::duration<double, std::milli>(Clock::now() - started).count());
  }
};

HttpResponse not_found(const HttpRequest& req) {
  return cors_response(req, http::status::not_found);
}

HttpResponse too_many_requests(const HttpRequest& req, Clock::duration wait) {
  // Whole seconds, rounded up so that a client that waits that long gets through.
  auto seconds = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(std::chrono::duration<double>(wait).count())));
  const std::string n = std::to_string(seconds);
  HttpResponse res =
      cors_response(req, http::status::too_many_requests, "Too Many Requests! Wait for " + n + "s");
  res.set("x-ratelimit-after", n);
  res.set(http::field::retry_after, n);
  return res;
}

// The 400 detail for a body that is not a storable packet: unparseable, or dated more than
// `max_skew` ahead (such a packet would outlive every eviction, §7.2 counts from its own
// timestamp; a modest skew stays accepted for clients with a fast clock, §13).
std::optional<std::string> invalid_payload(const pkarr::Result<pkarr::SignedPacket>& parsed,
                                           std::chrono::seconds max_skew) {
  if (const auto* error = std::get_if<pkarr::Error>(&parsed)) {
    return "invalid body payload: " + std::string(pkarr::to_string(*error));
  }
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto skew_us = std::chrono::duration_cast<std::chrono::microseconds>(max_skew).count();
  if (std::get<pkarr::SignedPacket>(parsed).timestamp_us() >
      static_cast<std::uint64_t>(now_us + skew_us)) {
    return "invalid body payload: timestamp more than " + std::to_string(max_skew.count()) +
           " s in the future";
  }
  return std::nullopt;
}

// The answer to a PUT the store refused (issue 19 items 3, 4).
HttpResponse store_error_response(const HttpRequest& req, const PkarrStoreError& error,
                                  std::chrono::seconds retry) {
  switch (error.kind) {
    case PkarrStoreErrorKind::AtCapacity:
      // Expected at the cap: no log line per refused PUT.
      return lookup_json_error(req, http::status::insufficient_storage,
                               "store full: no new keys accepted");
    case PkarrStoreErrorKind::Full:
      // The store logs the change of state once; per PUT only at debug (a full disk under load
      // would flood the log).
      log::debug("PUT /pkarr: ", error.message);
      return lookup_json_error(req, http::status::insufficient_storage, "store out of space");
    case PkarrStoreErrorKind::Unavailable: {
      log::debug("PUT /pkarr: ", error.message);
      HttpResponse res = lookup_json_error(req, http::status::service_unavailable,
                                           "store not writable, retry later");
      res.set(http::field::retry_after, std::to_string(retry.count()));
      return res;
    }
    case PkarrStoreErrorKind::Other:
      break;
  }
  log::warn("PUT /pkarr: ", error.message);
  return lookup_json_error(req, http::status::internal_server_error, "store failure");
}

asio::awaitable<HttpResponse> handle_put(std::shared_ptr<PkarrApi> api, const HttpRequest& req,
                                         const RequestInfo& info) {
  const auto started = Clock::now();
  auto segment = key_segment(req);
  if (!segment) co_return not_found(req);
  // Counted before any validation, like tower_governor in front of the handler.
  if (api->limiter) {
    auto wait = api->limiter->check(rate_limit_key(req, info, api->config));
    if (wait) {
      HttpResponse res = too_many_requests(req, *wait);
      api->account(res, started);
      co_return res;
    }
  }
  // The point check of the key runs only if the payload fails (see key_from_z32_unchecked):
  // the answer is the same as checking it first, without its cost on every valid PUT.
  auto key = pkarr::key_from_z32_unchecked(*segment);
  const std::string& body = req.body();
  std::optional<pkarr::Result<pkarr::SignedPacket>> parsed;
  if (key) {
    parsed = pkarr::SignedPacket::from_relay_payload(
        *key, pkarr::ByteSpan(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()));
  }
  if (!key ||
      (std::holds_alternative<pkarr::Error>(*parsed) && !pkarr::is_valid_public_key(*key))) {
    HttpResponse res = lookup_json_error(req, http::status::bad_request,
                                         "invalid key: " + invalid_key_reason(*segment));
    api->account(res, started);
    co_return res;
  }
  // Unparseable, or (issue 19 item 4) dated too far ahead.
  std::optional<std::string> invalid = invalid_payload(*parsed, api->config.max_future_skew);
  if (invalid) {
    HttpResponse res = lookup_json_error(req, http::status::bad_request, std::move(invalid));
    api->account(res, started);
    co_return res;
  }
  auto put = api->store.async_put(std::move(std::get<pkarr::SignedPacket>(*parsed)));
  PkarrPutResult result = co_await std::move(put);
  HttpResponse res;
  if (auto* error = std::get_if<PkarrStoreError>(&result)) {
    res = store_error_response(req, *error, api->store.retry_interval());
  } else {
    if (std::get<PkarrPutOutcome>(result) == PkarrPutOutcome::NotNewer) {
      api->metrics.pkarr_publish_noop.Increment();
    } else {
      api->metrics.pkarr_publish_update.Increment();
    }
    res = cors_response(req, http::status::no_content);
  }
  api->account(res, started);
  api->metrics.pkarr_put_duration.Observe(
      std::chrono::duration<double>(Clock::now() - started).count());
  co_return res;
}

asio::awaitable<HttpResponse> handle_get(std::shared_ptr<PkarrApi> api, const HttpRequest& req,
                                         const RequestInfo&) {
  const auto started = Clock::now();
  auto segment = key_segment(req);
  if (!segment) co_return not_found(req);
  auto key = pkarr::key_from_z32(*segment);
  if (!key) {
    HttpResponse res = lookup_json_error(req, http::status::bad_request,
                                         "invalid key: " + invalid_key_reason(*segment));
    api->account(res, started);
    co_return res;
  }
  auto get = api->store.async_get(*key);
  PkarrGetResult result = co_await std::move(get);
  HttpResponse res;
  if (auto* error = std::get_if<PkarrStoreError>(&result);
      error != nullptr && error->kind == PkarrStoreErrorKind::Unavailable) {
    // No store open (issue 19 item 3): the service retries; say when to come back.
    res = lookup_json_error(req, http::status::service_unavailable, "store not open, retry later");
    res.set(http::field::retry_after, std::to_string(api->store.retry_interval().count()));
  } else if (error != nullptr) {
    log::warn("GET /pkarr: ", error->message);
    res = lookup_json_error(req, http::status::internal_server_error, "store failure");
  } else if (auto& packet = std::get<std::optional<pkarr::SignedPacket>>(result); !packet) {
    res = lookup_json_error(req, http::status::not_found, std::nullopt);
  } else {
    auto payload = packet->relay_payload();
    res = cors_response(req, http::status::ok,
                        std::string(reinterpret_cast<const char*>(payload.data()), payload.size()),
                        "application/x-pkarr-signed-packet");
  }
  if (req.method() == http::verb::head) {
    // Same headers as GET, no body (axum answers HEAD on GET routes this way).
    const auto length = res.body().size();
    res.body().clear();
    res.content_length(length);
  }
  api->account(res, started);
  co_return res;
}

}  // namespace

// ---- rate limiter -------------------------------------------------------------------------------

PutRateLimiter::KeyHash::KeyHash() {
  static_assert(sizeof(secret) == crypto_shorthash_KEYBYTES);
  randombytes_buf(secret.data(), secret.size());
}

std::size_t PutRateLimiter::KeyHash::operator()(const Key& key) const noexcept {
  std::uint64_t out = 0;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&out), key.data(), key.size(), secret.data());
  return static_cast<std::size_t>(out);
}

PutRateLimiter::PutRateLimiter(std::uint32_t burst, double refill_secs, std::size_t max_keys,
                               unsigned ipv6_prefix)
    : gcra_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(refill_secs)),
            burst),
      ipv6_prefix_(std::clamp(ipv6_prefix, 1u, 128u)),
      max_keys_(std::max<std::size_t>(max_keys, 1)),
      last_sweep_(Clock::now()) {}

std::optional<PutRateLimiter::Clock::duration> PutRateLimiter::check(
    const asio::ip::address& client, Clock::time_point now) {
  // IPv4 clients one bucket per address; IPv6 ones per prefix (host bits cleared).
  const Key key = net::prefix_key(client, 32, ipv6_prefix_);
  std::lock_guard lock(mutex_);
  if (now - last_sweep_ >= kSweepInterval) sweep_locked(now);
  auto it = tat_.find(key);
  if (it == tat_.end()) {
    if (tat_.size() >= max_keys_) {
      // Sweep early (at most once a second) before refusing a new client.
      if (now - last_sweep_ >= std::chrono::seconds(1)) sweep_locked(now);
      if (tat_.size() >= max_keys_) return gcra_.interval();
    }
    it = tat_.emplace(key, now).first;
  }
  return gcra_.admit(it->second, now);
}

void PutRateLimiter::sweep_locked(Clock::time_point now) {
  last_sweep_ = now;
  // A key whose TAT has passed has its full burst again: forgetting it changes nothing.
  std::erase_if(tat_, [now](const auto& entry) { return entry.second <= now; });
}

std::size_t PutRateLimiter::key_count() const {
  std::lock_guard lock(mutex_);
  return tat_.size();
}

namespace {

std::optional<asio::ip::address> parse_ip(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = trim(text.substr(1, text.size() - 2));
  }
  // "[v6]:port", "[v6]" or "v4:port" (Forwarded allows ports).
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    text = text.substr(1, close - 1);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    text = text.substr(0, text.find(':'));
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return addr;
}

// RFC 7239 element: the address of its `for=` parameter, if any (nullopt for an obfuscated
// identifier or no `for=`).
std::optional<asio::ip::address> forwarded_element_for(std::string_view element) {
  std::optional<asio::ip::address> addr;
  while (!element.empty()) {
    auto semi = element.find(';');
    std::string_view pair = element.substr(0, semi);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    if (pair.size() > 4 && (pair[0] == 'f' || pair[0] == 'F') &&
        (pair[1] == 'o' || pair[1] == 'O') && (pair[2] == 'r' || pair[2] == 'R') &&
        pair[3] == '=') {
      addr = parse_ip(pair.substr(4));
    }
    if (semi == std::string_view::npos) break;
    element.remove_prefix(semi + 1);
  }
  return addr;
}

// The hops of a comma-separated X-Forwarded-For (`parse` = parse_ip) or Forwarded (`parse` =
// forwarded_element_for) value, left to right; nullopt for an element without an address.
template <class Parse>
std::vector<std::optional<asio::ip::address>> hop_list(std::string_view list, Parse parse) {
  std::vector<std::optional<asio::ip::address>> out;
  // A proxy chain is short; a longer list is attacker padding and only its tail matters.
  constexpr std::size_t kMaxElements = 64;
  while (true) {
    auto comma = list.find(',');
    out.push_back(parse(list.substr(0, comma)));
    if (out.size() > kMaxElements) out.erase(out.begin());
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

bool is_trusted(const asio::ip::address& addr, const config::PkarrConfig& config) {
  const auto bytes = net::v6_bytes(addr);
  return std::any_of(config.trusted_proxies.begin(), config.trusted_proxies.end(),
                     [&](const config::IpNetwork& n) { return n.contains(bytes); });
}

// Several fields of one name are one comma-separated list, in order (RFC 9110 §5.3).
std::string joined_fields(const HttpRequest& req, std::string_view name) {
  std::string out;
  auto [it, end] = req.equal_range(name);
  for (; it != end; ++it) {
    if (!out.empty()) out += ',';
    out.append(it->value().data(), it->value().size());
  }
  return out;
}

// Walks `hops` (left = client side) from the right, starting behind the trusted `peer`.
asio::ip::address client_behind(const std::vector<std::optional<asio::ip::address>>& hops,
                                asio::ip::address peer, const config::PkarrConfig& config) {
  asio::ip::address client = peer;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!*it) break;
    client = net::unmapped(**it);
    if (!is_trusted(client, config)) break;
  }
  return client;
}

}  // namespace

asio::ip::address rate_limit_key(const HttpRequest& req, const RequestInfo& info,
                                 const config::PkarrConfig& config) {
  const asio::ip::address peer = net::unmapped(info.peer.address());
  if (config.put_rate_limit != config::PutRateLimitMode::Smart || !is_trusted(peer, config)) {
    return peer;
  }
  const std::string xff = joined_fields(req, "x-forwarded-for");
  if (!xff.empty()) return client_behind(hop_list(xff, parse_ip), peer, config);
  if (auto it = req.find("x-real-ip"); it != req.end()) {
    if (auto addr = parse_ip(it->value())) return net::unmapped(*addr);
  }
  const std::string forwarded = joined_fields(req, "forwarded");
  if (!forwarded.empty())
    return client_behind(hop_list(forwarded, forwarded_element_for), peer, config);
  return peer;
}

// ---- routes -------------------------------------------------------------------------------------

namespace {

// The /pkarr routes, /healthcheck and CORS preflight on one router.
void add_pkarr_routes_to(HttpRouter& router, const std::shared_ptr<PkarrApi>& api) {
  const std::string prefix(kPkarrPrefix);
  router.add(
      http::verb::put, prefix,
      [api](const HttpRequest& req, const RequestInfo& info) { return handle_put(api, req, info); },
      // Pipelined PUTs are verified and stored concurrently (issue 15 item 7): a client's burst
      // shares one group commit instead of waiting one commit per PUT. Safe because PUTs commute:
      // the store keeps the newest packet whatever the order (§2.4); a GET behind them waits.
      HttpRouter::Match::Prefix, kPkarrMaxHttpBody, HttpRouter::Pipelining::Concurrent);
  auto get = [api](const HttpRequest& req, const RequestInfo& info) {
    return handle_get(api, req, info);
  };
  router.add(http::verb::get, prefix, get, HttpRouter::Match::Prefix);
  router.add(http::verb::head, prefix, get, HttpRouter::Match::Prefix);
  auto not_allowed = [](const HttpRequest& req,
                        const RequestInfo&) -> asio::awaitable<HttpResponse> {
    if (!key_segment(req)) co_return not_found(req);
    HttpResponse res = cors_response(req, http::status::method_not_allowed);
    res.set(http::field::allow, "GET,HEAD,PUT");
    co_return res;
  };
  for (auto verb : {http::verb::post, http::verb::delete_, http::verb::patch}) {
    router.add(verb, prefix, not_allowed, HttpRouter::Match::Prefix, kPkarrMaxHttpBody);
  }
  router.add(http::verb::get, "/healthcheck",
             [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
               co_return cors_response(req, http::status::ok, "OK");
             });
  add_cors_preflight_routes(router);
}

}  // namespace

void add_pkarr_routes(HttpRouter& first, PkarrStoreService& store,
                      const config::PkarrConfig& config, const std::vector<HttpRouter*>& also) {
  // One API for every router: the PUT rate limit holds across listeners.
  auto api = std::make_shared<PkarrApi>(store, config);
  add_pkarr_routes_to(first, api);
  for (HttpRouter* each : also) {
    if (each) add_pkarr_routes_to(*each, api);
  }
}

}  // namespace iroh::server
