#include "http/cors.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

namespace iroh::server {
namespace {

namespace asio = boost::asio;

constexpr std::string_view kCorsVary =
    "origin, access-control-request-method, access-control-request-headers";

}  // namespace

void add_cors_headers(HttpResponse& res) {
  res.set(http::field::access_control_allow_origin, "*");
  res.set(http::field::vary, kCorsVary);
}

HttpResponse cors_response(const HttpRequest& req, http::status status, std::string body,
                           std::string_view content_type) {
  HttpResponse res = make_response(req, status, std::move(body), content_type);
  add_cors_headers(res);
  return res;
}

HttpResponse lookup_json_error(const HttpRequest& req, http::status status,
                               std::optional<std::string> detail) {
  nlohmann::ordered_json body = {
      {"status", std::to_string(static_cast<unsigned>(status))},
      {"detail", detail ? nlohmann::ordered_json(*detail) : nlohmann::ordered_json(nullptr)}};
  return cors_response(req, status,
                       body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
                       "application/json");
}

void add_cors_preflight_routes(HttpRouter& router) {
  auto preflight = [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
    HttpResponse res = cors_response(req, http::status::ok);
    res.set(http::field::access_control_allow_methods, "GET,POST,PUT");
    co_return res;
  };
  router.add(http::verb::options, "/", preflight, HttpRouter::Match::Prefix);
  router.add(http::verb::options, "*", preflight);
}

}  // namespace iroh::server
