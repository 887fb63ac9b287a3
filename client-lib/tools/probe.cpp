// `iroh-relay-client probe URL`: an end-to-end check of a deployment, one step per service
// (relay HTTP and WebSocket, STUN, QAD, pkarr, DNS, DoH); see the usage text for the defaults.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "cli_args.hpp"
#include "iroh/stun.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace iroh_relay_client {
namespace {

struct CheckResult {
  enum class State { Pass, Fail, NotChecked } state = State::Pass;
  std::optional<std::chrono::microseconds> latency;
  std::string detail;
};

struct Probe {
  std::string url;   // relay URL without trailing '/'
  std::string host;  // relay host (no brackets)
  bool tls = false;
  std::string bracketed_host;  // host, IPv6 in brackets
  std::uint16_t stun_port = 3478;
  std::uint16_t captive_port = 80;  // https relays: iroh asks http://<host>:80/generate_204
  std::uint16_t quic_port = 7842;
  std::string dns_server;
  std::string origin = ".";
  std::string pkarr_url;
  std::string doh_url;
  std::optional<std::string> qad_client;
  std::set<std::string> skip;
  Args args;

  relay::SecretKey a = relay::SecretKey::generate();
  relay::SecretKey b = relay::SecretKey::generate();
  std::optional<pkarr::SignedPacket> published;
  std::optional<pkarr::EndpointInfo> expected;
};

std::string format_latency(std::chrono::microseconds us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(us.count()) / 1000.0);
  return buf;
}

std::chrono::microseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
}

asio::awaitable<CheckResult> check_ping(Probe& p) {
  auto start = Clock::now();
  auto url = p.url + "/ping";
  auto options = http_options(p.args);
  auto response = co_await http_request("GET", url, {}, {}, options);
  CheckResult r{response.status == 200 ? CheckResult::State::Pass : CheckResult::State::Fail,
                since(start), "HTTP " + std::to_string(response.status)};
  co_return r;
}

asio::awaitable<CheckResult> check_captive(Probe& p) {
  // iroh asks http://<host>/generate_204 (port 80) even for https relays; a plain-HTTP relay
  // URL serves it on its own port.
  std::string base =
      p.tls ? "http://" + p.bracketed_host + ":" + std::to_string(p.captive_port) : p.url;
  std::string challenge = "ts_" + p.host;
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("X-Iroh-Challenge", challenge);
  auto options = http_options(p.args);
  auto url = base + "/generate_204";
  auto start = Clock::now();
  auto response = co_await http_request("GET", url, {}, headers, options);
  auto latency = since(start);
  auto answer = response.header("X-Iroh-Response").value_or(std::string());
  bool ok = response.status == 204 && answer == "response " + challenge;
  CheckResult r{ok ? CheckResult::State::Pass : CheckResult::State::Fail, latency,
                "HTTP " + std::to_string(response.status) +
                    (ok ? ", challenge answered" : ", X-Iroh-Response '" + answer + "'")};
  co_return r;
}

struct RelayPair {
  std::unique_ptr<RelayClient> a;
  std::unique_ptr<RelayClient> b;
};

asio::awaitable<CheckResult> check_relay(Probe& p, RelayPair& pair) {
  auto executor = co_await asio::this_coro::executor;
  auto options = relay_options(p.args);
  pair.a = std::make_unique<RelayClient>(executor, p.url, p.a, options);
  pair.b = std::make_unique<RelayClient>(executor, p.url, p.b, options);
  auto start = Clock::now();
  co_await pair.a->connect();
  auto latency = since(start);
  co_await pair.b->connect();
  std::string detail =
      std::string(relay::subprotocol_name(pair.a->protocol_version())) +
      (pair.a->authenticated_by_header() ? ", key-material auth" : ", challenge auth");
  CheckResult r{CheckResult::State::Pass, latency, detail};
  co_return r;
}

asio::awaitable<ReceivedDatagram> next_datagram(RelayClient& client) {
  for (int i = 0; i < 64; ++i) {
    Received event = co_await client.receive();
    if (auto* d = std::get_if<ReceivedDatagram>(&event)) co_return std::move(*d);
  }
  throw std::runtime_error("no datagram among 64 relay events");
}

