#include "dns/doh.hpp"

#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "http/cors.hpp"
#include "iroh/encoding.hpp"

namespace iroh::server {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kDnsMessage = "application/dns-message";
constexpr std::string_view kDnsJson = "application/dns-json";
constexpr std::string_view kJavascript = "application/x-javascript";

HttpResponse respond(const HttpRequest& req, http::status status, std::string body,
                     std::string_view content_type) {
  HttpResponse res = make_response(req, status, std::move(body), content_type);
  add_cors_headers(res);
  return res;
}

void set_cache_control(HttpResponse& res, const dns::Answer& answer) {
  if (answer.answers > 0) {
    res.set(http::field::cache_control, "s-maxage=" + std::to_string(answer.min_ttl));
  }
}

struct DohResult {
  dns::Answer answer;
  std::vector<std::uint8_t> wire;
};

// Resolves `query`; nullopt (-> 400) for messages the DNS listeners would drop or FORMERR.
std::optional<DohResult> resolve(DnsHandler& handler, dns::ByteSpan query) {
  DohResult r;
  r.wire.resize(dns::kMaxMessageSize);
  r.answer = handler.handle(query, dns::Transport::Https, r.wire);
  if (r.answer.outcome == dns::Outcome::Dropped || r.answer.outcome == dns::Outcome::Malformed) {
    return std::nullopt;
  }
  r.wire.resize(r.answer.size);
  return r;
}

HttpResponse wire_response(const HttpRequest& req, DnsHandler& handler, dns::ByteSpan query,
                           bool cache_control) {
  std::optional<DohResult> r = resolve(handler, query);
  if (!r) return lookup_json_error(req, http::status::bad_request, "invalid DNS query message");
  HttpResponse res =
      respond(req, http::status::ok, std::string(r->wire.begin(), r->wire.end()), kDnsMessage);
  if (cache_control) set_cache_control(res, r->answer);
  return res;
}

std::optional<bool> parse_bool(const boost::urls::params_view& params, std::string_view key,
                               bool fallback, bool& ok) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  const auto value = (*it).value;
  if (value == "true") return true;
  if (value == "false") return false;
  ok = false;
  return std::nullopt;
}

HttpResponse json_response(const HttpRequest& req, DnsHandler& handler,
                           const boost::urls::params_view& params) {
  auto name = params.find("name");
  if (name == params.end() || (*name).value.empty()) {
    return lookup_json_error(req, http::status::bad_request, "missing parameter 'name'");
  }
  dns::JsonQuery q;
  q.name = (*name).value;
  if (auto type = params.find("type"); type != params.end()) {
    auto parsed = dns::parse_rrtype((*type).value);
    if (!parsed)
      return lookup_json_error(req, http::status::bad_request, "invalid parameter 'type'");
    q.type = *parsed;
  }
  bool ok = true;
  q.rd = parse_bool(params, "rd", true, ok).value_or(false);
  q.cd = parse_bool(params, "cd", false, ok).value_or(false);
  // iroh-dns-server's quirk, kept: `do` sets AD in the synthesized query (no EDNS).
  q.ad = parse_bool(params, "do", false, ok).value_or(false);
  if (!ok)
    return lookup_json_error(req, http::status::bad_request, "rd, cd and do take true or false");
  auto query = dns::make_query(q);
  if (!query) return lookup_json_error(req, http::status::bad_request, "invalid parameter 'name'");
  std::optional<DohResult> r = resolve(handler, *query);
  if (!r) return lookup_json_error(req, http::status::bad_request, "invalid DNS query");
  auto view = dns::view_response(r->wire);
  if (!view) return lookup_json_error(req, http::status::internal_server_error, "internal error");

  nlohmann::ordered_json body;
  body["Status"] = view->rcode;
  body["TC"] = view->tc;
  body["RD"] = view->rd;
  body["RA"] = view->ra;
  body["AD"] = view->ad;
  body["CD"] = view->cd;
  body["Question"] = nlohmann::ordered_json::array(
      {{{"name", view->question_name}, {"type", view->question_type}}});
  if (!view->answers.empty()) {
    auto& answers = body["Answer"] = nlohmann::ordered_json::array();
    for (const dns::ResponseRecord& a : view->answers) {
      answers.push_back({{"name", a.name}, {"type", a.type}, {"TTL", a.ttl}, {"data", a.data}});
    }
  }
  body["Comment"] = nullptr;
  body["edns_client_subnet"] = nullptr;
  // TXT data is raw bytes: invalid UTF-8 becomes U+FFFD.
  HttpResponse res = respond(
      req, http::status::ok,
      body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace), kDnsJson);
  set_cache_control(res, r->answer);
  return res;
}

HttpResponse handle_get(const HttpRequest& req, DnsHandler& handler) {
  const auto accept = req.find(http::field::accept);
  enum class Format { Wire, Json } format;
  if (accept == req.end() || accept->value() == kDnsMessage) {
    format = Format::Wire;
  } else if (accept->value() == kDnsJson || accept->value() == kJavascript) {
    format = Format::Json;
  } else {
    return lookup_json_error(req, http::status::not_acceptable,
                             "accept application/dns-message or application/dns-json");
  }
  auto target = boost::urls::parse_origin_form(std::string_view(req.target()));
  if (!target) return lookup_json_error(req, http::status::bad_request, "invalid request target");
  const boost::urls::params_view params = target->params();
  if (format == Format::Json) return json_response(req, handler, params);
  auto dns_param = params.find("dns");
  if (dns_param == params.end()) {
    return lookup_json_error(req, http::status::bad_request, "missing parameter 'dns'");
  }
  // RFC 8484 §4.1: base64url without padding (iroh/encoding's strict decoder). Text longer than
  // any DNS message can encode to is refused before decoding.
  const std::string text = (*dns_param).value;
  std::optional<encoding::Bytes> query;
  if (text.size() <= 2 * dns::kMaxMessageSize) query = encoding::base64url_decode(text);
  if (!query) {
    return lookup_json_error(req, http::status::bad_request, "'dns' is not unpadded base64url");
  }
  return wire_response(req, handler, *query, true);
}

}  // namespace

void add_doh_routes(HttpRouter& router, std::shared_ptr<DnsHandler> handler) {
  router.add(
      http::verb::get, "/dns-query",
      [handler](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
        co_return handle_get(req, *handler);
      });
  router.add(
      http::verb::post, "/dns-query",
      [handler](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
        const std::string& body = req.body();
        co_return wire_response(
            req, *handler,
            dns::ByteSpan(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()), false);
      },
      HttpRouter::Match::Exact, dns::kMaxMessageSize);
  add_cors_preflight_routes(router);
}

}  // namespace iroh::server
