#include "acme/acme_client.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/log.hpp"
#include "iroh/encoding.hpp"

// GCC 12 false positive on asio's awaitable frame allocator (also silenced in client-lib/tools).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace iroh::server::acme {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

json parse_json(const std::string& body, std::string_view what) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    throw std::runtime_error(std::string(what) + ": response is not a JSON object");
  }
  return doc;
}

std::string string_member(const json& doc, const char* key, std::string_view what) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_string()) {
    throw std::runtime_error(std::string(what) + ": missing \"" + key + "\"");
  }
  return it->get<std::string>();
}

// "type: detail" of an RFC 7807 problem document, or the start of the body.
std::string problem_text(const std::string& body) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_object()) {
    std::string type = doc.value("type", std::string());
    std::string detail = doc.value("detail", std::string());
    if (!type.empty() || !detail.empty()) return type + ": " + detail;
  }
  return body.substr(0, 200);
}

// Retry-After in delta-seconds (RFC 9110 §10.2.3); the HTTP-date form is rare for ACME and is
// treated as absent (the doubling delay applies).
std::chrono::milliseconds retry_after(const HttpResponse& res) {
  auto it = res.find(http::field::retry_after);
  if (it == res.end()) return std::chrono::milliseconds(-1);
  std::string_view value = it->value();
  if (value.empty() || value.size() > 9 || value.find_first_not_of("0123456789") != value.npos) {
    return std::chrono::milliseconds(-1);
  }
  return std::chrono::seconds(std::stol(std::string(value)));
}

const std::string kPostAsGet;
const std::vector<std::string> kAuthzBusy = {"pending", "processing"};
const std::vector<std::string> kOrderPending = {"pending"};
const std::vector<std::string> kOrderProcessing = {"ready", "processing"};

}  // namespace

AcmeClient::AcmeClient(asio::any_io_executor executor, HttpClient& http, EcKey account_key,
                       ChallengePublisher publish)
    : executor_(std::move(executor)),
      http_(http),
      account_key_(std::move(account_key)),
      publish_(std::move(publish)) {}

asio::awaitable<void> AcmeClient::sleep(std::chrono::milliseconds delay) {
  asio::steady_timer timer(executor_, delay);
  co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<void> AcmeClient::load_directory(const std::string& url) {
  const std::string none;
  HttpResponse res = co_await http_.request(http::verb::get, url, none, none);
  if (res.result_int() != 200) {
    throw std::runtime_error("directory " + url + ": HTTP " + std::to_string(res.result_int()));
  }
  json dir = parse_json(res.body(), "directory");
  new_nonce_url_ = string_member(dir, "newNonce", "directory");
  new_account_url_ = string_member(dir, "newAccount", "directory");
  new_order_url_ = string_member(dir, "newOrder", "directory");
}

asio::awaitable<void> AcmeClient::refresh_nonce() {
  const std::string none;
  HttpResponse res = co_await http_.request(http::verb::head, new_nonce_url_, none, none);
  auto it = res.find("Replay-Nonce");
  if (it == res.end() || it->value().empty()) {
    throw std::runtime_error("newNonce: no Replay-Nonce header (HTTP " +
                             std::to_string(res.result_int()) + ")");
  }
  nonce_ = std::string(it->value());
}

asio::awaitable<AcmeClient::Reply> AcmeClient::post(const std::string& url,
                                                    const std::string& payload) {
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) co_await refresh_nonce();
    std::string body = jws_es256(account_key_, url, nonce_, payload, account_url_);
    nonce_.clear();
    const std::string content_type = "application/jose+json";
    HttpResponse res = co_await http_.request(http::verb::post, url, body, content_type);
    if (auto it = res.find("Replay-Nonce"); it != res.end()) nonce_ = std::string(it->value());
    Reply reply;
    reply.status = res.result_int();
    reply.body = std::move(res.body());
    if (auto it = res.find(http::field::location); it != res.end()) {
      reply.location = std::string(it->value());
    }
    reply.retry_after = retry_after(res);
    if (reply.status >= 200 && reply.status < 300) co_return reply;
    std::string problem = problem_text(reply.body);
    // RFC 8555 §6.5: a badNonce error carries a fresh nonce; retry with it.
    if (attempt < 2 && problem.starts_with("urn:ietf:params:acme:error:badNonce")) {
      log::debug("acme: bad nonce, retrying ", url);
      continue;
    }
    throw std::runtime_error("POST " + url + ": HTTP " + std::to_string(reply.status) + " " +
                             problem);
  }
}

