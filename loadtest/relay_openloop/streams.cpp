// The generator's connections (streams.hpp): WebSocket framing, sockets, the blocking plain and
// TLS streams, and Target::connect with the relay's handshake.
#include "relay_openloop/streams.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <stdexcept>
#include <utility>

#include "integration/relay_server_test_client.hpp"

namespace relay_openloop {

// ---- WebSocket framing of pre-encoded messages (RFC 6455 §5.2) ---------------------------------

namespace {

constexpr std::array<std::uint8_t, 4> kMask{0x5a, 0xc3, 0x17, 0x8e};

}  // namespace

void append_ws_message(relay::Bytes& out, relay::ByteSpan payload) {
  out.push_back(0x82);  // FIN + binary
  auto n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<std::uint8_t>(0x80 | n));
  } else if (n < 65536) {
    out.push_back(0x80 | 126);
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    out.push_back(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<std::uint8_t>(n >> shift));
  }
  out.insert(out.end(), kMask.begin(), kMask.end());
  for (std::size_t i = 0; i < n; ++i) out.push_back(payload[i] ^ kMask[i % 4]);
}

std::optional<WsHeader> parse_ws_header(const std::uint8_t* p, std::size_t have) {
  if (have < 2) return std::nullopt;
  WsHeader h;
  h.opcode = p[0] & 0x0f;
  bool masked = (p[1] & 0x80) != 0;
  std::uint64_t len = p[1] & 0x7f;
  std::size_t pos = 2;
  if (len == 126) {
    if (have < 4) return std::nullopt;
    len = (std::uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (len == 127) {
    if (have < 10) return std::nullopt;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    pos = 10;
  }
  if (masked) pos += 4;  // servers do not mask; tolerated anyway (payload then unreadable)
  if (have < pos) return std::nullopt;
  h.header_len = pos;
  h.payload_len = len;
  return h;
}

// ---- transports --------------------------------------------------------------------------------

namespace {

bool fd_write_all(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    auto n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

long fd_read_some(int fd, std::uint8_t* data, std::size_t size) {
  for (;;) {
    auto n = ::recv(fd, data, size, 0);
    if (n < 0 && errno == EINTR) continue;
    return static_cast<long>(n);
  }
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string ssl_info(const SSL* ssl) {
  return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

int tls13_socket_of(const SSL* ssl, int fd) {
  return SSL_version(ssl) == TLS1_3_VERSION && SSL_has_pending(ssl) == 0 ? fd : -1;
}

// Blocking TLS I/O with OpenSSL on a socket BIO: every TLS connection of the generator, to the
// relay and to nginx alike, so that both targets cost the generator the same per byte.
bool ssl_write_all(SSL* ssl, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    std::size_t written = 0;
    if (SSL_write_ex(ssl, data, size, &written) != 1) return false;
    data += written;
    size -= written;
  }
  return true;
}

long ssl_read_some(SSL* ssl, std::uint8_t* data, std::size_t size) {
  std::size_t got = 0;
  if (SSL_read_ex(ssl, data, size, &got) == 1) return static_cast<long>(got);
  return SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

}  // namespace

void set_io_timeout(int fd, std::chrono::milliseconds limit) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(limit.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((limit.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int tcp_connect(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + " failed");
  }
  set_nodelay(fd);
  return fd;
}

FdStream::FdStream(int fd, bool owns) : fd_(fd), owns_(owns) {}
FdStream::~FdStream() {
  if (owns_) close(fd_);
}
bool FdStream::write_all(const std::uint8_t* data, std::size_t size) {
  return fd_write_all(fd_, data, size);
}
long FdStream::read_some(std::uint8_t* data, std::size_t size) {
  return fd_read_some(fd_, data, size);
}
void FdStream::abort() {
  ::shutdown(fd_, SHUT_RDWR);
}

SslFdStream::SslFdStream(SSL_CTX* ctx, int fd, bool server) : fd_(fd), ssl_(SSL_new(ctx)) {
  SSL_set_fd(ssl_, fd_);
  if ((server ? SSL_accept(ssl_) : SSL_connect(ssl_)) != 1) {
    SSL_free(ssl_);
    close(fd_);
    throw std::runtime_error(server ? "TLS handshake with nginx's upstream connection failed"
                                    : "TLS handshake failed");
  }
}
SslFdStream::~SslFdStream() {
  SSL_free(ssl_);
  close(fd_);
}
bool SslFdStream::write_all(const std::uint8_t* data, std::size_t size) {
  return ssl_write_all(ssl_, data, size);
}
long SslFdStream::read_some(std::uint8_t* data, std::size_t size) {
  return ssl_read_some(ssl_, data, size);
}
void SslFdStream::abort() {
  ::shutdown(fd_, SHUT_RDWR);
}
int SslFdStream::tls13_socket() const {
  return tls13_socket_of(ssl_, fd_);
}
std::string SslFdStream::tls_info() const {
  return ssl_info(ssl_);
}

namespace {

// Relay connections after the handshake: the test client keeps its io_context and socket alive;
// the bytes are then written and read directly, without Beast.
class RelayPlainStream : public FdStream {
 public:
  explicit RelayPlainStream(std::unique_ptr<iroh::test::RelayTestClient> client)
      : FdStream(blocking_fd(*client), false), client_(std::move(client)) {}

 private:
  static int blocking_fd(iroh::test::RelayTestClient& client) {
    auto& sock = client.stream().next_layer();
    sock.native_non_blocking(false);
    set_nodelay(sock.native_handle());
    return sock.native_handle();
  }
  std::unique_ptr<iroh::test::RelayTestClient> client_;
};

class RelayTlsStream : public Stream {
 public:
  // The handshake ran through the test client's asio ssl::stream (memory BIO pair: each byte
  // copied through asio's buffers and the pair); the flood then uses the same SSL on a socket
  // BIO with read-ahead, as the generator's connections to nginx and nginx's to the TLS sink
  // do (ssl_write_all/ssl_read_some): otherwise the generator, which is the limit in the TLS
  // phases (the relay's CPU is not saturated there), would pay more per relay byte.
  explicit RelayTlsStream(std::unique_ptr<iroh::test::TlsRelayTestClient> client)
      : client_(std::move(client)), ssl_(client_->stream().next_layer().native_handle()) {
    auto& sock = client_->stream().next_layer().next_layer();
    sock.native_non_blocking(false);
    set_nodelay(sock.native_handle());
    // Nothing may be left in asio's BIO pair: no frame follows the handshake's reply before the
    // flood (as RelayPlainStream assumes of the plain socket).
    if (SSL_pending(ssl_) != 0 || BIO_ctrl_pending(SSL_get_rbio(ssl_)) != 0 ||
        BIO_ctrl_wpending(SSL_get_wbio(ssl_)) != 0)
      throw std::runtime_error("relay TLS connection: bytes left in asio's buffers");
    BIO* socket_bio = BIO_new_socket(static_cast<int>(sock.native_handle()), BIO_NOCLOSE);
    if (!socket_bio) throw std::runtime_error("BIO_new_socket failed");
    SSL_set_bio(ssl_, socket_bio, socket_bio);  // frees asio's end of the pair held by the SSL
    SSL_set_read_ahead(ssl_, 1);
  }
  bool write_all(const std::uint8_t* data, std::size_t size) override {
    return ssl_write_all(ssl_, data, size);
  }
  long read_some(std::uint8_t* data, std::size_t size) override {
    return ssl_read_some(ssl_, data, size);
  }
  void abort() override {
    ::shutdown(client_->stream().next_layer().next_layer().native_handle(), SHUT_RDWR);
  }
  std::string tls_info() const override { return ssl_info(ssl_); }
  int tls13_socket() const override {
    return tls13_socket_of(ssl_, client_->stream().next_layer().next_layer().native_handle());
  }

 private:
  std::unique_ptr<iroh::test::TlsRelayTestClient> client_;
  SSL* ssl_;  // owned by client_'s ssl::stream
};

}  // namespace

std::unique_ptr<Stream> Target::connect(const relay::SecretKey& key) const {
  if (!relay) {
    int fd = tcp_connect(port);
    if (!tls) return std::make_unique<FdStream>(fd);
    return std::make_unique<SslFdStream>(client_tls->raw, fd);
  }
  boost::asio::ip::tcp::endpoint server(boost::asio::ip::address_v4::loopback(), port);
  auto finish = [&](auto& client) {
    if (auto ec = client->connect(server)) {
      throw std::runtime_error("relay upgrade failed: " + ec.message());
    }
    auto reply = client->handshake(key);
    if (!reply || reply->empty() || (*reply)[0] != 2) {
      throw std::runtime_error("relay handshake failed");
    }
  };
  if (!tls) {
    auto client = std::make_unique<iroh::test::RelayTestClient>();
    finish(client);
    return std::make_unique<RelayPlainStream>(std::move(client));
  }
  auto client = std::make_unique<iroh::test::TlsRelayTestClient>(client_tls->asio_ctx);
  finish(client);
  return std::make_unique<RelayTlsStream>(std::move(client));
}

}  // namespace relay_openloop
