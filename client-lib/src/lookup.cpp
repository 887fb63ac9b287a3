#include "iroh/lookup.hpp"

extern "C" {
#include <libknot/libknot.h>
}

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cctype>
#include <memory>
#include <random>

#include "iroh/encoding.hpp"
#include "iroh/relay_client.hpp"

namespace iroh::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
using Kind = LookupError::Kind;

std::uint64_t next_pkarr_timestamp() {
  static std::atomic<std::uint64_t> last{0};
  auto now = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  std::uint64_t previous = last.load();
  std::uint64_t next = 0;
  do {
    next = now > previous ? now : previous + 1;
  } while (!last.compare_exchange_weak(previous, next));
  return next;
}

pkarr::SignedPacket sign_endpoint_packet(const relay::SecretKey& key,
                                         const pkarr::EndpointInfo& info, std::uint32_t ttl) {
  auto signed_packet = pkarr::sign_endpoint_info(key, next_pkarr_timestamp(), info, ttl);
  if (auto* err = std::get_if<pkarr::Error>(&signed_packet)) {
    throw LookupError(Kind::BadRecord,
                      "cannot encode the endpoint record: " + std::string(pkarr::to_string(*err)));
  }
  return std::get<pkarr::SignedPacket>(std::move(signed_packet));
}

namespace {

std::string key_url(std::string base, const relay::EndpointId& id) {
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + pkarr::key_to_z32(id);
}

std::string status_message(const std::string& what, const HttpResponse& response) {
  std::string text = what + ": HTTP " + std::to_string(response.status);
  auto body = response.body_text();
  if (!body.empty() && body.size() <= 200) text += " " + body;
  return text;
}

bool is_2xx(unsigned status) {
  return status >= 200 && status < 300;
}

}  // namespace

asio::awaitable<void> pkarr_publish(std::string pkarr_url, pkarr::SignedPacket packet,
                                    HttpOptions options) {
  auto payload = packet.relay_payload();
  auto url = key_url(pkarr_url, packet.public_key());
  pkarr::Bytes body(payload.begin(), payload.end());
  auto response = co_await http_request("PUT", url, body, {}, options);
  if (!is_2xx(response.status)) {
    throw LookupError(Kind::HttpStatus, status_message("PUT " + url, response));
  }
}

asio::awaitable<pkarr::SignedPacket> pkarr_fetch(std::string pkarr_url, relay::EndpointId id,
                                                 HttpOptions options) {
  auto url = key_url(pkarr_url, id);
  auto response = co_await http_request("GET", url, {}, {}, options);
  if (response.status == 404) {
    throw LookupError(Kind::NotFound, "GET " + url + ": no packet (HTTP 404)");
  }
  if (!is_2xx(response.status)) {
    throw LookupError(Kind::HttpStatus, status_message("GET " + url, response));
  }
  auto verified = pkarr::SignedPacket::from_relay_payload(id, response.body);
  if (auto* err = std::get_if<pkarr::Error>(&verified)) {
    throw LookupError(Kind::BadPacket, "GET " + url + ": " + std::string(pkarr::to_string(*err)));
  }
  co_return std::get<pkarr::SignedPacket>(std::move(verified));
}

asio::awaitable<pkarr::EndpointInfo> resolve_pkarr(std::string pkarr_url, relay::EndpointId id,
                                                   HttpOptions options) {
  auto packet = co_await pkarr_fetch(pkarr_url, id, options);
  auto info = pkarr::endpoint_info(packet);
  if (auto* err = std::get_if<pkarr::Error>(&info)) {
    throw LookupError(Kind::BadRecord, std::string(pkarr::to_string(*err)));
  }
  co_return std::get<pkarr::EndpointInfo>(std::move(info));
}

std::string iroh_dns_name(const relay::EndpointId& id, std::string_view origin) {
  std::string name = std::string(pkarr::kIrohTxtName) + "." + pkarr::key_to_z32(id) + ".";
  while (!origin.empty() && origin.front() == '.') origin.remove_prefix(1);
  if (!origin.empty()) {
    name += origin;
    if (name.back() != '.') name += '.';
  }
  return name;
}

