#include "relay/http_upgrade.hpp"

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <cctype>

#include "core/time_text.hpp"
#include "relay/relay_service.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string http_date() {
  return format_utc(std::chrono::system_clock::now(), kImfFixdate);
}

std::optional<std::string> captive_portal_response(std::string_view challenge) {
  if (challenge.empty() || challenge.size() >= 64) return std::nullopt;
  for (char c : challenge) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return std::nullopt;
  }
  return "response " + std::string(challenge);
}

UpgradeCheck check_upgrade_request(const HttpRequest& req) {
  UpgradeCheck out;
  auto upgrade = req.find(http::field::upgrade);
  if (upgrade == req.end()) {
    out.error = "missing header: upgrade";
    return out;
  }
  if (!iequals(upgrade->value(), "websocket")) {
    out.error = "invalid header value for upgrade: value must be websocket";
    return out;
  }
  if (req.find(http::field::sec_websocket_key) == req.end()) {
    out.error = "missing header: sec-websocket-key";
    return out;
  }
  auto version = req.find(http::field::sec_websocket_version);
  if (version == req.end()) {
    out.error = "missing header: sec-websocket-version";
    return out;
  }
  if (version->value() != "13") {
    out.error =
        "invalid header value for sec-websocket-version: unsupported websocket version, only "
        "supporting 13";
    out.bad_ws_version = true;
    return out;
  }
  auto protocol = req.find(http::field::sec_websocket_protocol);
  if (protocol == req.end()) {
    out.error = "missing header: sec-websocket-protocol";
    return out;
  }
  std::string_view value = protocol->value();
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (!(u == '\t' || (u >= 0x20 && u < 0x7f))) {
      out.error = "invalid header value for sec-websocket-protocol: header value is not ascii";
      return out;
    }
  }
  auto negotiated = relay::negotiate_subprotocol(value);
  if (!negotiated) {
    out.error =
        "invalid header value for sec-websocket-protocol: unsupported relay version: we support "
        "iroh-relay-v2, iroh-relay-v1 but you only provide " +
        std::string(value);
    return out;
  }
  out.ok = true;
  out.version = static_cast<int>(*negotiated);
  return out;
}

void register_builtin_routes(RelayServiceState& state, bool plain_mode) {
  auto& r = state.relay_router;
  // /, /index.html and /healthz: registered once, by the daemon (http/status_page.hpp).
  r.add(http::verb::get, "/ping",
        [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
          auto res = make_response(req, http::status::ok);
          res.set(http::field::access_control_allow_origin, "*");
          co_return res;
        });
  r.add(http::verb::get, "/robots.txt",
        [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
          co_return make_response(req, http::status::ok, "User-agent: *\nDisallow: /\n");
        });
  auto captive = [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
    auto res = make_response(req, http::status::no_content);
    if (auto it = req.find("X-Iroh-Challenge"); it != req.end()) {
      if (auto value = captive_portal_response(it->value())) res.set("X-Iroh-Response", *value);
    }
    co_return res;
  };
  if (plain_mode) r.add(http::verb::get, "/generate_204", captive);
  state.captive_router.add(http::verb::get, "/generate_204", captive);
}
}  // namespace iroh::server