asio::awaitable<CheckResult> check_datagram(Probe& p, RelayPair& pair) {
  if (!pair.a || !pair.b) {
    CheckResult r{CheckResult::State::Fail, std::nullopt, "no relay connection"};
    co_return r;
  }
  relay::Bytes payload(64);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 13);
  auto start = Clock::now();
  pair.a->send(p.b.public_key(), payload);
  auto at_b = co_await next_datagram(*pair.b);
  if (at_b.src != p.a.public_key() || at_b.contents != payload) {
    throw std::runtime_error("B received other bytes than A sent");
  }
  pair.b->send(p.a.public_key(), at_b.contents);
  auto at_a = co_await next_datagram(*pair.a);
  auto latency = since(start);
  bool ok = at_a.src == p.b.public_key() && at_a.contents == payload;
  CheckResult r{ok ? CheckResult::State::Pass : CheckResult::State::Fail, latency,
                ok ? "A -> B -> A, 64 bytes" : "echo differs"};
  co_return r;
}

asio::awaitable<CheckResult> check_relay_ping(Probe&, RelayPair& pair) {
  if (!pair.a) {
    CheckResult r{CheckResult::State::Fail, std::nullopt, "no relay connection"};
    co_return r;
  }
  auto rtt = co_await pair.a->ping();
  CheckResult r{CheckResult::State::Pass, rtt, "Ping/Pong"};
  co_return r;
}