pkarr::Bytes build_txt_query(std::string_view name, std::uint16_t id) {
  std::string text(name);
  knot_dname_storage_t qname;
  if (knot_dname_from_str(qname, text.c_str(), sizeof(qname)) == nullptr) {
    throw LookupError(Kind::DnsError, "not a domain name: " + text);
  }
  std::unique_ptr<knot_pkt_t, void (*)(knot_pkt_t*)> pkt(
      knot_pkt_new(nullptr, KNOT_WIRE_MIN_PKTSIZE, nullptr), knot_pkt_free);
  if (!pkt) throw std::bad_alloc();
  knot_wire_set_id(pkt->wire, id);
  knot_wire_set_rd(pkt->wire);
  if (knot_pkt_put_question(pkt.get(), qname, KNOT_CLASS_IN, KNOT_RRTYPE_TXT) != KNOT_EOK) {
    throw LookupError(Kind::DnsError, "cannot build a query for " + text);
  }
  return pkarr::Bytes(pkt->wire, pkt->wire + pkt->size);
}

pkarr::EndpointInfo parse_txt_response(pkarr::ByteSpan response, pkarr::ByteSpan query) {
  constexpr std::size_t kHeader = KNOT_WIRE_HEADER_SIZE;
  if (response.size() < kHeader || query.size() < kHeader) {
    throw LookupError(Kind::DnsError, "DNS response shorter than its header");
  }
  if (response[0] != query[0] || response[1] != query[1]) {
    throw LookupError(Kind::DnsError, "DNS response ID does not match the query");
  }
  if (!knot_wire_get_qr(response.data())) {
    throw LookupError(Kind::DnsError, "DNS message is not a response");
  }
  // The question must be ours (names compared case-insensitively: 0x20 randomisation).
  std::size_t question = query.size() - kHeader;
  bool same_question =
      knot_wire_get_qdcount(response.data()) == 1 && response.size() >= kHeader + question;
  for (std::size_t i = 0; same_question && i < question; ++i) {
    same_question = std::tolower(response[kHeader + i]) == std::tolower(query[kHeader + i]);
  }
  if (!same_question) throw LookupError(Kind::DnsError, "DNS response to another question");
  auto rcode = knot_wire_get_rcode(response.data());
  if (rcode == KNOT_RCODE_NXDOMAIN) throw LookupError(Kind::NotFound, "NXDOMAIN");
  if (rcode != KNOT_RCODE_NOERROR) {
    throw LookupError(Kind::DnsError, "DNS RCODE " + std::to_string(rcode));
  }
  auto answers = pkarr::parse_dns(response);
  if (auto* err = std::get_if<pkarr::Error>(&answers)) {
    throw LookupError(Kind::DnsError, "bad DNS response: " + std::string(pkarr::to_string(*err)));
  }
  // Like iroh: every TXT record of the answer section counts (§3).
  std::vector<pkarr::Record> txt;
  for (auto& r : std::get<std::vector<pkarr::Record>>(answers)) {
    if (r.type == pkarr::kTypeTxt) txt.push_back(std::move(r));
  }
  if (txt.empty()) throw LookupError(Kind::NotFound, "no TXT records (NODATA)");
  auto info = pkarr::parse_endpoint_info(txt);
  if (auto* err = std::get_if<pkarr::Error>(&info)) {
    throw LookupError(Kind::BadRecord, std::string(pkarr::to_string(*err)));
  }
  return std::get<pkarr::EndpointInfo>(std::move(info));
}

