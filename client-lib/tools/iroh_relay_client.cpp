// iroh-relay-client: command-line client of the relay, the pkarr API and the DNS service, and
// `probe`, an end-to-end check of a deployment. Run without arguments for usage.
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
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "iroh/encoding.hpp"
#include "iroh/http_client.hpp"
#include "iroh/identity.hpp"
#include "iroh/lookup.hpp"
#include "iroh/relay_client.hpp"
#include "iroh/sealed.hpp"
#include "iroh/stun.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

namespace asio = boost::asio;
namespace relay = iroh::relay;
namespace pkarr = iroh::pkarr;
using namespace iroh::client;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage = R"(usage: iroh-relay-client <command> [options]

commands:
  keygen [--out FILE] [--force]          new identity (file mode 0600); prints the EndpointId
  id --key FILE                          print the EndpointId (hex and z-base-32) of a key file
  send --relay URL --to ID [--key FILE] [--seal] [--count N] MESSAGE
                                         send MESSAGE (N times) to an EndpointId through a relay
  listen --relay URL [--key FILE] [--seal] [--count N] [--timeout SECS]
                                         print datagrams: "<src hex> <bytes> <text or hex>"
  publish --pkarr URL --key FILE --home-relay URL [--addr ADDR]... [--user-data TEXT] [--watch]
                                         publish the endpoint record (--watch: keep republishing)
  resolve ID (--pkarr URL | --dns HOST:PORT [--origin ORIGIN] | --doh URL [--post])
                                         look up an EndpointId's record
  probe URL [--stun-port N] [--dns HOST:PORT] [--origin ORIGIN] [--pkarr URL] [--doh URL]
            [--qad-client PROGRAM] [--quic-port N] [--captive-port N] [--skip CHECK,...]
                                         check a deployment end to end; exit 1 if anything fails

common options:
  --ca-file FILE   trust this PEM bundle for https (default: system roots)
  --insecure       do not verify TLS certificates
  --token TOKEN    relay access token (Authorization: Bearer)
  --timeout SECS   per-operation timeout (default 10)

probe checks: ping, captive, relay, datagram, relay-ping, stun, qad, pkarr-put, pkarr-get, dns, doh
  Defaults: STUN on port 3478 of the relay host, DNS on port 53 of the relay host, origin ".",
  pkarr at URL/pkarr, DoH at URL/dns-query; for https URLs the captive-portal check goes to
  http://<host>:80 (--captive-port) as iroh's does, for http URLs to the URL itself. QAD needs an external QUIC client (--qad-client,
  called as PROGRAM -addr HOST:PORT -sni HOST [-ca FILE], exit 0 = handshake done, e.g. the
  quic-go client of tests/interop/qad); without it the line says "not checked".
)";

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;
  std::set<std::string> flags;

  std::optional<std::string> get(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  std::string require(const std::string& name) const {
    auto v = get(name);
    if (!v) throw std::invalid_argument("missing --" + name);
    return *v;
  }
  bool has(const std::string& name) const { return flags.count(name) != 0; }
};

const std::set<std::string> kFlags = {"force", "seal", "post", "insecure", "watch", "help"};