asio::awaitable<CheckResult> check_stun(Probe& p) {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::udp::resolver resolver(executor);
  auto port = std::to_string(p.stun_port);
  auto endpoints = co_await resolver.async_resolve(p.host, port, asio::use_awaitable);
  auto to = endpoints.begin()->endpoint();
  asio::ip::udp::socket socket(executor, to.protocol());
  socket.connect(to);
  iroh::stun::TransactionId id{};
  std::random_device rd;
  for (auto& b : id) b = static_cast<std::uint8_t>(rd());
  auto request = iroh::stun::make_binding_request(id);
  auto limit = std::min(timeout_of(p.args), std::chrono::milliseconds(3000));
  auto start = Clock::now();
  for (int attempt = 0; attempt < 3; ++attempt) {
    co_await socket.async_send(asio::buffer(request), asio::use_awaitable);
    asio::steady_timer timer(executor, limit / 3);
    timer.async_wait([&socket](boost::system::error_code ec) {
      if (!ec) socket.cancel();
    });
    std::vector<std::uint8_t> buffer(2048);
    auto [ec, n] =
        co_await socket.async_receive(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    timer.cancel();
    if (ec == asio::error::operation_aborted) continue;
    if (ec) throw std::runtime_error(ec.message());
    auto latency = since(start);
    buffer.resize(n);
    auto decoded = iroh::stun::decode(buffer);
    if (!decoded.message ||
        !std::equal(id.begin(), id.end(), decoded.message->transaction.begin() + 4)) {
      CheckResult r{CheckResult::State::Fail, latency, "answer is not our STUN response"};
      co_return r;
    }
    const auto* xor_attr = decoded.message->find(iroh::stun::attr::kXorMappedAddress);
    std::optional<iroh::stun::Endpoint> mapped;
    if (xor_attr) {
      mapped = iroh::stun::decode_xor_address(xor_attr->value, decoded.message->transaction);
    }
    if (!mapped) {
      CheckResult r{CheckResult::State::Fail, latency, "no XOR-MAPPED-ADDRESS"};
      co_return r;
    }
    asio::ip::address address;
    auto un = mapped->unmapped();
    if (un.family == iroh::stun::Endpoint::Family::V4) {
      address = asio::ip::address_v4({un.address[0], un.address[1], un.address[2], un.address[3]});
    } else {
      address = asio::ip::address_v6(un.address);
    }
    const asio::ip::udp::endpoint reflexive(address, un.port);
    std::ostringstream detail;
    detail << "reflexive " << reflexive;
    // On loopback nothing translates addresses, so the server must have seen exactly our socket
    // (RFC 8489 §14.2): a wrong address or port there is a server bug, not a NAT.
    const auto local = socket.local_endpoint();
    if (local.address().is_loopback()) {
      if (reflexive != local) {
        detail << " differs from the local address " << local << " on loopback";
        CheckResult r{CheckResult::State::Fail, latency, detail.str()};
        co_return r;
      }
      detail << " (= local address)";
    }
    CheckResult r{CheckResult::State::Pass, latency, detail.str()};
    co_return r;
  }
  CheckResult r{CheckResult::State::Fail, std::nullopt,
                "no answer from " + p.host + ":" + std::to_string(p.stun_port) + " (3 tries)"};
  co_return r;
}

CheckResult check_qad(Probe& p) {
  if (!p.qad_client) {
    return {CheckResult::State::NotChecked, std::nullopt,
            "not checked: client-lib has no QUIC client (see --qad-client)"};
  }
  std::string addr = (p.host.find(':') != std::string::npos ? "[" + p.host + "]" : p.host) + ":" +
                     std::to_string(p.quic_port);
  std::string cmd = "'" + *p.qad_client + "' -addr '" + addr + "' -sni '" + p.host + "'";
  if (auto ca = p.args.get("ca-file")) cmd += " -ca '" + *ca + "'";
  cmd += " >/dev/null 2>&1";
  auto start = Clock::now();
  int rc = std::system(cmd.c_str());
  auto latency = since(start);
  if (rc == 0) return {CheckResult::State::Pass, latency, "QUIC handshake, ALPN /iroh-qad/0"};
  return {CheckResult::State::Fail, latency,
          "external QUIC client failed (exit " + std::to_string(rc) + ") against " + addr};
}

asio::awaitable<CheckResult> check_pkarr_put(Probe& p) {
  pkarr::EndpointInfo info;
  info.relay_urls.push_back(p.url + "/");
  auto packet = sign_endpoint_packet(p.a, info);
  auto start = Clock::now();
  auto options = http_options(p.args);
  co_await pkarr_publish(p.pkarr_url, packet, options);
  p.published = packet;
  p.expected = info;
  CheckResult r{CheckResult::State::Pass, since(start),
                "PUT " + std::to_string(packet.relay_payload().size()) + " bytes"};
  co_return r;
}

asio::awaitable<CheckResult> check_pkarr_get(Probe& p) {
  if (!p.published) {
    CheckResult r{CheckResult::State::Fail, std::nullopt, "nothing was published"};
    co_return r;
  }
  auto start = Clock::now();
  auto options = http_options(p.args);
  auto packet = co_await pkarr_fetch(p.pkarr_url, p.a.public_key(), options);
  bool same = packet == *p.published;
  CheckResult r{same ? CheckResult::State::Pass : CheckResult::State::Fail, since(start),
                same ? "same signed packet" : "returned another packet"};
  co_return r;
}

CheckResult compare_info(const pkarr::EndpointInfo& got, const Probe& p,
                         std::chrono::microseconds latency) {
  if (p.expected && got == *p.expected) {
    return {CheckResult::State::Pass, latency, "relay=" + got.relay_urls.front()};
  }
  return {CheckResult::State::Fail, latency, "record differs from the published one"};
}

asio::awaitable<CheckResult> check_dns(Probe& p) {
  if (!p.published) {
    CheckResult r{CheckResult::State::Fail, std::nullopt, "nothing was published"};
    co_return r;
  }
  DnsOptions options;
  options.timeout = std::min(timeout_of(p.args), std::chrono::milliseconds(2000));
  auto start = Clock::now();
  auto info = co_await resolve_dns(p.dns_server, p.origin, p.a.public_key(), options);
  auto r = compare_info(info, p, since(start));
  r.detail = iroh_dns_name(p.a.public_key(), p.origin).substr(0, 16) + "… TXT via " + p.dns_server +
             ": " + r.detail;
  co_return r;
}

asio::awaitable<CheckResult> check_doh(Probe& p) {
  if (!p.published) {
    CheckResult r{CheckResult::State::Fail, std::nullopt, "nothing was published"};
    co_return r;
  }
  auto start = Clock::now();
  auto options = http_options(p.args);
  auto info = co_await resolve_doh(p.doh_url, p.origin, p.a.public_key(), DohMethod::Get, options);
  auto r = compare_info(info, p, since(start));
  r.detail = "GET " + p.doh_url + ": " + r.detail;
  co_return r;
}

// The relay URL and where the deployment's other services are (flags, or the defaults the usage
// text lists).
void parse_probe_target(const Args& args, Probe& p) {
  if (args.positional.size() != 1) throw std::invalid_argument("probe needs one URL");
  p.args = args;
  p.url = args.positional[0];
  while (!p.url.empty() && p.url.back() == '/') p.url.pop_back();
  auto parsed = boost::urls::parse_uri(p.url);
  if (!parsed || parsed->host().empty()) throw std::invalid_argument("bad URL " + p.url);
  std::string scheme(parsed->scheme());
  p.tls = !(scheme == "http" || scheme == "ws");
  p.host = parsed->host_type() == boost::urls::host_type::ipv6
               ? parsed->host_ipv6_address().to_string()
               : std::string(parsed->host());
  p.bracketed_host = p.host.find(':') != std::string::npos ? "[" + p.host + "]" : p.host;
  p.stun_port = static_cast<std::uint16_t>(std::stoi(args.get("stun-port").value_or("3478")));
  p.quic_port = static_cast<std::uint16_t>(std::stoi(args.get("quic-port").value_or("7842")));
  p.captive_port = static_cast<std::uint16_t>(std::stoi(args.get("captive-port").value_or("80")));
  p.dns_server = args.get("dns").value_or(p.bracketed_host + ":53");
  p.origin = args.get("origin").value_or(".");
  p.pkarr_url = args.get("pkarr").value_or(p.url + "/pkarr");
  p.doh_url = args.get("doh").value_or(p.url + "/dns-query");
  p.qad_client = args.get("qad-client");
  if (auto skip = args.get("skip")) {
    std::stringstream list(*skip);
    for (std::string item; std::getline(list, item, ',');) p.skip.insert(item);
  }
}

struct ProbeRow {
  std::string name;
  std::string label;
  CheckResult result;
};

// Every check in order: later ones use what earlier ones set up (the relay pair, the packet
// published by pkarr-put). A check that throws fails; --skip makes it "not checked".
std::vector<ProbeRow> run_checks(Probe& p) {
  std::vector<ProbeRow> rows;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    RelayPair pair;
    using Check = std::function<asio::awaitable<CheckResult>()>;
    std::vector<std::tuple<std::string, std::string, Check>> checks = {
        {"ping", "HTTP GET /ping", [&] { return check_ping(p); }},
        {"captive", "captive portal /generate_204", [&] { return check_captive(p); }},
        {"relay", "relay handshake (2 identities)", [&] { return check_relay(p, pair); }},
        {"datagram", "relay datagram round trip", [&] { return check_datagram(p, pair); }},
        {"relay-ping", "relay Ping/Pong", [&] { return check_relay_ping(p, pair); }},
        {"stun", "STUN binding (UDP " + std::to_string(p.stun_port) + ")",
         [&] { return check_stun(p); }},
        {"qad", "QAD (QUIC " + std::to_string(p.quic_port) + ")",
         [&]() -> asio::awaitable<CheckResult> { co_return check_qad(p); }},
        {"pkarr-put", "pkarr PUT", [&] { return check_pkarr_put(p); }},
        {"pkarr-get", "pkarr GET", [&] { return check_pkarr_get(p); }},
        {"dns", "DNS TXT _iroh.<z32>." + (p.origin == "." ? std::string() : p.origin),
         [&] { return check_dns(p); }},
        {"doh", "DoH (RFC 8484 GET)", [&] { return check_doh(p); }},
    };
    for (auto& [name, label, check] : checks) {
      CheckResult result;
      if (p.skip.count(name)) {
        result = {CheckResult::State::NotChecked, std::nullopt, "skipped (--skip)"};
      } else {
        try {
          result = co_await check();
        } catch (const std::exception& e) {
          result = {CheckResult::State::Fail, std::nullopt, e.what()};
        }
      }
      rows.push_back({name, label, result});
    }
    if (pair.a) pair.a->close();
    if (pair.b) pair.b->close();
  });
  return rows;
}

