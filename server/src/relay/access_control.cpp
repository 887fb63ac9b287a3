#include "relay/access_control.hpp"

#include <cctype>
#include <ctime>

#include "core/log.hpp"
#include "relay/capability_token.hpp"

namespace iroh::server {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kNotAuthorized = "not authorized";
constexpr std::size_t kMaxCalloutBody = 4096;

}  // namespace

AccessControl::AccessControl(const config::AccessConfig& access, const std::string& source)
    : config_(access) {
  switch (config_.mode) {
    case config::AccessMode::Everyone:
    case config::AccessMode::Capability:
      break;
    case config::AccessMode::Allowlist:
    case config::AccessMode::Denylist:
      ids_.insert(access.endpoints.begin(), access.endpoints.end());
      break;
    case config::AccessMode::SharedToken:
      for (const auto& t : access.tokens) {
        if (t.empty()) throw config::ConfigError(source, 0, "access.shared_token", "empty token");
        tokens_.insert(t);
      }
      if (tokens_.empty()) {
        throw config::ConfigError(source, 0, "access.shared_token", "the token list is empty");
      }
      break;
    case config::AccessMode::Http: {
      HttpClientOptions options;
      try {
        url_ = HttpUrl::parse(access.http_url);
      } catch (const HttpUrlError& e) {
        throw config::ConfigError(source, 0, "access.http.url", e.what());
      }
      options.schemes =
          url_.tls ? HttpClientOptions::Schemes::Https : HttpClientOptions::Schemes::Http;
      options.timeout = access.http_timeout;
      options.max_response_body = kMaxCalloutBody;
      options.user_agent = "iroh-relay";
      client_ = std::make_unique<HttpClient>(std::move(options));
      break;
    }
  }
}

std::optional<std::string> AccessControl::presented_token(const HttpRequest& req) {
  auto [begin, end] = req.equal_range(http::field::authorization);
  for (auto it = begin; it != end; ++it) {
    std::string_view value = it->value();
    auto space = value.find(' ');
    if (space == std::string_view::npos) continue;
    auto scheme = value.substr(0, space);
    std::string lower(scheme);
    for (auto& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "bearer") return std::string(value.substr(space + 1));
  }
  return query_param(req.target(), "token");
}

asio::awaitable<AccessDecision> AccessControl::check(const relay::EndpointId& id,
                                                     const HttpRequest& req) {
  switch (config_.mode) {
    case config::AccessMode::Everyone:
      co_return AccessDecision{true, {}};
    case config::AccessMode::Allowlist:
      co_return AccessDecision{ids_.contains(id), std::string(kNotAuthorized)};
    case config::AccessMode::Denylist:
      co_return AccessDecision{!ids_.contains(id), std::string(kNotAuthorized)};
    case config::AccessMode::SharedToken: {
      auto token = presented_token(req);
      bool ok = token && !token->empty() && tokens_.contains(*token);
      co_return AccessDecision{ok, std::string(kNotAuthorized)};
    }
    case config::AccessMode::Capability: {
      auto token = presented_token(req);
      if (!token) co_return AccessDecision{false, "capability token missing"};
      auto result = verify_capability_token(*token, config_.capability_issuers, id,
                                            std::uint64_t(std::time(nullptr)));
      if (auto* err = std::get_if<CapabilityError>(&result)) {
        co_return AccessDecision{false, std::string(to_string(*err))};
      }
      co_return AccessDecision{true, {}};
    }
    case config::AccessMode::Http: {
      if (auto hit = cached(id)) co_return AccessDecision{*hit, std::string(kNotAuthorized)};
      std::optional<bool> answer = co_await callout(id);
      if (!answer) {
        bool open = config_.http_fail_open;
        log::warn("access callout for ", id.to_hex(), " failed; ",
                  open ? "admitting (fail_open)" : "denying (fail closed)");
        co_return AccessDecision{open, "access check unavailable"};
      }
      remember(id, *answer);
      co_return AccessDecision{*answer, std::string(kNotAuthorized)};
    }
  }
  co_return AccessDecision{false, std::string(kNotAuthorized)};
}

std::optional<bool> AccessControl::cached(const relay::EndpointId& id) {
  std::lock_guard lock(cache_mutex_);
  auto it = cache_.find(id);
  if (it == cache_.end()) return std::nullopt;
  if (Clock::now() >= it->second.expires) {
    cache_order_.erase(it->second.order);
    cache_.erase(it);
    return std::nullopt;
  }
  ++cache_hits_;
  return it->second.allowed;
}

void AccessControl::remember(const relay::EndpointId& id, bool allowed) {
  if (config_.http_cache_capacity == 0 || config_.http_cache_ttl.count() == 0) return;
  std::lock_guard lock(cache_mutex_);
  auto expires = Clock::now() + config_.http_cache_ttl;
  if (auto it = cache_.find(id); it != cache_.end()) {
    it->second.allowed = allowed;
    it->second.expires = expires;
    return;
  }
  // Bounded: the oldest insertion goes first (every entry has the same TTL, so it is also the
  // one that expires first).
  while (cache_.size() >= config_.http_cache_capacity && !cache_order_.empty()) {
    cache_.erase(cache_order_.front());
    cache_order_.pop_front();
  }
  cache_order_.push_back(id);
  cache_.emplace(id, CacheEntry{allowed, expires, std::prev(cache_order_.end())});
}

std::uint64_t AccessControl::callouts() const {
  std::lock_guard lock(cache_mutex_);
  return callouts_;
}
std::uint64_t AccessControl::cache_hits() const {
  std::lock_guard lock(cache_mutex_);
  return cache_hits_;
}

asio::awaitable<std::optional<bool>> AccessControl::callout(const relay::EndpointId& id) {
  {
    std::lock_guard lock(cache_mutex_);
    ++callouts_;
  }
  HttpRequest req{http::verb::post, url_.target, 11};
  req.set("X-Iroh-NodeId", id.to_hex());
  if (!config_.http_bearer_token.empty()) {
    req.set(http::field::authorization, "Bearer " + config_.http_bearer_token);
  }
  std::optional<bool> result;
  std::string why;
  try {
    const HttpResponse res = co_await client_->request(url_, req);
    // Like the reference: allowed iff status 200 and the body is exactly "true". Other 2xx/4xx
    // answers are decisions (deny); 5xx means the callout service failed.
    if (res.result_int() >= 500) {
      why = "HTTP " + std::to_string(res.result_int());
    } else {
      result = res.result() == http::status::ok && res.body() == "true";
    }
  } catch (const HttpClientError& e) {
    why = e.what();
  }
  if (!result) log::debug("access callout failed: ", why);
  co_return result;
}

}  // namespace iroh::server
