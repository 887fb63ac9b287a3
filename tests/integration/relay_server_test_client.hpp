// A raw relay client for integration tests: Beast WebSocket (plain or TLS) driving relay-proto
// directly. Every operation runs on the client's own io_context with a timeout, so a test never
// hangs on a misbehaving server.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "iroh/relay_proto.hpp"

namespace iroh::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

using Headers = std::vector<std::pair<std::string, std::string>>;

// Runs one async operation to completion or timeout. `close` tears the transport down on timeout
// so the aborted handler completes.
template <class Initiate, class Close>
error_code run_op(asio::io_context& ioc, Initiate&& initiate, Close&& close,
                  std::chrono::milliseconds timeout) {
  std::optional<error_code> result;
  initiate([&result](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run_for(timeout);
  if (!result) {
    close();
    ioc.restart();
    ioc.run_for(1s);
    return asio::error::timed_out;
  }
  return *result;
}

// Plain HTTP request (with `body`, if any) on a fresh connection; returns the response or nullopt.
inline std::optional<http::response<http::string_body>> http_request(
    const tcp::endpoint& server, http::verb method, const std::string& target,
    const Headers& headers = {}, std::chrono::milliseconds timeout = 5s, std::string body = {}) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  auto close = [&] {
    error_code ignored;
    socket.close(ignored);
  };
  if (run_op(
          ioc, [&](auto h) { socket.async_connect(server, h); }, close, timeout))
    return {};
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "localhost");
  for (const auto& [k, v] : headers) req.insert(k, v);
  req.body() = std::move(body);
  req.prepare_payload();
  if (run_op(
          ioc, [&](auto h) { http::async_write(socket, req, h); }, close, timeout))
    return {};
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.skip(method == http::verb::head);
  if (run_op(
          ioc, [&](auto h) { http::async_read(socket, buffer, parser, h); }, close, timeout)) {
    return {};
  }
  return parser.release();
}

struct UpgradeOptions {
  std::string protocols = "iroh-relay-v2, iroh-relay-v1";
  std::string target = "/relay";
  Headers headers;
  // TLS only: send x-iroh-relay-client-auth-v1 computed from the TLS exporter with this key.
  std::optional<relay::SecretKey> auth_header_key;
  // TLS only, instead of auth_header_key: the header value computed from the client's TLS
  // session (tests of what the server must refuse: wrong signer, label, suffix...).
  std::function<std::string(SSL*)> auth_header_from_session;

  UpgradeOptions& with_protocols(std::string p) {
    protocols = std::move(p);
    return *this;
  }
  UpgradeOptions& with_target(std::string t) {
    target = std::move(t);
    return *this;
  }
  UpgradeOptions& with_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  UpgradeOptions& with_auth_header(const relay::SecretKey& key) {
    auth_header_key = key;
    return *this;
  }
  UpgradeOptions& with_auth_header(std::function<std::string(SSL*)> from_session) {
    auth_header_from_session = std::move(from_session);
    return *this;
  }
};

template <class Stream>
class BasicRelayTestClient {
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

 public:
  BasicRelayTestClient() requires(!kTls) : ws_(ioc_) {}
  explicit BasicRelayTestClient(ssl::context& ctx) requires(kTls) : ws_(ioc_, ctx) {}

  // TCP connect (+ TLS) + WebSocket upgrade. The 101 (or error) response is in response().
  error_code connect(const tcp::endpoint& server, const UpgradeOptions& opts = {}) {
    auto& sock = beast::get_lowest_layer(ws_);
    error_code ec = op([&](auto h) { sock.async_connect(server, h); });
    if (ec) return ec;
    std::string auth_header;
    if constexpr (kTls) {
      ec = op([&](auto h) { ws_.next_layer().async_handshake(ssl::stream_base::client, h); });
      if (ec) return ec;
      if (opts.auth_header_key) {
        auto pub = opts.auth_header_key->public_key();
        std::array<std::uint8_t, 32> ekm{};
        if (SSL_export_keying_material(ws_.next_layer().native_handle(), ekm.data(), ekm.size(),
                                       relay::kExporterLabel.data(), relay::kExporterLabel.size(),
                                       pub.bytes.data(), pub.bytes.size(), 1) != 1) {
          return asio::error::invalid_argument;
        }
        auth_header =
            relay::encode_auth_header(relay::sign_key_material(*opts.auth_header_key, ekm));
      } else if (opts.auth_header_from_session) {
        auth_header = opts.auth_header_from_session(ws_.next_layer().native_handle());
      }
    }
    ws_.set_option(
        websocket::stream_base::decorator([opts, auth_header](websocket::request_type& req) {
          if (!opts.protocols.empty()) req.set(http::field::sec_websocket_protocol, opts.protocols);
          for (const auto& [k, v] : opts.headers) req.set(k, v);
          if (!auth_header.empty()) req.set(relay::kAuthHeader, auth_header);
        }));
    ws_.read_message_max(2 * 1024 * 1024);
    ec = op([&](auto h) { ws_.async_handshake(response_, "localhost", opts.target, h); });
    if (ec) return ec;
    ws_.binary(true);
    return {};
  }

