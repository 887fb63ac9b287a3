// The HTTP/1.1 serve loop of every listener (relay service, captive portal, lookup, metrics):
// requests on one connection with keep-alive; the header and body limits answered with 431 / 413
// before the connection ends (issue 19); routing through an HttpRouter; pipelined requests (RFC
// 9112 §9.3.2) answered in request order with their answers written together; the requests of
// a Pipelining::Concurrent route handled while the next ones are parsed (issue 15 item 7); and
// the hand-off of a request the listener takes over (the WebSocket upgrade on /relay, relay.md
// §3.1). TLS, the connection's deadlines and what follows a hand-off stay with the listener.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "core/await.hpp"
#include "iroh/server/http_router.hpp"

namespace iroh::server {

struct HttpServeLimits {
  std::size_t max_header = 16 * 1024;  // above: 431, the connection ends
  std::size_t max_body = 64 * 1024;    // for routes without their own limit; above: 413, ends
  // Requests served on one connection; then its answers are written and it ends.
  std::size_t max_requests = std::numeric_limits<std::size_t>::max();
};

// What the loop does with a request before routing it.
struct HttpIntercept {
  enum class Kind { Route, HandOff, Answer };
  Kind kind = Kind::Route;
  HttpResponse answer;  // Kind::Answer: written instead of routing (finished like any answer)
};

// What a listener plugs into the loop.
struct HttpServeHooks {
  const HttpRouter* router = nullptr;
  RequestInfo info;
  // Content type of the 404 for a path no route takes ("" = none).
  std::string not_found_type;
  // Adds the listener's own header fields to every answer (Date, security headers); optional.
  std::function<void(HttpResponse&)> finish;
  // Looks at every request first: HandOff ends the loop with the request, Answer writes its
  // answer instead of routing. Optional: every request is routed.
  std::function<HttpIntercept(const HttpRequest&)> intercept;
  // Called before a request is read and before answers are written, for listeners whose
  // deadline is per request (metrics). Optional: the listener's own deadline covers the whole
  // connection (the relay's handshake watchdog, relay.md §2.5).
  std::function<void()> arm_deadline;
  // True once the listener stops: no further request is read. Optional.
  std::function<bool()> stopping;
  // Kept alive until every Concurrent handler has finished (what `router`, `finish` use).
  std::shared_ptr<const void> owner;
  // Plain TCP only: the socket under the stream (see HttpServeLoop::pull_available). Null for
  // TLS, whose bytes are records, not requests; there a read boundary flushes the answers.
  boost::asio::ip::tcp::socket* plain_socket = nullptr;
};

struct HttpServeEnd {
  std::optional<HttpRequest> handed_off;  // the request an intercept handed off
  // The read error that ended the connection; not set when it ended otherwise (an answer that
  // closes it, a refusal, a failed write, max_requests, stopping).
  boost::system::error_code read_error;
};

// True for the ways a client ends an HTTP connection normally (between or inside a request).
bool is_clean_http_end(const boost::system::error_code& ec);

namespace http_serve {

// Answers held back while a client pipelines requests are written together once the requests
// buffered so far are answered; this bounds what one connection holds.
inline constexpr std::size_t kMaxHeldAnswers = 64 * 1024;
// Requests of a Concurrent route in flight on one connection: at most kMaxPendingAnswers
// holding at most kMaxPendingBytes (target, header fields, body); the next waits for their
// answers to be written.
inline constexpr std::size_t kMaxPendingAnswers = 64;
inline constexpr std::size_t kMaxPendingBytes = 64 * 1024;

// One request in flight: the request (its handler reads it until it finishes) and, once the
// handler finished, its answer. `done` is cancelled then, which wakes the serve loop if it waits.
struct PendingAnswer {
  PendingAnswer(HttpRequest r, const boost::asio::any_io_executor& ex)
      : req(std::move(r)), done(ex, boost::asio::steady_timer::time_point::max()) {}
  HttpRequest req;
  std::optional<HttpResponse> res;
  boost::asio::steady_timer done;
};

// The requests in flight, oldest first, and the bytes they hold.
struct PendingAnswers {
  std::deque<std::shared_ptr<PendingAnswer>> list;
  std::size_t bytes = 0;
};

// True when `buffer` already holds the whole header of the next request, so that serving it
// needs no read from the socket.
bool next_header_buffered(const boost::beast::flat_buffer& buffer);
// Appends the wire form of `res` to `out` (what http::async_write would send).
void append_serialized(std::string& out, HttpResponse& res);
// What a request holds in memory, for kMaxPendingBytes.
std::size_t request_bytes(const HttpRequest& req);
// Waits for the answers in flight in request order and appends them to `held`. True if one of
// them ends the connection (need_eof): the answers after it are dropped, its own is the last.
boost::asio::awaitable<bool> collect_pending(PendingAnswers& pending, std::string& held);
// The route's answer (404 without a route, 500 if the handler threw), finished.
boost::asio::awaitable<HttpResponse> dispatch(const HttpServeHooks& hooks, const HttpRequest& req);
// Runs the handler of `entry` on its executor; its answer lands in `entry`.
void start_handler(std::shared_ptr<const HttpServeHooks> hooks,
                   std::shared_ptr<PendingAnswer> entry);
// The answer to a request over a limit (431 or 413, closing), finished.
HttpResponse refusal(const HttpServeHooks& hooks, const boost::system::error_code& ec,
                     const HttpRequest& head);

}  // namespace http_serve

// One connection's loop over `stream` (plain TCP, TLS, or Beast's tcp_stream) reading into
// `buffer` (the listener's, so that bytes behind a handed-off request stay with it). The object
// must outlive run(); Concurrent handlers still running after run() ends hold only the hooks.
template <class Stream>
class HttpServeLoop {
 public:
  HttpServeLoop(Stream& stream, boost::beast::flat_buffer& buffer, HttpServeHooks hooks,
                HttpServeLimits limits)
      : stream_(stream),
        buffer_(buffer),
        hooks_(std::make_shared<const HttpServeHooks>(std::move(hooks))),
        limits_(limits) {}

