// The handshake part of Connection (spec relay.md §2-§4): TLS, plain HTTP requests (status
// routes, /generate_204, /ping, the pkarr API) until a WebSocket upgrade on /relay (§3.1), then
// the relay handshake: the TLS-exporter auth header or ServerChallenge/ClientAuth (§4), access
// control and registration, ServerConfirmsAuth.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>

#include <boost/beast/websocket/detail/hybi13.hpp>

#include "acme/tls_alpn.hpp"
#include "core/log.hpp"
#include "http/serve_loop.hpp"
#include "iroh/mesh_proto.hpp"
#include "relay/connection_impl.hpp"
#include "relay/relay_service.hpp"

namespace iroh::server {

// TLS, HTTP, upgrade, relay handshake, access control, registration. A separate coroutine so
// its frame (request, handshake state) is freed before the long-lived relay phase.
template <class Stream>
asio::awaitable<bool> Connection<Stream>::establish() {
  const Clock::time_point accepted_at = Clock::now();
  error_code ec;
  peer_ = socket().remote_endpoint(ec);
  local_ = socket().local_endpoint(ec);
  arm_establish_deadline();

  auto upgrade = co_await serve_http();
  if (!upgrade) co_return false;
  if (target_path(upgrade->target()) == mesh::kPath) {
    // Issue 16: a peer node's mesh link, not a relay client.
    co_await serve_mesh_link(*upgrade);
    co_return false;
  }
  auto check = check_upgrade_request(*upgrade);
  auto version = static_cast<relay::ProtocolVersion>(check.version);
  if (!co_await accept_websocket(*upgrade, version)) co_return false;

  auto id = co_await authenticate(*upgrade);
  if (!id) {
    state_.metrics.handshake_failures.fetch_add(1, std::memory_order_relaxed);
    co_return false;
  }
  // The access control in force now (a reload may have replaced it since the accept).
  std::shared_ptr<AccessControl> access = state_.settings()->access;
  AccessDecision decision = co_await access->check(*id, *upgrade);
  if (!decision.allowed) {
    log::debug("client ", id->to_hex(), " from ", peer_text(), ": denied (", decision.reason, ")");
    state_.metrics.denied.fetch_add(1, std::memory_order_relaxed);
    // Named, not a temporary: GCC 12 destroys temporaries inside co_await twice.
    relay::Bytes deny = relay::encode(relay::ServerDeniesAuth{decision.reason});
    co_await write_frame(deny, false);
    co_return false;
  }
  // Registered before ServerConfirmsAuth so that a peer that hears about us right after our
  // confirmation can already reach us; the writer (started later) sends queued frames after it.
  set_identity(*id, version);
  state_.registry.register_client(this->shared_from_this());
  // From here a drain queues Restarting + Close for the writer instead of closing at once: a
  // client can hear the confirmation (and be drained) before this coroutine resumes from its
  // write, and it must not lose the Restarting that tells it when to come back (§6.7).
  registered_ = true;
  // Authenticated: no longer counted against the pre-auth limits (before the confirmation, so a
  // client that hears it may open the next connection at once).
  release_pre_auth();
  relay::Bytes confirm = relay::encode(relay::ServerConfirmsAuth{});
  if (!co_await write_frame(confirm, false)) {
    close_socket();
    state_.registry.unregister_client(this, {});
    co_return false;
  }
  watchdog_.cancel();
  state_.metrics.handshake_duration.observe(Clock::now() - accepted_at);
  // Keeps frames the client sent right behind ClientAuth.
  buffer_.shrink_to_fit();
  log::debug("client ", id->to_hex(), " connected from ", peer_text(), " (v", int(version), ")");
  co_return true;
}

// Serves plain requests (http/serve_loop.hpp) until a valid upgrade on /relay or a mesh link;
// returns that request.
template <class Stream>
asio::awaitable<std::optional<HttpRequest>> Connection<Stream>::serve_http() {
  if constexpr (kTls) {
    error_code ec;
    co_await stream_.async_handshake(ssl::stream_base::server, ec_token(ec));
    if (ec) {
      count_tls_end(ec);
      log::debug("TLS handshake with ", peer_text(), " failed: ", ec.message());
      errored_ = true;
      co_return std::nullopt;
    }
    // Per connection whether kernel TLS took over (issue 13; untested on this host, see
    // relay/tls_socket.cpp).
    if (stream_.ktls_send()) state_.metrics.tls_ktls_send.fetch_add(1, std::memory_order_relaxed);
    if (stream_.ktls_recv()) state_.metrics.tls_ktls_recv.fetch_add(1, std::memory_order_relaxed);
    // RFC 8737 §3: an acme-tls/1 connection ends after the handshake (no HTTP on it).
    if (acme::TlsAlpnChallenges::negotiated(stream_.native_handle())) {
      co_return std::nullopt;
    }
  }
  buffer_.max_size(kPreAuthBufferMax);
  HttpServeHooks hooks;
  hooks.router = &routes();
  hooks.info = RequestInfo{peer_, local_, kTls};
  hooks.finish = [this](HttpResponse& res) { finish_response(res); };
  hooks.intercept = [this](const HttpRequest& req) { return intercept_upgrade(req); };
  hooks.owner = this->shared_from_this();
  if constexpr (!kTls) hooks.plain_socket = &socket();
  HttpServeLoop<Stream> loop(stream_, buffer_, std::move(hooks),
                             HttpServeLimits{kMaxHttpHeader, kMaxHttpBody});
  HttpServeEnd end = co_await loop.run();
  if (end.read_error) {
    count_tls_end(end.read_error);
    if (!is_clean_http_end(end.read_error)) errored_ = true;
  }
  co_return std::move(end.handed_off);
}

// The requests the relay takes over from the serve loop: a valid WebSocket upgrade on /relay
// (relay.md §3.1; an invalid one is answered 400) and, with a mesh configured, a mesh link
// (issue 16, docs/mesh.md §3; otherwise a 404 like any path).
template <class Stream>
HttpIntercept Connection<Stream>::intercept_upgrade(const HttpRequest& req) {
  if (role_ != ListenerRole::RelayService || req.method() != http::verb::get) return {};
  const auto path = target_path(req.target());
  if (path == "/relay") {
    auto check = check_upgrade_request(req);
    if (check.ok) return {HttpIntercept::Kind::HandOff, {}};
    HttpIntercept bad{
        HttpIntercept::Kind::Answer,
        make_response(req, http::status::bad_request, check.error, "text/plain; charset=utf-8")};
    if (check.bad_ws_version) bad.answer.set(http::field::sec_websocket_version, "13");
    return bad;
  }
  if (path == mesh::kPath && state_.mesh && websocket::is_upgrade(req)) {
    return {HttpIntercept::Kind::HandOff, {}};
  }
  return {};
}

template <class Stream>
void Connection<Stream>::finish_response(HttpResponse& res) {
  res.set(http::field::date, http_date());
  if (role_ == ListenerRole::RelayService) add_security_headers(res.base());
}

template <class Stream>
const HttpRouter& Connection<Stream>::routes() const {
  switch (role_) {
    case ListenerRole::CaptivePortal:
      return state_.captive_router;
    case ListenerRole::Lookup:
      return state_.lookup_router;
    case ListenerRole::RelayService:
      break;
  }
  return state_.relay_router;
}

template <class Stream>
asio::awaitable<bool> Connection<Stream>::accept_websocket(HttpRequest& req,
                                                           relay::ProtocolVersion version) {
  if (buffer_.size() != 0) {
    // Like the reference: bytes pipelined behind the upgrade request end the connection.
    log::debug("connection from ", peer_text(), ": data after the upgrade request");
    co_return false;
  }
  // The opening handshake's answer (RFC 6455 §4.2.2). check_upgrade_request() validated the
  // Upgrade, version and subprotocol headers; what Beast's accept checked beyond them stays
  // checked here: HTTP/1.1, a Host header and a key of at most 24 characters (a base64 16-byte
  // nonce). The spec does not check the Connection header, so neither do we.
  error_code ec;
  const auto key = req[http::field::sec_websocket_key];
  const char* bad =
      req.version() != 11                        ? "bad HTTP version"
      : req.find(http::field::host) == req.end() ? "missing Host"
      : key.empty() || key.size() > websocket::detail::sec_ws_key_type::static_capacity
          ? "bad Sec-WebSocket-Key"
          : nullptr;
  if (bad) {
    log::debug("websocket accept from ", peer_text(), " failed: ", bad);
    auto res = make_response(req, http::status::bad_request, bad, "text/plain; charset=utf-8");
    res.keep_alive(false);
    finish_response(res);
    co_await http::async_write(stream_, res, ec_token(ec));
    co_return false;
  }
  websocket::detail::sec_ws_accept_type accept;
  websocket::detail::make_sec_ws_accept(accept, key);
  http::response<http::empty_body> res{http::status::switching_protocols, 11};
  res.set(http::field::upgrade, "websocket");
  res.set(http::field::connection, "upgrade");
  res.set(http::field::sec_websocket_accept, beast::string_view(accept.data(), accept.size()));
  res.set(http::field::server, "iroh-relay");
  res.set(http::field::sec_websocket_protocol, relay::subprotocol_name(version));
  res.set(http::field::date, http_date());
  add_security_headers(res.base());
  co_await http::async_write(stream_, res, ec_token(ec));
  if (ec) {
    log::debug("websocket accept from ", peer_text(), " failed: ", ec.message());
    co_return false;
  }
  socket().set_option(tcp::no_delay(true), ec);
  if (const auto lowat = settings_->limits.tcp_notsent_lowat) {
    // What the kernel may hold unsent stays small (limits.tcp_notsent_lowat, config.hpp): the
    // rest waits in our queue, where control frames go first and the byte cap counts it.
    using NotsentLowat = asio::detail::socket_option::integer<IPPROTO_TCP, TCP_NOTSENT_LOWAT>;
    socket().set_option(NotsentLowat(static_cast<int>(lowat)), ec);
    if (ec) log::debug("TCP_NOTSENT_LOWAT for ", peer_text(), ": ", ec.message());
  }
  // Plain TCP reads try a non-blocking read first and wait for readability without a buffer.
  if constexpr (!kTls) socket().non_blocking(true, ec);
  if (const auto& rx = settings_->limits.client_rx) {
    std::uint32_t burst = rx->max_burst_bytes ? rx->max_burst_bytes : rx->bytes_per_second / 10;
    RxTokenBucket bucket(rx->bytes_per_second, burst);
    if (bucket.valid()) rx_limit_.emplace(bucket);
  }
  co_return true;
}

template <class Stream>
asio::awaitable<std::optional<relay::EndpointId>> Connection<Stream>::authenticate(
    const HttpRequest& req) {
  if constexpr (kTls) {
    auto header = req.find(relay::kAuthHeader);
    if (header != req.end()) {
      if (auto auth = relay::decode_auth_header(header->value())) {
        std::array<std::uint8_t, 32> ekm{};
        int ok = SSL_export_keying_material(
            stream_.native_handle(), ekm.data(), ekm.size(), relay::kExporterLabel.data(),
            relay::kExporterLabel.size(), auth->public_key.bytes.data(),
            auth->public_key.bytes.size(), 1);
        if (ok == 1 && relay::verify_key_material(*auth, ekm)) co_return auth->public_key;
        log::debug("client auth header from ", peer_text(), " did not verify; using challenge");
      }
    }
  }
  relay::ServerChallenge challenge;
  randombytes_buf(challenge.challenge.data(), challenge.challenge.size());
  relay::Bytes challenge_frame = relay::encode(challenge);
  if (!co_await write_frame(challenge_frame, false)) co_return std::nullopt;
  if (!co_await read_message(next_buffered_binary_message())) co_return std::nullopt;
  auto decoded = relay::decode_handshake(message_bytes());
  auto* msg = std::get_if<relay::HandshakeMessage>(&decoded);
  auto* auth = msg ? std::get_if<relay::ClientAuth>(msg) : nullptr;
  if (!auth) {
    log::debug("connection from ", peer_text(), ": expected ClientAuth");
    co_return std::nullopt;
  }
  if (!relay::verify_client_auth(*auth, challenge.challenge)) {
    log::debug("connection from ", peer_text(), ": signature invalid");
    state_.metrics.denied.fetch_add(1, std::memory_order_relaxed);
    relay::Bytes deny = relay::encode(relay::ServerDeniesAuth{"signature invalid"});
    co_await write_frame(deny, false);
    co_return std::nullopt;
  }
  co_return auth->public_key;
}

template <class Stream>
asio::awaitable<bool> Connection<Stream>::write_frame(const relay::Bytes& frame, bool timed) {
  if (socket_closed_) co_return false;
  std::array<std::uint8_t, kMaxServerHeader> head{};
  std::size_t head_len = ws::encode_server_header(kBinary, frame.size(), head.data());
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head.data(), head_len),
                                            asio::buffer(frame)};
  if (timed) begin_write();
  error_code ec;
  co_await asio::async_write(stream_, buffers, ec_token(ec));
  if (timed) end_write();
  if (ec) {
    log::debug("write to ", peer_text(), " failed: ", ec.message());
    co_return false;
  }
  co_return true;
}