asio::awaitable<json> AcmeClient::poll(const std::string& url, const AcmeOrderRequest& request,
                                       const std::vector<std::string>& busy) {
  std::chrono::milliseconds delay = request.first_poll_delay;
  for (int i = 0; i < request.poll_attempts; ++i) {
    Reply reply = co_await post(url, kPostAsGet);
    json doc = parse_json(reply.body, url);
    std::string status = doc.value("status", std::string());
    bool waiting = false;
    for (const std::string& s : busy) waiting = waiting || status == s;
    if (!waiting) co_return doc;
    std::chrono::milliseconds wait = reply.retry_after.count() >= 0
                                         ? std::min(reply.retry_after, request.max_poll_delay)
                                         : delay;
    delay = std::min(delay * 2, request.max_poll_delay);
    co_await sleep(wait);
  }
  throw std::runtime_error(url + ": still " + busy.front() + " after " +
                           std::to_string(request.poll_attempts) + " polls");
}

asio::awaitable<void> AcmeClient::ensure_account(const AcmeOrderRequest& request) {
  if (!account_url_.empty()) co_return;
  // RFC 8555 §7.3: newAccount with the key; an existing account for it answers 200.
  json account = {{"termsOfServiceAgreed", true},
                  {"contact", json::array({"mailto:" + request.contact})}};
  const std::string account_payload = account.dump();
  Reply reply = co_await post(new_account_url_, account_payload);
  if (reply.location.empty()) throw std::runtime_error("newAccount: no Location header");
  account_url_ = reply.location;
  log::info("acme: account ", account_url_, reply.status == 201 ? " created" : " in use");
}

asio::awaitable<AcmeClient::Order> AcmeClient::new_order(const AcmeOrderRequest& request) {
  // RFC 8555 §7.4: one dns identifier per name.
  json identifiers = json::array();
  for (const std::string& name : request.names) {
    identifiers.push_back({{"type", "dns"}, {"value", name}});
  }
  const std::string new_order = json{{"identifiers", identifiers}}.dump();
  Reply created = co_await post(new_order_url_, new_order);
  if (created.location.empty()) throw std::runtime_error("newOrder: no Location header");
  Order order{created.location, parse_json(created.body, "order")};
  log::info("acme: order ", order.url, " for ", request.names.size(), " name(s)");
  if (!order.doc.contains("authorizations") || !order.doc["authorizations"].is_array()) {
    throw std::runtime_error("order: missing \"authorizations\"");
  }
  co_return order;
}

namespace {

// The URL and token of the `type` challenge an authorization offers (RFC 8555 §8); the token
// must be base64url (§8.1), as it becomes a URL path and a file name.
std::pair<std::string, std::string> find_challenge(const json& authz, const std::string& type,
                                                   const std::string& domain) {
  std::string challenge_url, token;
  for (const json& ch : authz.value("challenges", json::array())) {
    if (ch.is_object() && ch.value("type", std::string()) == type) {
      challenge_url = string_member(ch, "url", type + " challenge");
      token = string_member(ch, "token", type + " challenge");
    }
  }
  if (challenge_url.empty()) {
    throw std::runtime_error("authorization for " + domain + " offers no " + type + " challenge");
  }
  if (token.empty() || token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
                                               "vwxyz0123456789-_") != std::string::npos) {
    throw std::runtime_error(type + " challenge for " + domain + ": malformed token");
  }
  return {challenge_url, token};
}

