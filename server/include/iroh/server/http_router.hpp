// Routing of plain HTTP requests on the daemon's listeners. Services register handlers by
// method + exact path (or path prefix); the query string is ignored for routing (spec §2).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iroh::server {

namespace http = boost::beast::http;

using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

struct RequestInfo {
  boost::asio::ip::tcp::endpoint peer;
  boost::asio::ip::tcp::endpoint local;
  bool tls = false;
};

using HttpHandler =
    std::function<boost::asio::awaitable<HttpResponse>(const HttpRequest&, const RequestInfo&)>;

class HttpRouter {
 public:
  enum class Match { Exact, Prefix };
  // How a connection serves this route's requests when a client pipelines them (RFC 9112
  // §9.3.2). Serial: each request waits for the answer of the one before it. Concurrent: the
  // handler starts while earlier pipelined requests of this route are still being handled
  // (answers still go out in request order); only for requests whose effects commute, e.g. PUT
  // /pkarr (newest-wins, spec address-lookup.md §2.4), so that the outcome is the same as
  // serving them one after the other. Any other request waits for every request before it.
  enum class Pipelining { Serial, Concurrent };

  // Later registrations of the same (verb, path) replace earlier ones. Not thread-safe: register
  // before Daemon::start(). `max_body` > 0: the largest request body this route reads (the
  // listener answers 413 above it); 0 = the listener's default limit.
  void add(http::verb method, std::string path, HttpHandler handler, Match match = Match::Exact,
           std::size_t max_body = 0, Pipelining pipelining = Pipelining::Serial);

  // The handler for (method, path-without-query), exact matches first, then the longest prefix.
  const HttpHandler* find(http::verb method, std::string_view path) const;
  // The body limit of the route find() picks, or `fallback` (no route, or no limit of its own).
  std::size_t body_limit(http::verb method, std::string_view path, std::size_t fallback) const;
  // True if the route find() picks was added with Pipelining::Concurrent.
  bool concurrent(http::verb method, std::string_view path) const;

 private:
  struct Route {
    http::verb method;
    std::string path;
    Match match;
    HttpHandler handler;
    std::size_t max_body = 0;
    Pipelining pipelining = Pipelining::Serial;
  };
  const Route* find_route(http::verb method, std::string_view path) const;
  std::vector<Route> routes_;
};

// Helpers for handlers.
HttpResponse make_response(const HttpRequest& req, http::status status, std::string body = {},
                           std::string_view content_type = {});
// Strips "?query" (and "#fragment") from a request target.
std::string_view target_path(std::string_view target);
// The percent-decoded value of query parameter `name`, if present.
std::optional<std::string> query_param(std::string_view target, std::string_view name);
std::string percent_decode(std::string_view text);

}  // namespace iroh::server