// Covers TLS + HTTP + relay handshake (§2.5, §4.5).
template <class Stream>
void Connection<Stream>::arm_establish_deadline() {
  watchdog_.expires_after(settings_->limits.handshake_timeout);
  watchdog_.async_wait([weak = this->weak_from_this()](error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) {
      log::debug("connection from ", self->peer_text(), ": handshake timeout");
      self->state_.metrics.handshake_failures.fetch_add(1, std::memory_order_relaxed);
      self->close_socket();
    }
  });
}

// The connection authenticated (or ends): its pre-auth reservation goes back.
template <class Stream>
void Connection<Stream>::release_pre_auth() {
  if (!pre_auth_ip_) return;
  state_.release_pre_auth(*pre_auth_ip_);
  pre_auth_ip_.reset();
}

#define IROH_INSTANTIATE_HANDSHAKE(S)                                                     \
  template asio::awaitable<bool> Connection<S>::establish();                              \
  template asio::awaitable<std::optional<HttpRequest>> Connection<S>::serve_http();       \
  template void Connection<S>::finish_response(HttpResponse&);                            \
  template const HttpRouter& Connection<S>::routes() const;                               \
  template HttpIntercept Connection<S>::intercept_upgrade(const HttpRequest&);            \
  template asio::awaitable<bool> Connection<S>::accept_websocket(HttpRequest&,            \
                                                                 relay::ProtocolVersion); \
  template asio::awaitable<std::optional<relay::EndpointId>> Connection<S>::authenticate( \
      const HttpRequest&);                                                                \
  template asio::awaitable<bool> Connection<S>::write_frame(const relay::Bytes&, bool);   \
  template void Connection<S>::arm_establish_deadline();                                  \
  template void Connection<S>::release_pre_auth();
IROH_RELAY_FOR_EACH_STREAM(IROH_INSTANTIATE_HANDSHAKE)

}  // namespace iroh::server