  const websocket::response_type& response() const { return response_; }

  // Next binary message; nullopt on timeout, close or error (see last_error()).
  std::optional<relay::Bytes> read(std::chrono::milliseconds timeout = 5s) {
    for (;;) {
      beast::flat_buffer buffer;
      last_error_ = op([&](auto h) { ws_.async_read(buffer, h); }, timeout);
      if (last_error_) return std::nullopt;
      if (!ws_.got_binary()) continue;
      auto data = buffer.data();
      auto* p = static_cast<const std::uint8_t*>(data.data());
      return relay::Bytes(p, p + data.size());
    }
  }

  bool write(const relay::Bytes& frame) {
    last_error_ = op([&](auto h) { ws_.async_write(asio::buffer(frame), h); });
    return !last_error_;
  }
  bool write_text(const std::string& text) {
    ws_.text(true);
    last_error_ = op([&](auto h) { ws_.async_write(asio::buffer(text), h); });
    ws_.binary(true);
    return !last_error_;
  }

  // True if the server closes the connection within `timeout` (messages before that are
  // discarded).
  bool closed_by_server(std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      if (!read(left)) return last_error_ != asio::error::timed_out;
    }
    return false;
  }

  // Challenge handshake; returns the server's final handshake message (02 or 03 ...).
  std::optional<relay::Bytes> handshake(const relay::SecretKey& key, bool corrupt = false) {
    auto challenge_msg = read();
    if (!challenge_msg) return std::nullopt;
    auto decoded = relay::decode_handshake(*challenge_msg);
    auto* msg = std::get_if<relay::HandshakeMessage>(&decoded);
    auto* challenge = msg ? std::get_if<relay::ServerChallenge>(msg) : nullptr;
    if (!challenge) return std::nullopt;
    auto auth = relay::sign_challenge(key, challenge->challenge);
    if (corrupt) auth.signature[0] ^= 1;
    if (!write(relay::encode(relay::HandshakeMessage{auth}))) return std::nullopt;
    return read();
  }

  bool send_datagram(const relay::EndpointId& dst, const relay::Bytes& contents,
                     std::uint16_t segment_size = 0, relay::Ecn ecn = relay::Ecn::NotEct) {
    auto frame = relay::encode_client_datagram(dst, ecn, segment_size, contents);
    return frame && write(*frame);
  }

  // Sends Ping(data) and reads until the matching Pong; every other message read meanwhile is
  // appended to `others`. False on timeout/close.
  bool ping_barrier(std::vector<relay::Bytes>* others = nullptr,
                    std::chrono::milliseconds timeout = 5s) {
    relay::Ping ping;
    for (std::size_t i = 0; i < ping.data.size(); ++i)
      ping.data[i] = std::uint8_t(0xa0 + i + counter_);
    ++counter_;
    if (!write(relay::encode_client_frame(ping))) return false;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = read(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now() + 1ms));
      if (!m) return false;
      if (m->size() == 9 && (*m)[0] == 10 &&
          std::equal(ping.data.begin(), ping.data.end(), m->begin() + 1)) {
        return true;
      }
      if (others) others->push_back(*m);
    }
    return false;
  }

  void close() {
    error_code ec;
    beast::get_lowest_layer(ws_).close(ec);
  }

  error_code last_error() const { return last_error_; }
  websocket::stream<Stream>& stream() { return ws_; }

 private:
  template <class Initiate>
  error_code op(Initiate&& initiate, std::chrono::milliseconds timeout = 5s) {
    return run_op(
        ioc_, std::forward<Initiate>(initiate), [this] { close(); }, timeout);
  }

  asio::io_context ioc_;
  websocket::stream<Stream> ws_;
  websocket::response_type response_;
  error_code last_error_;
  int counter_ = 0;
};

using RelayTestClient = BasicRelayTestClient<tcp::socket>;
using TlsRelayTestClient = BasicRelayTestClient<ssl::stream<tcp::socket>>;

}  // namespace iroh::test