// Throws unless the polled authorization ended valid, with the challenge's error if any.
void require_valid(const json& done, const std::string& domain) {
  const std::string final_status = done.value("status", std::string());
  if (final_status == "valid") return;
  std::string why;
  for (const json& ch : done.value("challenges", json::array())) {
    if (ch.is_object() && ch.contains("error")) why = ch["error"].dump();
  }
  throw std::runtime_error("authorization for " + domain + " is " + final_status +
                           (why.empty() ? "" : ": " + why));
}

}  // namespace

asio::awaitable<void> AcmeClient::authorize(const std::string& authz_url,
                                            const AcmeOrderRequest& request) {
  Reply authz_reply = co_await post(authz_url, kPostAsGet);
  json authz = parse_json(authz_reply.body, "authorization");
  std::string domain = authz.value("identifier", json::object()).value("value", std::string());
  std::string status = authz.value("status", std::string());
  if (status == "valid") co_return;
  if (status != "pending")
    throw std::runtime_error("authorization for " + domain + " is " + status);
  const std::string& type = request.challenge;
  const auto [challenge_url, token] = find_challenge(authz, type, domain);
  // http-01 is looked up by token (the URL path), tls-alpn-01 by domain (the SNI).
  const std::string key = type == "tls-alpn-01" ? domain : token;
  publish_(key, token + "." + account_key_.thumbprint());
  struct Withdraw {
    ChallengePublisher& publish;
    std::string key;
    ~Withdraw() { publish(key, ""); }
  } withdraw{publish_, key};
  log::info("acme: answering ", type, " for ", domain);
  const std::string empty_object = "{}";
  // Named results, not temporaries: GCC 12 destroys temporaries inside co_await twice.
  const Reply started = co_await post(challenge_url, empty_object);
  (void)started;
  const json done = co_await poll(authz_url, request, kAuthzBusy);
  require_valid(done, domain);
  log::info("acme: ", domain, " validated");
}

asio::awaitable<IssuedCertificate> AcmeClient::finalize(const Order& order,
                                                        const AcmeOrderRequest& request) {
  json ready = co_await poll(order.url, request, kOrderPending);
  if (ready.value("status", std::string()) != "ready") {
    throw std::runtime_error("order is " + ready.value("status", std::string()) +
                             " instead of ready");
  }
  // RFC 8555 §7.4: the CSR of a fresh key; then the order is polled until valid.
  EcKey cert_key = EcKey::generate();
  const std::string finalize_url = string_member(ready, "finalize", "order");
  const std::string finalize =
      json{{"csr", encoding::base64url_encode(make_csr_der(cert_key, request.names))}}.dump();
  const Reply finalized = co_await post(finalize_url, finalize);
  (void)finalized;
  json issued = co_await poll(order.url, request, kOrderProcessing);
  if (issued.value("status", std::string()) != "valid") {
    throw std::runtime_error("order is " + issued.value("status", std::string()) +
                             " after finalize: " + issued.value("error", json()).dump());
  }
  const std::string certificate_url = string_member(issued, "certificate", "order");
  Reply cert = co_await post(certificate_url, kPostAsGet);
  if (cert.body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    throw std::runtime_error("certificate download: not a PEM chain");
  }
  co_return IssuedCertificate{std::move(cert.body), cert_key.to_pem()};
}

asio::awaitable<IssuedCertificate> AcmeClient::order_certificate(const AcmeOrderRequest& request) {
  co_await load_directory(request.directory_url);
  co_await ensure_account(request);
  const Order order = co_await new_order(request);
  for (const json& authz_url : order.doc["authorizations"]) {
    if (!authz_url.is_string()) throw std::runtime_error("order: bad authorization URL");
    const std::string url = authz_url.get<std::string>();
    co_await authorize(url, request);
  }
  co_return co_await finalize(order, request);
}

}  // namespace iroh::server::acme