  boost::asio::awaitable<HttpServeEnd> run();

 private:
  using Parser = http::request_parser<http::string_body>;
  using error_code = boost::system::error_code;

  bool answers_waiting() const { return !held_.empty() || !pending_.list.empty(); }
  void arm() const {
    if (hooks_->arm_deadline) hooks_->arm_deadline();
  }
  void pull_available();
  bool next_request_buffered();
  boost::asio::awaitable<bool> write_held();
  boost::asio::awaitable<bool> write_answers();
  boost::asio::awaitable<bool> write_now(HttpResponse& res);
  boost::asio::awaitable<std::optional<error_code>> read_request(Parser& parser);
  boost::asio::awaitable<bool> serve_request(HttpRequest& req);
  boost::asio::awaitable<bool> start_concurrent(HttpRequest& req, std::size_t bytes);
  boost::asio::awaitable<bool> answer_serial(const HttpRequest& req);

  Stream& stream_;
  boost::beast::flat_buffer& buffer_;
  std::shared_ptr<const HttpServeHooks> hooks_;
  HttpServeLimits limits_;
  // Answers to pipelined requests (HTTP/1.1 lets a client send requests without waiting; pkarr
  // publishers and the PUT benchmark do, issue 15 item 7): while the next request is already
  // buffered, an answer is appended here instead of written, and all of them go out in one
  // write once serving the next request would need a read from the socket. One send per
  // pipelined burst instead of one per request, in request order. Every path that leaves the
  // loop or writes writes these first. Answers of Concurrent requests (`pending_`) join in order.
  std::string held_;
  http_serve::PendingAnswers pending_;
};

template <class Stream>
boost::asio::awaitable<HttpServeEnd> HttpServeLoop<Stream>::run() {
  HttpServeEnd end;
  for (std::size_t served = 0; served < limits_.max_requests; ++served) {
    if (hooks_->stopping && hooks_->stopping()) break;
    Parser parser;
    parser.header_limit(std::uint32_t(limits_.max_header));
    // The route decides the body limit (2 MiB for /pkarr, §4.2): header first, then the body.
    parser.body_limit(boost::none);
    if (answers_waiting() && !next_request_buffered() && !co_await write_answers()) co_return end;
    const std::optional<error_code> read = co_await read_request(parser);
    if (!read) co_return end;  // held answers could not be written
    const error_code ec = *read;
    // Not an ordinary request: what was answered so far goes out first.
    if (ec && answers_waiting() && !co_await write_answers()) co_return end;
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      HttpResponse res = http_serve::refusal(*hooks_, ec, parser.get());
      co_await write_now(res);
      co_return end;
    }
    if (ec) {
      end.read_error = ec;
      co_return end;
    }
    HttpRequest req = parser.release();
    HttpIntercept taken = hooks_->intercept ? hooks_->intercept(req) : HttpIntercept{};
    if (taken.kind != HttpIntercept::Kind::Route) {
      if (answers_waiting() && !co_await write_answers()) co_return end;
      if (taken.kind == HttpIntercept::Kind::HandOff) {
        end.handed_off = std::move(req);
        co_return end;
      }
      if (hooks_->finish) hooks_->finish(taken.answer);
      if (!co_await write_now(taken.answer)) co_return end;
      continue;
    }
    if (!co_await serve_request(req)) co_return end;
  }
  // max_requests reached or stopping: what was answered goes out, then the connection ends.
  co_await write_answers();
  co_return end;
}

// Plain TCP: moves the bytes already in the kernel into the buffer without waiting, so that
// whether the next request is complete is known before answers are held for it. Reads take at
// most the buffer's free room, so a pipelined burst spans several reads; without this the
// answers before each read boundary would be awaited and written first.
template <class Stream>
void HttpServeLoop<Stream>::pull_available() {
  boost::asio::ip::tcp::socket* socket = hooks_->plain_socket;
  if (!socket) return;
  error_code ec;
  const std::size_t room = buffer_.max_size() - buffer_.size();
  const std::size_t n = std::min(socket->available(ec), room);
  if (ec || n == 0) return;
  const std::size_t got = socket->read_some(buffer_.prepare(n), ec);
  if (!ec) buffer_.commit(got);
}

