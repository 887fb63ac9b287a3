// The daemon's one outgoing HTTP(S)/1.1 client, for the ACME conversation (acme/, RFC 8555) and
// the access-control callout (relay/access_control.cpp, relay.md §6.9). Both make a handful of
// small requests, so one request per connection; one deadline covers the whole exchange
// (resolve, connect, TLS, write, read); responses are bounded; the TLS context (and the CA bundle
// it reads) is built once per client and every HTTPS request reuses it.
#pragma once

#include <openssl/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "iroh/server/http_router.hpp"

namespace iroh::server {

// "http(s)://host[:port][/path][?query]". The scheme is case-insensitive, an IPv6 host is
// bracketed, the port defaults to the scheme's.
struct HttpUrl {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string target = "/";  // path and query

  // Throws HttpUrlError naming what is wrong (the caller adds the config key or the URL).
  static HttpUrl parse(std::string_view url);
  // The Host header (RFC 9110 §7.2): the port only when it is not the scheme's default.
  std::string authority() const;
  // "https://host:port/target", for messages.
  std::string text() const;
};

class HttpUrlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A request that failed: "<METHOD> <url>: <step>: <reason>", e.g. "POST http://a/b: connect:
// Connection refused" or "...: read: timed out".
class HttpClientError : public std::runtime_error {
 public:
  HttpClientError(const std::string& what, bool timed_out)
      : std::runtime_error(what), timed_out_(timed_out) {}
  bool timed_out() const { return timed_out_; }

 private:
  bool timed_out_;
};

struct HttpClientOptions {
  enum class Schemes { Https, Http, Both };
  // Which URLs request() accepts; a TLS context is built only when https is among them.
  Schemes schemes = Schemes::Https;
  // PEM bundle the server certificate must chain to; empty = the system's default verify paths.
  std::filesystem::path ca_file;
  // The whole exchange, resolve to the last body byte.
  std::chrono::milliseconds timeout{30000};
  // Larger response bodies fail the request ("read: body limit exceeded").
  std::size_t max_response_body = 1 << 20;
  std::string user_agent = "iroh-relay/" IROH_RELAY_VERSION;
};

class HttpClient {
 public:
  // Throws std::runtime_error naming the file if the CA bundle cannot be loaded.
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();

  // Sends `req` (method, extra header fields, body; the target, Host, User-Agent and
  // Content-Length are set here; it must outlive the awaitable) to `url` on the caller's executor.
  // Thread-safe: callers on different executors may share one client. Throws HttpClientError on a
  // refused scheme, resolve, connect, TLS (certificate not trusted or not for the host), write,
  // read errors, an oversize response or the deadline; a response with any status is returned.
  boost::asio::awaitable<HttpResponse> request(const HttpUrl& url, HttpRequest& req) const;
  // The same for a URL text and an optional body of `content_type`; HttpUrlError for a bad URL.
  // The arguments must outlive the awaitable (callers pass named locals: GCC 12 mishandles
  // temporaries inside co_await expressions).
  boost::asio::awaitable<HttpResponse> request(http::verb method, const std::string& url,
                                               const std::string& body,
                                               const std::string& content_type) const;

  // The one TLS context of this client (null when https is not accepted); tests count the
  // handshakes made with it.
  SSL_CTX* tls_context() const;

 private:
  HttpClientOptions options_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace iroh::server
