// A TLS client written against OpenSSL's SSL_* API directly (no Asio, no Beast): the tests check
// the relay's TLS and its header auth (spec relay.md §4.3) against a client that shares none of
// the server's code. Blocking socket to 127.0.0.1 with 5 s send and receive timeouts, so that no
// read or write of a test can hang.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "iroh/relay_proto.hpp"

namespace iroh::test {

// TLS exporter output as spec relay.md §4.3 defines it, but with any label and context (the
// tests also export with wrong ones).
inline std::array<std::uint8_t, 32> export_keying_material(SSL* ssl, std::string_view label,
                                                           const relay::EndpointId& context) {
  std::array<std::uint8_t, 32> ekm{};
  if (SSL_export_keying_material(ssl, ekm.data(), ekm.size(), label.data(), label.size(),
                                 context.bytes.data(), context.bytes.size(), 1) != 1) {
    ADD_FAILURE() << "SSL_export_keying_material failed";
  }
  return ekm;
}

class RawTlsClient {
 public:
  // Connects to 127.0.0.1:`port` and runs the TLS handshake; connected() says whether both
  // worked.
  explicit RawTlsClient(std::uint16_t port)
      : fd_(::socket(AF_INET, SOCK_STREAM, 0)),
        ctx_(SSL_CTX_new(TLS_client_method())),
        ssl_(ctx_ ? SSL_new(ctx_) : nullptr) {
    if (fd_ < 0 || !ssl_) return;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) return;
    SSL_set_fd(ssl_, fd_);
    connected_ = SSL_connect(ssl_) == 1;
  }
  ~RawTlsClient() {
    if (ssl_) {
      if (connected_) SSL_shutdown(ssl_);
      SSL_free(ssl_);
    }
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  RawTlsClient(const RawTlsClient&) = delete;
  RawTlsClient& operator=(const RawTlsClient&) = delete;

  bool connected() const { return connected_; }
  SSL* ssl() const { return ssl_; }
  // The socket under TLS, for tests that write bytes that are not TLS records.
  int fd() const { return fd_; }

  struct Upgrade {
    std::string head;                           // the HTTP response head (or what arrived)
    std::uint8_t first_byte = 0;                // FIN, RSV and opcode of the first frame
    std::optional<relay::Bytes> first_message;  // its payload
  };
  // The relay's WebSocket upgrade (spec relay.md §4.1) with `auth_header` as the value of the
  // §4.3 header, written by hand; returns the response head and the first WebSocket message.
  // Bounded: at most 50 reads, each within the 5 s receive timeout.
  Upgrade relay_upgrade(const std::string& auth_header) {
    Upgrade out;
    const std::string request =
        "GET /relay HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: iroh-relay-v2\r\n" +
        std::string(relay::kAuthHeader) + ": " + auth_header + "\r\n\r\n";
    if (!connected_ ||
        SSL_write(ssl_, request.data(), int(request.size())) != int(request.size())) {
      return out;
    }
    std::string in;
    char buf[4096];
    for (int i = 0; i < 50; ++i) {
      const auto head_end = in.find("\r\n\r\n");
      // Server frames are unmasked and handshake messages short: a 7-bit length (RFC 6455 §5.2).
      if (head_end != std::string::npos && in.size() >= head_end + 4 + 2) {
        const std::size_t length = std::uint8_t(in[head_end + 5]) & 0x7f;
        if (in.size() >= head_end + 4 + 2 + length) {
          out.head = in.substr(0, head_end + 4);
          out.first_byte = std::uint8_t(in[head_end + 4]);
          const auto* p = reinterpret_cast<const std::uint8_t*>(in.data()) + head_end + 6;
          out.first_message = relay::Bytes(p, p + length);
          return out;
        }
      }
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, std::size_t(n));
    }
    out.head = in;
    return out;
  }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool connected_ = false;
};

}  // namespace iroh::test