namespace {

struct HostPort {
  std::string host;
  std::string port;
};

HostPort split_server(std::string_view server) {
  HostPort out{std::string(server), "53"};
  if (!server.empty() && server.front() == '[') {
    auto close = server.find(']');
    if (close == std::string_view::npos) {
      throw RelayClientError(Errc::InvalidUrl, std::string(server) + ": missing ']'");
    }
    out.host = std::string(server.substr(1, close - 1));
    if (close + 1 < server.size()) {
      if (server[close + 1] != ':') {
        throw RelayClientError(Errc::InvalidUrl, std::string(server) + ": expected ':port'");
      }
      out.port = std::string(server.substr(close + 2));
    }
  } else if (auto colon = server.find(':'); colon != std::string_view::npos &&
                                            server.find(':', colon + 1) == std::string_view::npos) {
    out.host = std::string(server.substr(0, colon));
    out.port = std::string(server.substr(colon + 1));
  }
  if (out.host.empty() || out.port.empty()) {
    throw RelayClientError(Errc::InvalidUrl, std::string(server) + ": expected HOST:PORT");
  }
  return out;
}

std::uint16_t random_id() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<std::uint16_t>(rng());
}

asio::awaitable<pkarr::Bytes> query_tcp(const asio::ip::tcp::resolver::results_type& endpoints,
                                        const pkarr::Bytes& query,
                                        std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);
  co_await stream.async_connect(endpoints, asio::use_awaitable);
  pkarr::Bytes framed(query.size() + 2);
  framed[0] = static_cast<std::uint8_t>(query.size() >> 8);
  framed[1] = static_cast<std::uint8_t>(query.size() & 0xff);
  std::copy(query.begin(), query.end(), framed.begin() + 2);
  co_await asio::async_write(stream, asio::buffer(framed), asio::use_awaitable);
  std::array<std::uint8_t, 2> length{};
  co_await asio::async_read(stream, asio::buffer(length), asio::use_awaitable);
  pkarr::Bytes response(static_cast<std::size_t>(length[0]) << 8 | length[1]);
  co_await asio::async_read(stream, asio::buffer(response), asio::use_awaitable);
  co_return response;
}

}  // namespace

asio::awaitable<pkarr::EndpointInfo> resolve_dns(std::string server, std::string origin,
                                                 relay::EndpointId id, DnsOptions options) {
  auto executor = co_await asio::this_coro::executor;
  auto target = split_server(server);
  auto query = build_txt_query(iroh_dns_name(id, origin), random_id());
  pkarr::Bytes response;
  try {
    asio::ip::udp::resolver udp_resolver(executor);
    auto udp_endpoints =
        co_await udp_resolver.async_resolve(target.host, target.port, asio::use_awaitable);
    auto to = udp_endpoints.begin()->endpoint();
    asio::ip::udp::socket socket(executor, to.protocol());
    socket.connect(to);
    bool answered = false;
    for (int attempt = 0; attempt < std::max(options.attempts, 1) && !answered; ++attempt) {
      co_await socket.async_send(asio::buffer(query), asio::use_awaitable);
      asio::steady_timer timer(executor, options.timeout);
      bool timed_out = false;
      timer.async_wait([&socket, &timed_out](error_code ec) {
        if (ec) return;
        timed_out = true;
        socket.cancel();
      });
      // Datagrams with another ID (late answers to an earlier attempt) are skipped.
      for (int skipped = 0; skipped < 16 && !answered && !timed_out; ++skipped) {
        pkarr::Bytes buffer(65535);
        auto [ec, n] = co_await socket.async_receive(asio::buffer(buffer),
                                                     asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted) break;
        if (ec) throw boost::system::system_error(ec);
        buffer.resize(n);
        if (n >= 2 && buffer[0] == query[0] && buffer[1] == query[1]) {
          response = std::move(buffer);
          answered = true;
        }
      }
      timer.cancel();
    }
    if (!answered) {
      throw RelayClientError(Errc::Timeout, "no DNS answer from " + server + " after " +
                                                std::to_string(std::max(options.attempts, 1)) +
                                                " attempt(s)");
    }
    if (response.size() >= KNOT_WIRE_HEADER_SIZE && knot_wire_get_tc(response.data())) {
      asio::ip::tcp::resolver tcp_resolver(executor);
      auto tcp_endpoints =
          co_await tcp_resolver.async_resolve(target.host, target.port, asio::use_awaitable);
      response = co_await query_tcp(tcp_endpoints, query, options.timeout);
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() == beast::error::timeout) {
      throw RelayClientError(Errc::Timeout, "DNS over TCP to " + server + " timed out", e.code());
    }
    throw RelayClientError(Errc::Io, "DNS " + server + ": " + e.code().message(), e.code());
  }
  co_return parse_txt_response(response, query);
}

