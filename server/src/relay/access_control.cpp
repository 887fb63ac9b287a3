#include "relay/access_control.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <ctime>

#include "core/log.hpp"
#include "relay/capability_token.hpp"

namespace iroh::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

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
      std::string_view url = access.http_url;
      auto scheme_end = url.find("://");
      if (scheme_end == std::string_view::npos) {
        throw config::ConfigError(source, 0, "access.http.url", "expected http:// or https://");
      }
      std::string scheme(url.substr(0, scheme_end));
      for (auto& c : scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
      url_.tls = scheme == "https";
      if (!url_.tls && scheme != "http") {
        throw config::ConfigError(source, 0, "access.http.url", "expected http:// or https://");
      }
      std::string_view rest = url.substr(scheme_end + 3);
      auto slash = rest.find('/');
      std::string_view authority = rest.substr(0, slash);
      url_.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
      std::string_view host = authority;
      std::string_view port = url_.tls ? "443" : "80";
      if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
          throw config::ConfigError(source, 0, "access.http.url", "unterminated IPv6 address");
        }
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size() && authority[close + 1] == ':')
          port = authority.substr(close + 2);
      } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
      }
      if (host.empty() || port.empty()) {
        throw config::ConfigError(source, 0, "access.http.url", "missing host or port");
      }
      url_.host = std::string(host);
      url_.port = std::string(port);
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
  auto executor = co_await asio::this_coro::executor;
  // One deadline for the whole exchange: resolve, connect, TLS, request, response. The timer's
  // handler may run after this frame is gone (it can be queued when the exchange finishes), so
  // what it touches is shared.
  struct Io {
    explicit Io(const asio::any_io_executor& ex) : resolver(ex), tcp_stream(ex) {}
    tcp::resolver resolver;
    beast::tcp_stream tcp_stream;
    bool timed_out = false;
  };
  auto io = std::make_shared<Io>(executor);
  auto& resolver = io->resolver;
  auto& tcp_stream = io->tcp_stream;
  std::optional<ssl::context> tls_ctx;
  if (url_.tls) {
    tls_ctx.emplace(ssl::context::tls_client);
    tls_ctx->set_default_verify_paths();
    tls_ctx->set_verify_mode(ssl::verify_peer);
  }
  std::optional<beast::ssl_stream<beast::tcp_stream&>> tls_stream;
  asio::steady_timer deadline(executor, config_.http_timeout);
  const bool& timed_out = io->timed_out;
  deadline.async_wait([io](error_code ec) {
    if (ec) return;
    io->timed_out = true;
    io->resolver.cancel();
    io->tcp_stream.cancel();
    io->tcp_stream.close();
  });
  auto token = [](error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); };
  std::optional<bool> result;
  error_code ec;
  do {
    auto endpoints = co_await resolver.async_resolve(url_.host, url_.port, token(ec));
    if (ec || timed_out) break;
    co_await tcp_stream.async_connect(endpoints, token(ec));
    if (ec || timed_out) break;
    http::request<http::empty_body> req{http::verb::post, url_.target, 11};
    req.set(http::field::host, url_.host);
    req.set(http::field::user_agent, "iroh-relay");
    req.set("X-Iroh-NodeId", id.to_hex());
    if (!config_.http_bearer_token.empty()) {
      req.set(http::field::authorization, "Bearer " + config_.http_bearer_token);
    }
    req.content_length(0);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxCalloutBody);
    if (url_.tls) {
      tls_stream.emplace(tcp_stream, *tls_ctx);
      SSL_set_tlsext_host_name(tls_stream->native_handle(), url_.host.c_str());
      tls_stream->set_verify_callback(ssl::host_name_verification(url_.host));
      co_await tls_stream->async_handshake(ssl::stream_base::client, token(ec));
      if (ec || timed_out) break;
      co_await http::async_write(*tls_stream, req, token(ec));
      if (ec || timed_out) break;
      co_await http::async_read(*tls_stream, buffer, parser, token(ec));
    } else {
      co_await http::async_write(tcp_stream, req, token(ec));
      if (ec || timed_out) break;
      co_await http::async_read(tcp_stream, buffer, parser, token(ec));
    }
    if (ec || timed_out) break;
    const auto& res = parser.get();
    // Like the reference: allowed iff status 200 and the body is exactly "true". Other 2xx/4xx
    // answers are decisions (deny); 5xx means the callout service failed.
    if (res.result_int() >= 500) break;
    result = res.result() == http::status::ok && res.body() == "true";
  } while (false);
  deadline.cancel();
  if (!result) {
    log::debug("access callout to ", url_.host, ":", url_.port,
               " failed: ", timed_out ? std::string("timeout") : ec.message());
  }
  error_code ignored;
  tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  tcp_stream.close();
  co_return result;
}

}  // namespace iroh::server
