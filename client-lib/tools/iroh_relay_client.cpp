// iroh-relay-client: command-line client of the relay, the pkarr API and the DNS service, and
// `probe`, an end-to-end check of a deployment (probe.cpp). Run without arguments for usage.
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

#include "cli_args.hpp"
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

namespace iroh_relay_client {
namespace {

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

}  // namespace
}  // namespace iroh_relay_client

int main(int argc, char** argv) {
  using namespace iroh_relay_client;
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
