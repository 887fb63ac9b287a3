#include "http/http_client.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <optional>

#include "core/await.hpp"

namespace iroh::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A TCP port: 1 to 65535 in decimal.
bool valid_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != text.npos) {
    return false;
  }
  const int port = std::stoi(std::string(text));
  return port >= 1 && port <= 65535;
}

// The resolver and the socket of one exchange, and whether its deadline fired. Shared with the
// deadline's handler, which may run after the request's frame is gone (it can be queued when the
// exchange finishes).
struct Exchange {
  explicit Exchange(const asio::any_io_executor& ex) : resolver(ex), socket(ex) {}
  asio::ip::tcp::resolver resolver;
  beast::tcp_stream socket;
  bool timed_out = false;
};

// The one deadline of an exchange: when it fires, whatever step is in progress fails
// (operation_aborted, reported as "timed out"). Cancelled however the request's frame ends.
class Deadline {
 public:
  Deadline(const asio::any_io_executor& ex, std::chrono::milliseconds timeout,
           std::shared_ptr<Exchange> io)
      : timer_(ex, timeout) {
    timer_.async_wait([io = std::move(io)](error_code ec) {
      if (ec) return;
      io->timed_out = true;
      io->resolver.cancel();
      io->socket.cancel();
      io->socket.close();
    });
  }
  ~Deadline() { timer_.cancel(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

 private:
  asio::steady_timer timer_;
};

// Throws HttpClientError for a step that failed or ran into the deadline.
class StepCheck {
 public:
  StepCheck(const Exchange& io, const HttpRequest& req, const HttpUrl& url)
      : io_(io), prefix_(std::string(http::to_string(req.method())) + " " + url.text() + ": ") {}
  void operator()(const error_code& ec, const char* step) const {
    if (!ec && !io_.timed_out) return;
    fail(step, io_.timed_out ? std::string("timed out") : ec.message());
  }
  [[noreturn]] void fail(const char* step, const std::string& why) const {
    throw HttpClientError(prefix_ + step + ": " + why, io_.timed_out);
  }

 private:
  const Exchange& io_;
  std::string prefix_;
};

// Writes the request and reads one response of at most `max_body` body bytes.
template <class Stream>
asio::awaitable<HttpResponse> write_and_read(Stream& stream, const HttpRequest& req,
                                             std::size_t max_body, const StepCheck& check) {
  error_code ec;
  co_await http::async_write(stream, req, ec_token(ec));
  check(ec, "write");
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  parser.skip(req.method() == http::verb::head);
  co_await http::async_read(stream, buffer, parser, ec_token(ec));
  check(ec, "read");
  co_return parser.release();
}

}  // namespace

HttpUrl HttpUrl::parse(std::string_view url) {
  const std::size_t scheme_end = url.find("://");
  const std::string scheme = lower(url.substr(0, scheme_end));
  HttpUrl out;
  out.tls = scheme == "https";
  if (scheme_end == url.npos || (!out.tls && scheme != "http")) {
    throw HttpUrlError("expected http:// or https://");
  }
  const std::string_view rest = url.substr(scheme_end + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  if (authority_end != rest.npos) {
    // The fragment is the client's own (RFC 9110 §4.2.5): never sent.
    const std::string_view target = rest.substr(authority_end, rest.find('#') - authority_end);
    out.target = target.starts_with('/') ? std::string(target) : "/" + std::string(target);
  }
  if (authority.find('@') != authority.npos) throw HttpUrlError("user info is not supported");
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == authority.npos) throw HttpUrlError("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) throw HttpUrlError("bad host");
    if (!after.empty()) port = after.substr(1);
  } else if (const std::size_t colon = authority.find(':'); colon != authority.npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) throw HttpUrlError("missing host");
  if (port && !valid_port(*port)) throw HttpUrlError("bad port");
  out.host = std::string(host);
  out.port = port ? std::string(*port) : out.tls ? "443" : "80";
  return out;
}

std::string HttpUrl::authority() const {
  const std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == (tls ? "443" : "80") ? name : name + ":" + port;
}

std::string HttpUrl::text() const {
  return std::string(tls ? "https://" : "http://") + authority() + target;
}

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  if (options_.schemes == HttpClientOptions::Schemes::Http) return;
  tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(tls_->native_handle(), TLS1_2_VERSION);
  tls_->set_verify_mode(asio::ssl::verify_peer);
  if (options_.ca_file.empty()) {
    tls_->set_default_verify_paths();
    return;
  }
  error_code ec;
  tls_->load_verify_file(options_.ca_file.string(), ec);
  if (ec) {
    throw std::runtime_error("cannot load CA bundle " + options_.ca_file.string() + ": " +
                             ec.message());
  }
}

HttpClient::~HttpClient() = default;

SSL_CTX* HttpClient::tls_context() const {
  return tls_ ? tls_->native_handle() : nullptr;
}

asio::awaitable<HttpResponse> HttpClient::request(const HttpUrl& url, HttpRequest& req) const {
  req.version(11);
  req.target(url.target);
  req.set(http::field::host, url.authority());
  if (req.find(http::field::user_agent) == req.end()) {
    req.set(http::field::user_agent, options_.user_agent);
  }
  req.prepare_payload();

  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  auto io = std::make_shared<Exchange>(executor);
  const StepCheck check(*io, req, url);
  const bool accepted =
      url.tls ? tls_ != nullptr : options_.schemes != HttpClientOptions::Schemes::Https;
  if (!accepted) check.fail("scheme", url.tls ? "https is not accepted" : "https is required");
  const Deadline deadline(executor, options_.timeout, io);
  error_code ec;
  const auto endpoints = co_await io->resolver.async_resolve(url.host, url.port, ec_token(ec));
  check(ec, "resolve");
  co_await io->socket.async_connect(endpoints, ec_token(ec));
  check(ec, "connect");
  if (!url.tls)
    co_return co_await write_and_read(io->socket, req, options_.max_response_body, check);

  beast::ssl_stream<beast::tcp_stream&> stream(io->socket, *tls_);
  // SNI (RFC 6066 §3: not for IP literals) and the name the certificate must carry.
  error_code not_ip;
  asio::ip::make_address(url.host, not_ip);
  if (not_ip && !SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
    check.fail("TLS handshake", "cannot set SNI");
  }
  stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
  co_await stream.async_handshake(asio::ssl::stream_base::client, ec_token(ec));
  check(ec, "TLS handshake");
  // No close_notify exchange afterwards: the response is complete (its length is known), and
  // waiting for the peer's close_notify would add a round trip to every access check.
  co_return co_await write_and_read(stream, req, options_.max_response_body, check);
}

asio::awaitable<HttpResponse> HttpClient::request(http::verb method, const std::string& url,
                                                  const std::string& body,
                                                  const std::string& content_type) const {
  HttpUrl where;
  try {
    where = HttpUrl::parse(url);
  } catch (const HttpUrlError& e) {
    throw HttpUrlError("bad URL " + url + ": " + e.what());
  }
  HttpRequest req{method, where.target, 11};
  req.set(http::field::accept, "*/*");
  if (!body.empty()) {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  co_return co_await request(where, req);
}

}  // namespace iroh::server
