// A minimal HTTPS/1.1 client for the ACME conversation: one TLS connection per request (ACME
// traffic is a handful of small requests per issuance), the server certificate verified against
// a configured CA bundle (or the system store) and the host name, every step under a deadline.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <string>

namespace iroh::server::acme {

namespace http = boost::beast::http;

struct HttpsUrl {
  std::string host;
  std::string port = "443";
  std::string target = "/";  // path and query
  // "https://host[:port][/path]"; throws std::runtime_error for anything else.
  static HttpsUrl parse(std::string_view url);
};

using HttpsResponse = http::response<http::string_body>;

class HttpsClient {
 public:
  // `ca_file` empty = the system's default verify paths. Throws if the bundle cannot be loaded.
  HttpsClient(boost::asio::any_io_executor executor, const std::filesystem::path& ca_file,
              std::chrono::seconds timeout = std::chrono::seconds(30));

  // Sends one request; `body` non-empty goes with Content-Type `content_type`. Throws
  // std::runtime_error naming the URL on connection, TLS, timeout or HTTP parse errors.
  // Responses are limited to 1 MiB. The arguments must outlive the returned awaitable (callers
  // pass named locals: GCC 12 mishandles temporaries inside co_await expressions).
  boost::asio::awaitable<HttpsResponse> request(http::verb method, const std::string& url,
                                                const std::string& body,
                                                const std::string& content_type);

 private:
  boost::asio::any_io_executor executor_;
  boost::asio::ssl::context tls_;
  std::chrono::seconds timeout_;
};

}  // namespace iroh::server::acme
