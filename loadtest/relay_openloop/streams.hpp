// The generator's connections: the WebSocket framing of its pre-encoded messages, blocking plain
// and TLS streams (to the relay after its handshake, to nginx, and nginx's to the sink), and what
// a phase connects to (ClientTls, Target). Also the shorthands every file of relay_openloop uses.
#pragma once

#include <openssl/ssl.h>
#include <sys/types.h>

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/tls.hpp"
#include "iroh/relay_proto.hpp"
#include "relay_harness.hpp"

namespace relay_openloop {

namespace relay = iroh::relay;
namespace lt = iroh::loadtest;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The relay's TLS suites in its server-preferred order (core/tls.hpp): nginx's `ssl` listeners,
// its `proxy_ssl` upstream leg and the TLS sink use them too, so that every TLS baseline
// negotiates what the relay does (each phase prints the suite it got) instead of nginx's default
// of the client's order (AES-256-GCM first in OpenSSL's client list).
using iroh::server::kTls12Ciphers;
using iroh::server::kTls13Suites;

// ---- WebSocket framing of pre-encoded messages (RFC 6455 §5.2) ---------------------------------
// The generator writes ready-made bytes, so it cannot go through Beast's stream writer; these two
// functions are the only framing it needs: a masked client binary message and the parse of the
// server's unmasked frame header.

void append_ws_message(relay::Bytes& out, relay::ByteSpan payload);

struct WsHeader {
  std::uint8_t opcode = 0;
  std::size_t header_len = 0;
  std::uint64_t payload_len = 0;
};

// nullopt = need more bytes.
std::optional<WsHeader> parse_ws_header(const std::uint8_t* p, std::size_t have);

// ---- transports --------------------------------------------------------------------------------

void set_io_timeout(int fd, std::chrono::milliseconds limit);
int tcp_connect(std::uint16_t port);

// One connection driven with blocking calls from one thread at a time (a sender only writes; a
// receiver reads and writes only its Pong replies).
class Stream {
 public:
  virtual ~Stream() = default;
  virtual bool write_all(const std::uint8_t* data, std::size_t size) = 0;
  // > 0 bytes read, 0 = end of stream, < 0 = error.
  virtual long read_some(std::uint8_t* data, std::size_t size) = 0;
  // Unblocks a thread stuck in write_all/read_some (they then fail).
  virtual void abort() = 0;
  // The negotiated "protocol suite" (e.g. "TLSv1.3 TLS_AES_128_GCM_SHA256"); empty when plain.
  virtual std::string tls_info() const { return {}; }
  // The socket of a TLS 1.3 connection of which OpenSSL holds no unread bytes, for a receiver
  // that counts its records without decrypting them (tls13_record_receiver); -1 when plain,
  // TLS 1.2 or with bytes buffered.
  virtual int tls13_socket() const { return -1; }
};

class FdStream : public Stream {
 public:
  // `owns`: close the fd on destruction (false when a socket object owns it).
  explicit FdStream(int fd, bool owns = true);
  ~FdStream() override;
  bool write_all(const std::uint8_t* data, std::size_t size) override;
  long read_some(std::uint8_t* data, std::size_t size) override;
  void abort() override;

 private:
  int fd_;
  bool owns_;
};

// TLS on a blocking fd with OpenSSL directly: the client side of the nginx baseline and of GET
// /ping over HTTPS, and (`server`) the TLS sink's side of nginx's `proxy_ssl` connections.
class SslFdStream : public Stream {
 public:
  SslFdStream(SSL_CTX* ctx, int fd, bool server = false);
  ~SslFdStream() override;
  bool write_all(const std::uint8_t* data, std::size_t size) override;
  long read_some(std::uint8_t* data, std::size_t size) override;
  void abort() override;
  std::string tls_info() const override;
  int tls13_socket() const override;

 private:
  int fd_;
  SSL* ssl_;
};

// ---- the systems under test --------------------------------------------------------------------

struct ClientTls {
  ClientTls() : asio_ctx(boost::asio::ssl::context::tls_client) {
    asio_ctx.set_verify_mode(boost::asio::ssl::verify_none);
    raw = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
  }
  ~ClientTls() { SSL_CTX_free(raw); }
  ClientTls(const ClientTls&) = delete;
  ClientTls& operator=(const ClientTls&) = delete;
  boost::asio::ssl::context asio_ctx;
  SSL_CTX* raw = nullptr;
};

// What a phase drives: the relay (with the handshake) or nginx (plain TCP/TLS to a sink).
struct Target {
  std::string name;
  bool relay = true;
  bool tls = false;
  std::uint16_t port = 0;
  pid_t pid = -1;  // for CPU accounting (nginx: the master; its worker is a child)
  ClientTls* client_tls = nullptr;

  // Relay: upgrade + challenge handshake as `key`. nginx: just the (TLS) connection.
  std::unique_ptr<Stream> connect(const relay::SecretKey& key) const;
};

}  // namespace relay_openloop
