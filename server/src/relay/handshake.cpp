// The handshake part of Connection (spec relay.md §2-§4): TLS, plain HTTP requests (status
// routes, /generate_204, /ping, the pkarr API) until a WebSocket upgrade on /relay (§3.1), then
// the relay handshake: the TLS-exporter auth header or ServerChallenge/ClientAuth (§4), access
// control and registration, ServerConfirmsAuth.
#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <deque>
#include <exception>

#include "acme/tls_alpn.hpp"
#include "core/log.hpp"
#include "iroh/mesh_proto.hpp"
#include "relay/connection_impl.hpp"
#include "relay/relay_service.hpp"

namespace iroh::server {
namespace {

// Answers held back while a client pipelines requests are written together once the requests
// buffered so far are answered; this bounds what one connection holds.
constexpr std::size_t kMaxHeldAnswers = 64 * 1024;

// True when buffer_ already holds the whole header of the next request, so that serving it
// needs no read from the socket.
bool next_header_buffered(const beast::flat_buffer& buffer) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  return data.find("\r\n\r\n") != std::string_view::npos;
}

// Appends the wire form of `res` to `out` (what http::async_write would send).
void append_serialized(std::string& out, HttpResponse& res) {
  http::response_serializer<http::string_body> serializer{res};
  error_code ec;
  while (!ec && !serializer.is_done()) {
    serializer.next(ec, [&](error_code&, const auto& buffers) {
      for (const auto b : beast::buffers_range_ref(buffers)) {
        out.append(static_cast<const char*>(b.data()), b.size());
      }
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
}

// Writes the held answers (if any); false if the write failed.
template <class Stream>
asio::awaitable<bool> write_held(Stream& stream, std::string& held) {
  if (held.empty()) co_return true;
  error_code ec;
  co_await asio::async_write(stream, asio::buffer(held), ec_token(ec));
  held.clear();
  co_return !ec;
}

// Pipelined requests of a HttpRouter::Pipelining::Concurrent route are handled while the
// connection parses the next ones (issue 15 item 7: a burst of PUT /pkarr shares one group
// commit instead of waiting one commit per PUT). What one connection can pin this way is
// bounded: at most kMaxPendingAnswers requests holding at most kMaxPendingBytes (target, header
// fields, body) are in flight at once; the next one waits until their answers are written.
constexpr std::size_t kMaxPendingAnswers = 64;
constexpr std::size_t kMaxPendingBytes = 64 * 1024;

// One request in flight: the request (its handler reads it until it finishes) and, once the
// handler finished, its answer. `done` is cancelled then, which wakes the serve loop if it waits.
struct PendingAnswer {
  template <class Executor>
  PendingAnswer(HttpRequest r, const Executor& ex)
      : req(std::move(r)), done(ex, asio::steady_timer::time_point::max()) {}
  HttpRequest req;
  std::optional<HttpResponse> res;
  asio::steady_timer done;
};

// The requests in flight, oldest first, and the bytes they hold.
struct PendingAnswers {
  std::deque<std::shared_ptr<PendingAnswer>> list;
  std::size_t bytes = 0;
};

// What a request holds in memory, for kMaxPendingBytes.
std::size_t request_bytes(const HttpRequest& req) {
  std::size_t n = req.target().size() + req.body().size();
  for (const auto& field : req) n += field.name_string().size() + field.value().size() + 4;
  return n;
}

// Waits for the answers in flight in request order and appends them to `held`. True if one of
// them ends the connection (need_eof): the answers after it are dropped, its own is the last.
asio::awaitable<bool> collect_pending(PendingAnswers& pending, std::string& held) {
  bool eof = false;
  while (!pending.list.empty()) {
    std::shared_ptr<PendingAnswer> next = pending.list.front();
    pending.list.pop_front();
    while (!next->res) {
      error_code ec;
      co_await next->done.async_wait(ec_token(ec));
    }
    if (eof) continue;
    append_serialized(held, *next->res);
    eof = next->res->need_eof();
  }
  pending.bytes = 0;
  co_return eof;
}

// Every answer so far (held, then those in flight) written; false if the write failed or an
// answer ends the connection.
template <class Stream>
asio::awaitable<bool> write_answers(Stream& stream, PendingAnswers& pending, std::string& held) {
  const bool eof = co_await collect_pending(pending, held);
  const bool written = co_await write_held(stream, held);
  co_return written && !eof;
}

}  // namespace

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

// Serves plain requests until a valid upgrade on /relay; returns that request.
template <class Stream>
asio::awaitable<std::optional<HttpRequest>> Connection<Stream>::serve_http() {
  error_code ec;
  if constexpr (kTls) {
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
  // Answers to pipelined requests (HTTP/1.1 allows a client to send requests without waiting;
  // pkarr publishers and the PUT benchmark do, issue 15 item 7): while the next request is
  // already buffered, an answer is appended here instead of written, and all of them go out in
  // one write once serving the next request would need a read from the socket. One send per
  // pipelined burst instead of one per request, in request order. Every path that leaves the
  // loop or writes writes these first. Requests of a Concurrent route are handled while the
  // next ones are parsed (`pending`, see PendingAnswer); their answers join `held` in order.
  std::string held;
  PendingAnswers pending;
  // Plain TCP: moves the bytes already in the kernel into buffer_ without waiting, so that
  // whether the next request is complete is known before answers are held for it. Reads take at
  // most the buffer's free room (512 bytes at first), so a pipelined burst spans several reads;
  // without this the answers before each read boundary would be awaited and written first.
  // (TLS: the raw bytes are records, not requests; there a read boundary flushes.)
  auto pull_available = [this] {
    if constexpr (!kTls) {
      error_code e;
      const std::size_t room = buffer_.max_size() - buffer_.size();
      const std::size_t n = std::min(socket().available(e), room);
      if (e || n == 0) return;
      const std::size_t got = socket().read_some(buffer_.prepare(n), e);
      if (!e) buffer_.commit(got);
    }
  };
  auto next_request_buffered = [&] {
    if (next_header_buffered(buffer_)) return true;
    pull_available();
    return next_header_buffered(buffer_);
  };
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHttpHeader);
    // The route decides the body limit (2 MiB for /pkarr, §4.2): header first, then the body.
    parser.body_limit(boost::none);
    if ((!held.empty() || !pending.list.empty()) && !next_request_buffered() &&
        !co_await write_answers(stream_, pending, held)) {
      co_return std::nullopt;
    }
    co_await http::async_read_header(stream_, buffer_, parser, ec_token(ec));
    if (!ec) {
      const auto& head = parser.get();
      const std::size_t limit =
          routes().body_limit(head.method(), target_path(head.target()), kMaxHttpBody);
      if (parser.content_length() && *parser.content_length() > limit) {
        ec = http::error::body_limit;
      } else {
        parser.body_limit(limit);
        auto body_buffered = [&] {
          return parser.is_done() ||
                 (parser.content_length() && buffer_.size() >= *parser.content_length());
        };
        const bool answers = !held.empty() || !pending.list.empty();
        if (answers && !body_buffered()) pull_available();
        if (answers && !body_buffered() && !co_await write_answers(stream_, pending, held)) {
          co_return std::nullopt;
        }
        co_await http::async_read(stream_, buffer_, parser, ec_token(ec));
      }
    }
    // Not an ordinary request: what was answered so far goes out first.
    if (!held.empty() || !pending.list.empty()) {
      bool special = static_cast<bool>(ec);
      if (!special) {
        const auto path = target_path(parser.get().target());
        special =
            parser.get().method() == http::verb::get && (path == "/relay" || path == mesh::kPath);
      }
      if (special && !co_await write_answers(stream_, pending, held)) co_return std::nullopt;
    }
    if (ec == http::error::header_limit) {
      // Issue 19: a clear answer instead of a silent close.
      HttpResponse res{http::status::request_header_fields_too_large, 11};
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "Request header fields too large";
      res.keep_alive(false);
      res.prepare_payload();
      finish_response(res);
      co_await http::async_write(stream_, res, ec_token(ec));
      co_return std::nullopt;
    }
    if (ec == http::error::body_limit) {
      auto res = make_response(parser.get(), http::status::payload_too_large,
                               "Failed to buffer the request body: length limit exceeded",
                               "text/plain; charset=utf-8");
      res.keep_alive(false);
      finish_response(res);
      co_await http::async_write(stream_, res, ec_token(ec));
      co_return std::nullopt;
    }
    if (ec) {
      count_tls_end(ec);
      if (ec != http::error::end_of_stream && ec != asio::error::eof &&
          ec != asio::error::operation_aborted && ec != http::error::partial_message) {
        errored_ = true;
      }
      co_return std::nullopt;
    }
    HttpRequest req = parser.release();
    auto path = target_path(req.target());
    if (role_ == ListenerRole::RelayService && path == "/relay" &&
        req.method() == http::verb::get) {
      auto check = check_upgrade_request(req);
      if (check.ok) co_return std::optional<HttpRequest>(std::move(req));
      auto res =
          make_response(req, http::status::bad_request, check.error, "text/plain; charset=utf-8");
      if (check.bad_ws_version) res.set(http::field::sec_websocket_version, "13");
      finish_response(res);
      co_await http::async_write(stream_, res, ec_token(ec));
      if (ec || res.need_eof()) co_return std::nullopt;
      continue;
    }
    // Issue 16 (docs/mesh.md §3): only with a mesh configured; otherwise a 404 like any path.
    if (role_ == ListenerRole::RelayService && path == mesh::kPath && state_.mesh &&
        req.method() == http::verb::get && websocket::is_upgrade(req)) {
      co_return std::optional<HttpRequest>(std::move(req));
    }
    // A Concurrent route's request in a pipelined burst (more requests buffered behind it, or
    // earlier ones in flight): handled in the background, answered in order later. A request
    // alone is handled right here, without that cost.
    if (req.keep_alive() && (!pending.list.empty() || next_request_buffered()) &&
        routes().concurrent(req.method(), path)) {
      const std::size_t bytes = request_bytes(req);
      if (bytes <= kMaxPendingBytes) {
        // At the bound: the requests in flight are answered first.
        if ((pending.list.size() >= kMaxPendingAnswers ||
             pending.bytes + bytes > kMaxPendingBytes || held.size() >= kMaxHeldAnswers) &&
            !co_await write_answers(stream_, pending, held)) {
          co_return std::nullopt;
        }
        auto entry = std::make_shared<PendingAnswer>(std::move(req), stream_.get_executor());
        pending.list.push_back(entry);
        pending.bytes += bytes;
        asio::co_spawn(
            stream_.get_executor(), dispatch(entry->req),
            [self = this->shared_from_this(), entry](std::exception_ptr e, HttpResponse res) {
              if (e) {
                res = make_response(entry->req, http::status::internal_server_error,
                                    "Internal Server Error");
                self->finish_response(res);
              }
              entry->res = std::move(res);
              entry->done.cancel();
            });
        continue;
      }
    }
    // Any other request sees the effects of every request before it: those in flight finish
    // first (RFC 9112 §9.3.2 allows concurrency only where the outcome cannot differ).
    if (!pending.list.empty() && co_await collect_pending(pending, held)) {
      co_await write_held(stream_, held);
      co_return std::nullopt;
    }
    auto res = co_await dispatch(req);
    if (!res.need_eof() && held.size() < kMaxHeldAnswers && next_header_buffered(buffer_)) {
      append_serialized(held, res);
      continue;
    }
    if (held.empty()) {
      co_await http::async_write(stream_, res, ec_token(ec));
    } else {
      append_serialized(held, res);
      if (!co_await write_held(stream_, held)) ec = asio::error::broken_pipe;
    }
    if (ec || res.need_eof()) co_return std::nullopt;
  }
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
asio::awaitable<HttpResponse> Connection<Stream>::dispatch(const HttpRequest& req) {
  const HttpRouter& router = routes();
  RequestInfo info{peer_, local_, kTls};
  HttpResponse res;
  bool failed = false;
  if (const HttpHandler* handler = router.find(req.method(), target_path(req.target()))) {
    try {
      res = co_await (*handler)(req, info);
    } catch (const std::exception& e) {
      log::warn("handler for ", req.target(), " failed: ", e.what());
      failed = true;
    }
  } else {
    res = make_response(req, http::status::not_found, "Not Found");
  }
  if (failed)
    res = make_response(req, http::status::internal_server_error, "Internal Server Error");
  finish_response(res);
  co_return res;
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
  if (!co_await read_message()) co_return std::nullopt;
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
  template asio::awaitable<HttpResponse> Connection<S>::dispatch(const HttpRequest&);     \
  template asio::awaitable<bool> Connection<S>::accept_websocket(HttpRequest&,            \
                                                                 relay::ProtocolVersion); \
  template asio::awaitable<std::optional<relay::EndpointId>> Connection<S>::authenticate( \
      const HttpRequest&);                                                                \
  template asio::awaitable<bool> Connection<S>::write_frame(const relay::Bytes&, bool);   \
  template void Connection<S>::arm_establish_deadline();                                  \
  template void Connection<S>::release_pre_auth();
IROH_RELAY_FOR_EACH_STREAM(IROH_INSTANTIATE_HANDSHAKE)

}  // namespace iroh::server