template <class Stream>
bool HttpServeLoop<Stream>::next_request_buffered() {
  if (http_serve::next_header_buffered(buffer_)) return true;
  pull_available();
  return http_serve::next_header_buffered(buffer_);
}

// Writes the held answers (if any); false if the write failed.
template <class Stream>
boost::asio::awaitable<bool> HttpServeLoop<Stream>::write_held() {
  if (held_.empty()) co_return true;
  arm();
  error_code ec;
  co_await boost::asio::async_write(stream_, boost::asio::buffer(held_), ec_token(ec));
  held_.clear();
  co_return !ec;
}

// Every answer so far (held, then those in flight) written; false if the write failed or an
// answer ends the connection.
template <class Stream>
boost::asio::awaitable<bool> HttpServeLoop<Stream>::write_answers() {
  const bool eof = co_await http_serve::collect_pending(pending_, held_);
  const bool written = co_await write_held();
  co_return written && !eof;
}

// Writes one (finished) answer now; false if the write failed or the answer ends the connection.
template <class Stream>
boost::asio::awaitable<bool> HttpServeLoop<Stream>::write_now(HttpResponse& res) {
  arm();
  error_code ec;
  co_await http::async_write(stream_, res, ec_token(ec));
  co_return !ec && !res.need_eof();
}

// Reads one request: the header, then (the route's body limit known) the body. The error of the
// read, or nullopt if answers held before the body had to be written and that failed.
template <class Stream>
boost::asio::awaitable<std::optional<boost::system::error_code>>
HttpServeLoop<Stream>::read_request(Parser& parser) {
  error_code ec;
  arm();
  co_await http::async_read_header(stream_, buffer_, parser, ec_token(ec));
  if (ec) co_return ec;
  const auto& head = parser.get();
  const std::size_t limit =
      hooks_->router->body_limit(head.method(), target_path(head.target()), limits_.max_body);
  if (parser.content_length() && *parser.content_length() > limit) {
    co_return error_code(http::error::body_limit);
  }
  parser.body_limit(limit);
  auto body_buffered = [&] {
    return parser.is_done() ||
           (parser.content_length() && buffer_.size() >= *parser.content_length());
  };
  // A body still on its way: the answers so far go out before waiting for it.
  if (answers_waiting() && !body_buffered()) pull_available();
  if (answers_waiting() && !body_buffered() && !co_await write_answers()) co_return std::nullopt;
  co_await http::async_read(stream_, buffer_, parser, ec_token(ec));
  co_return ec;
}

// Routes one request; false if the connection ends.
template <class Stream>
boost::asio::awaitable<bool> HttpServeLoop<Stream>::serve_request(HttpRequest& req) {
  // A Concurrent route's request in a pipelined burst (more requests buffered behind it, or
  // earlier ones in flight): handled in the background, answered in order later. A request
  // alone is handled right here, without that cost.
  if (req.keep_alive() && (!pending_.list.empty() || next_request_buffered()) &&
      hooks_->router->concurrent(req.method(), target_path(req.target()))) {
    const std::size_t bytes = http_serve::request_bytes(req);
    if (bytes <= http_serve::kMaxPendingBytes) co_return co_await start_concurrent(req, bytes);
  }
  co_return co_await answer_serial(req);
}

template <class Stream>
boost::asio::awaitable<bool> HttpServeLoop<Stream>::start_concurrent(HttpRequest& req,
                                                                     std::size_t bytes) {
  // At the bound: the requests in flight are answered first.
  if ((pending_.list.size() >= http_serve::kMaxPendingAnswers ||
       pending_.bytes + bytes > http_serve::kMaxPendingBytes ||
       held_.size() >= http_serve::kMaxHeldAnswers) &&
      !co_await write_answers()) {
    co_return false;
  }
  auto entry = std::make_shared<http_serve::PendingAnswer>(std::move(req), stream_.get_executor());
  pending_.list.push_back(entry);
  pending_.bytes += bytes;
  http_serve::start_handler(hooks_, std::move(entry));
  co_return true;
}

template <class Stream>
boost::asio::awaitable<bool> HttpServeLoop<Stream>::answer_serial(const HttpRequest& req) {
  // Any other request sees the effects of every request before it: those in flight finish
  // first (RFC 9112 §9.3.2 allows concurrency only where the outcome cannot differ).
  if (!pending_.list.empty() && co_await http_serve::collect_pending(pending_, held_)) {
    co_await write_held();
    co_return false;
  }
  HttpResponse res = co_await http_serve::dispatch(*hooks_, req);
  if (!res.need_eof() && held_.size() < http_serve::kMaxHeldAnswers &&
      http_serve::next_header_buffered(buffer_)) {
    http_serve::append_serialized(held_, res);
    co_return true;
  }
  if (held_.empty()) co_return co_await write_now(res);
  http_serve::append_serialized(held_, res);
  const bool written = co_await write_held();
  co_return written && !res.need_eof();
}

}  // namespace iroh::server