// One line per check, then the failed ones; 1 if any failed.
int print_report(const Probe& p, const std::vector<ProbeRow>& rows) {
  int failed = 0;
  std::printf("probe %s\n", p.url.c_str());
  for (const auto& row : rows) {
    const char* mark = row.result.state == CheckResult::State::Pass   ? "\u2714"
                       : row.result.state == CheckResult::State::Fail ? "\u2717"
                                                                      : "-";
    if (row.result.state == CheckResult::State::Fail) ++failed;
    std::string latency = row.result.latency ? format_latency(*row.result.latency) : "";
    std::printf("%s %-11s %-34s %10s  %s\n", mark, row.name.c_str(), row.label.c_str(),
                latency.c_str(), row.result.detail.c_str());
  }
  if (failed) {
    std::printf("FAILED: %d check(s):", failed);
    for (const auto& row : rows) {
      if (row.result.state == CheckResult::State::Fail) std::printf(" %s", row.name.c_str());
    }
    std::printf("\n");
  } else {
    std::printf("all checks passed\n");
  }
  return failed ? 1 : 0;
}

}  // namespace

int cmd_probe(const Args& args) {
  Probe p;
  parse_probe_target(args, p);
  return print_report(p, run_checks(p));
}

}  // namespace iroh_relay_client