asio::awaitable<pkarr::EndpointInfo> resolve_doh(std::string doh_url, std::string origin,
                                                 relay::EndpointId id, DohMethod method,
                                                 HttpOptions options) {
  // RFC 8484 §4.1: ID 0 makes GET responses cacheable.
  auto query = build_txt_query(iroh_dns_name(id, origin), 0);
  std::vector<std::pair<std::string, std::string>> headers{{"Accept", "application/dns-message"}};
  HttpResponse response;
  if (method == DohMethod::Get) {
    auto url = doh_url + (doh_url.find('?') == std::string::npos ? "?" : "&") +
               "dns=" + encoding::base64url_encode(query);
    response = co_await http_request("GET", url, {}, headers, options);
  } else {
    headers.emplace_back("Content-Type", "application/dns-message");
    response = co_await http_request("POST", doh_url, query, headers, options);
  }
  if (response.status != 200) {
    throw LookupError(Kind::HttpStatus, status_message("DoH " + doh_url, response));
  }
  auto type = response.header("Content-Type").value_or(std::string());
  if (type.rfind("application/dns-message", 0) != 0) {
    throw LookupError(Kind::DnsError, "DoH " + doh_url + ": Content-Type '" + type +
                                          "' is not application/dns-message");
  }
  co_return parse_txt_response(response.body, query);
}

// ---- HomeRelayPublisher -------------------------------------------------------------------------

class HomeRelayPublisher::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::any_io_executor executor, std::string url, relay::SecretKey key,
       PublisherOptions options)
      : url_(std::move(url)),
        key_(key),
        options_(std::move(options)),
        timer_(std::move(executor)) {}

  void set_info(pkarr::EndpointInfo info) {
    info_ = std::move(info);
    dirty_ = true;
    if (stopped_) return;
    if (!running_) {
      running_ = true;
      asio::co_spawn(timer_.get_executor(), run(shared_from_this()), asio::detached);
    } else {
      timer_.cancel();
    }
  }

  void stop() {
    stopped_ = true;
    timer_.cancel();
  }

  const PublisherStats& stats() const { return stats_; }

 private:
  static asio::awaitable<void> run(std::shared_ptr<Impl> self) {
    int failures = 0;
    while (!self->stopped_) {
      self->dirty_ = false;
      std::string error;
      try {
        auto packet = sign_endpoint_packet(self->key_, self->info_, self->options_.ttl);
        co_await pkarr_publish(self->url_, packet, self->options_.http);
        ++self->stats_.published;
        self->stats_.last_timestamp_us = packet.timestamp_us();
        failures = 0;
      } catch (const std::exception& e) {
        error = e.what();
      }
      std::chrono::milliseconds wait = self->options_.republish_interval;
      if (!error.empty()) {
        ++self->stats_.failed;
        self->stats_.last_error = error;
        ++failures;
        wait = std::min(self->options_.retry_step * failures, self->options_.republish_interval);
      }
      if (self->dirty_ || self->stopped_) continue;
      error_code ec;
      self->timer_.expires_after(wait);
      co_await self->timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  std::string url_;
  relay::SecretKey key_;
  PublisherOptions options_;
  asio::steady_timer timer_;
  pkarr::EndpointInfo info_;
  bool dirty_ = false;
  bool running_ = false;
  bool stopped_ = false;
  PublisherStats stats_;
};

HomeRelayPublisher::HomeRelayPublisher(asio::any_io_executor executor, std::string pkarr_url,
                                       relay::SecretKey key, PublisherOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(pkarr_url), key,
                                   std::move(options))) {}

HomeRelayPublisher::~HomeRelayPublisher() {
  if (impl_) impl_->stop();
}

void HomeRelayPublisher::set_info(pkarr::EndpointInfo info) {
  impl_->set_info(std::move(info));
}
void HomeRelayPublisher::stop() {
  impl_->stop();
}
const PublisherStats& HomeRelayPublisher::stats() const {
  return impl_->stats();
}

}  // namespace iroh::client