Args parse_args(int argc, char** argv) {
  Args args;
  if (argc < 2) throw std::invalid_argument("missing command");
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        args.options[name.substr(0, eq)].push_back(name.substr(eq + 1));
      } else if (kFlags.count(name)) {
        args.flags.insert(name);
      } else {
        if (i + 1 >= argc) throw std::invalid_argument("--" + name + " needs a value");
        args.options[name].push_back(argv[++i]);
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

std::chrono::milliseconds timeout_of(const Args& args) {
  double secs = std::stod(args.get("timeout").value_or("10"));
  if (!(secs > 0)) throw std::invalid_argument("--timeout must be > 0");
  return std::chrono::milliseconds(static_cast<std::int64_t>(secs * 1000));
}

RelayClientOptions relay_options(const Args& args) {
  RelayClientOptions options;
  if (auto ca = args.get("ca-file")) options.ca_file = *ca;
  options.verify_tls = !args.has("insecure");
  options.auth_token = args.get("token");
  options.connect_timeout = timeout_of(args);
  options.ping_timeout = std::min(options.connect_timeout, std::chrono::milliseconds(5000));
  return options;
}

HttpOptions http_options(const Args& args) {
  HttpOptions options;
  if (auto ca = args.get("ca-file")) options.ca_file = *ca;
  options.verify_tls = !args.has("insecure");
  options.timeout = timeout_of(args);
  return options;
}

relay::EndpointId parse_id(const std::string& text) {
  if (auto id = relay::EndpointId::parse(text)) return *id;
  if (auto id = pkarr::key_from_z32(text)) return *id;
  throw std::invalid_argument("not an EndpointId (64 hex, base32 or z-base-32): " + text);
}

relay::SecretKey key_or_ephemeral(const Args& args) {
  if (auto path = args.get("key")) return load_secret_key(*path);
  auto key = relay::SecretKey::generate();
  std::cerr << "using a throwaway identity " << key.public_key().to_hex() << "\n";
  return key;
}

// Runs `body` to completion on a fresh io_context; rethrows its exception.
void run(std::function<asio::awaitable<void>(asio::io_context&)> body) {
  asio::io_context ctx;
  std::exception_ptr error;
  asio::co_spawn(ctx, body(ctx), [&](std::exception_ptr e) { error = e; });
  ctx.run();
  if (error) std::rethrow_exception(error);
}

std::string printable(relay::ByteSpan bytes) {
  bool text = true;
  for (auto b : bytes) text = text && b >= 0x20 && b < 0x7f;
  if (text) return std::string(bytes.begin(), bytes.end());
  return "0x" + iroh::encoding::hex_encode(bytes);
}

void print_info(const pkarr::EndpointInfo& info) {
  for (const auto& r : info.relay_urls) std::cout << "relay=" << r << "\n";
  for (const auto& a : info.addrs) std::cout << "addr=" << a << "\n";
  if (info.user_data) std::cout << "user-data=" << *info.user_data << "\n";
}

// ---- commands -----------------------------------------------------------------------------------

int cmd_keygen(const Args& args) {
  auto key = relay::SecretKey::generate();
  if (auto out = args.get("out"))
    save_secret_key(*out, key, args.has("force"));
  else
    std::cerr << "no --out: the key is not saved\n";
  std::cout << key.public_key().to_hex() << "\n" << pkarr::key_to_z32(key.public_key()) << "\n";
  return 0;
}

int cmd_id(const Args& args) {
  auto key = load_secret_key(args.require("key"));
  std::cout << key.public_key().to_hex() << "\n" << pkarr::key_to_z32(key.public_key()) << "\n";
  return 0;
}

int cmd_send(const Args& args) {
  if (args.positional.size() != 1) throw std::invalid_argument("send needs one MESSAGE");
  auto key = key_or_ephemeral(args);
  auto to = parse_id(args.require("to"));
  int count = std::stoi(args.get("count").value_or("1"));
  const std::string& message = args.positional[0];
  relay::ByteSpan plain(reinterpret_cast<const std::uint8_t*>(message.data()), message.size());
  std::uint64_t sent = 0;
  run([&](asio::io_context& ctx) -> asio::awaitable<void> {
    RelayClient client(ctx.get_executor(), args.require("relay"), key, relay_options(args));
    co_await client.connect();
    SealedChannel channel(key);
    for (int i = 0; i < count; ++i) {
      co_await client.wait_send_space();
      bool ok = args.has("seal") ? channel.send(client, to, plain) : client.send(to, plain);
      if (ok) ++sent;
    }
    client.close();
  });
  std::cerr << "sent " << sent << " datagram(s)\n";
  return sent == static_cast<std::uint64_t>(count) ? 0 : 1;
}

int cmd_listen(const Args& args) {
  auto key = key_or_ephemeral(args);
  int count = std::stoi(args.get("count").value_or("0"));
  std::optional<std::chrono::milliseconds> limit;
  if (args.get("timeout")) limit = timeout_of(args);
  int received = 0;
  run([&](asio::io_context& ctx) -> asio::awaitable<void> {
    auto options = relay_options(args);
    options.connect_timeout = 10s;
    RelayClient client(ctx.get_executor(), args.require("relay"), key, options);
    co_await client.connect();
    std::cerr << "listening as " << key.public_key().to_hex() << "\n";
    SealedChannel channel(key);
    asio::steady_timer deadline(ctx);
    if (limit) {
      deadline.expires_after(*limit);
      deadline.async_wait([&client](boost::system::error_code ec) {
        if (!ec) client.close();
      });
    }
    while (count == 0 || received < count) {
      std::optional<Received> event;
      try {
        event = co_await client.receive();
      } catch (const RelayClientError& e) {
        if (e.kind() != Errc::Closed || !limit) throw;
      }
      if (!event) break;
      auto* d = std::get_if<ReceivedDatagram>(&*event);
      if (!d) continue;
      ++received;
      std::cout << d->src.to_hex() << " " << d->contents.size() << " ";
      if (args.has("seal")) {
        auto opened = channel.open(d->src, d->contents);
        if (auto* plain = std::get_if<relay::Bytes>(&opened)) {
          std::cout << printable(*plain);
        } else {
          std::cout << "(not opened: " << to_string(std::get<OpenError>(opened)) << ")";
        }
      } else {
        std::cout << printable(d->contents);
      }
      std::cout << std::endl;
    }
    deadline.cancel();
    client.close();
  });
  return count == 0 || received >= count ? 0 : 1;
}

int cmd_publish(const Args& args) {
  auto key = load_secret_key(args.require("key"));
  pkarr::EndpointInfo info;
  info.relay_urls.push_back(args.require("home-relay"));
  if (auto it = args.options.find("addr"); it != args.options.end()) info.addrs = it->second;
  info.user_data = args.get("user-data");
  auto url = args.require("pkarr");
  if (!args.has("watch")) {
    run([&](asio::io_context&) -> asio::awaitable<void> {
      auto packet = sign_endpoint_packet(key, info);
      auto options = http_options(args);
      co_await pkarr_publish(url, packet, options);
      std::cout << "published " << pkarr::key_to_z32(key.public_key()) << " timestamp "
                << packet.timestamp_us() << "\n";
    });
    return 0;
  }
  asio::io_context ctx;
  PublisherOptions options;
  options.http = http_options(args);
  HomeRelayPublisher publisher(ctx.get_executor(), url, key, options);
  publisher.set_info(info);
  std::uint64_t reported = 0;
  std::uint64_t failures = 0;
  for (;;) {  // runs until killed; reports every publish
    ctx.run_for(1s);
    const auto& s = publisher.stats();
    if (s.published != reported) {
      reported = s.published;
      std::cout << "published #" << s.published << " timestamp " << *s.last_timestamp_us
                << std::endl;
    }
    if (s.failed != failures) {
      failures = s.failed;
      std::cerr << "publish failed: " << s.last_error << std::endl;
    }
  }
}

int cmd_resolve(const Args& args) {
  if (args.positional.size() != 1) throw std::invalid_argument("resolve needs one ID");
  auto id = parse_id(args.positional[0]);
  auto origin = args.get("origin").value_or(".");
  auto pkarr_url = args.get("pkarr");
  auto dns_server = args.get("dns");
  auto doh_url = args.get("doh");
  if (!pkarr_url && !dns_server && !doh_url) {
    throw std::invalid_argument("resolve needs --pkarr, --dns or --doh");
  }
  auto http = http_options(args);
  DnsOptions dns;
  dns.timeout = std::min(timeout_of(args), std::chrono::milliseconds(3000));
  auto method = args.has("post") ? DohMethod::Post : DohMethod::Get;
  run([&](asio::io_context&) -> asio::awaitable<void> {
    pkarr::EndpointInfo info;
    if (pkarr_url) {
      info = co_await resolve_pkarr(*pkarr_url, id, http);
    } else if (dns_server) {
      info = co_await resolve_dns(*dns_server, origin, id, dns);
    } else {
      info = co_await resolve_doh(*doh_url, origin, id, method, http);
    }
    print_info(info);
  });
  return 0;
}

// ---- probe --------------------------------------------------------------------------------------

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

int cmd_probe(const Args& args) {
  if (args.positional.size() != 1) throw std::invalid_argument("probe needs one URL");
  Probe p;
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

  struct Row {
    std::string name;
    std::string label;
    CheckResult result;
  };
  std::vector<Row> rows;
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

int main(int argc, char** argv) {
  try {
    auto args = parse_args(argc, argv);
    if (args.command == "-h" || args.command == "--help" || args.command == "help" ||
        args.has("help")) {
      std::cout << kUsage;
      return 0;
    }
    if (args.command == "keygen") return cmd_keygen(args);
    if (args.command == "id") return cmd_id(args);
    if (args.command == "send") return cmd_send(args);
    if (args.command == "listen") return cmd_listen(args);
    if (args.command == "publish") return cmd_publish(args);
    if (args.command == "resolve") return cmd_resolve(args);
    if (args.command == "probe") return cmd_probe(args);
    throw std::invalid_argument("unknown command '" + args.command + "'");
  } catch (const std::invalid_argument& e) {
    std::cerr << "iroh-relay-client: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "iroh-relay-client: " << e.what() << "\n";
    return 1;
  }
}
