// Open-loop load generator for the relay data plane (issue 13), and the CI flood check.
//
// Clients complete the real handshake (Beast upgrade + relay-proto ClientAuth through the
// integration tests' raw client), then senders write pre-encoded, masked WebSocket messages that
// each carry one relay frame (relay.md §3.4: one frame per message), K of them per write(), as
// fast as the socket takes them. Nothing waits on a response: a relay that reads and drops at full
// speed shows up as collapsed delivery instead of being hidden by client back-pressure. Receivers
// read as fast as they can and count datagrams, bytes and disconnects. A bystander pair sends one
// timestamped datagram per millisecond through the same relay and measures one-way delay and loss;
// a pinger times GET /ping meanwhile.
//
// Benchmark mode compares the relay with nginx `stream` (plain, `ssl` termination, and TLS on both
// legs like the relay: `ssl` listener + `proxy_ssl` to a TLS sink) carrying the same bytes to a
// sink in this process, and runs overload phases at 4x and 16x the relay's measured peak. It
// prints figures and never fails on them.
//
// --mesh mode compares datagrams/s within one node with node-to-node across the relay mesh.
//
// --check mode is the CI flood test: 4 unlimited senders for 3 s; it fails unless every bystander
// datagram arrives with p99 < 200 ms and no reading receiver is disconnected.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/tls.hpp"
#include "integration/relay_server_test_client.hpp"
#include "relay_harness.hpp"

namespace {

namespace relay = iroh::relay;
namespace lt = iroh::loadtest;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using lt::pin_self;
using lt::pinned;
using lt::pinning;

constexpr const char* kUsage =
    "usage: relay_openloop IROH_RELAY_BINARY [options]\n"
    "  --pairs=N          flooding sender/receiver pairs (default 4)\n"
    "  --seconds=S        measured seconds per phase (default 5)\n"
    "  --warmup-ms=M      unmeasured start of each phase (default 1000)\n"
    "  --k=K              frames per write() (default 16)\n"
    "  --rate=R           pace the single, single-k1 and batch phases at R datagrams/s over all\n"
    "                     senders (default 0: as fast as the sockets take them)\n"
    "  --size=B           datagram size (default 1200)\n"
    "  --batch=B          datagrams per batch frame, type 5 (default 10)\n"
    "  --phases=LIST      comma list of single,single-k1,batch,tls,tls-batch,overload,slow\n"
    "                     (default all of them but slow)\n"
    "  --slow-read-bytes=N  phase slow: one flooded receiver reads N bytes/s (default 8000000)\n"
    "                     and times the relay's Pongs to its Pings (limits.tcp_notsent_lowat)\n"
    "  --nginx=PATH       nginx binary for the baseline (default: nginx from PATH, else skipped)\n"
    "  --nginx-stream-module=PATH  (default /usr/lib/nginx/modules/ngx_stream_module.so)\n"
    "  --relay-cpu=C --gen-cpu=G   pin relay/nginx and this generator (default 0 and 1;\n"
    "                     -1 = no pinning; ignored on a single-CPU machine)\n"
    "  --check            CI flood test: exit 1 unless the bystander and receivers are served\n"
    "  --check-seconds=S  flood length in --check mode (default 3)\n"
    "  --tls              with --check: the flood over HTTPS\n"
    "  --relay-threads=N  the relay's relay_threads (default: the relay's default, one worker\n"
    "                     per CPU it may run on)\n"
    "  --client-queue-bytes=N --tcp-notsent-lowat=N  the relay's limits of these names\n"
    "                     (default: the relay's defaults)\n"
    "  --rounds=N         run all phases N times (default 1) and print each figure's median\n"
    "  --overload-cycles=N  after the overload phases, N cycles of a paced window at a rate\n"
    "                     the relay sustains and 4x/16x floods right after it (--seconds each);\n"
    "                     prints the median flood/paced ratio (default 8; 0 = skip)\n"
    "  --mesh             only the mesh benchmark (issue 16): two nodes in a mesh, peak\n"
    "                     datagrams/s within node 1 vs node 1 -> node 2; --rounds=N (default 2)\n";

// YAML lines every relay started here gets (--relay-threads).
std::string g_relay_extra_yaml;

// The relay's TLS suites in its server-preferred order (core/tls.hpp): nginx's `ssl` listeners,
// its `proxy_ssl` upstream leg and the TLS sink use them too, so that every TLS baseline
// negotiates what the relay does (each phase prints the suite it got) instead of nginx's default
// of the client's order (AES-256-GCM first in OpenSSL's client list).
using iroh::server::kTls12Ciphers;
using iroh::server::kTls13Suites;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// The flood threads run at a lower priority than the bystander and /ping threads, so the delays
// those measure are the relay's, not the generator's own scheduling of its flood.
void lower_thread_priority() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
}

// ---- WebSocket framing of pre-encoded messages (RFC 6455 §5.2) ---------------------------------
// The generator writes ready-made bytes, so it cannot go through Beast's stream writer; these two
// functions are the only framing it needs: a masked client binary message and the parse of the
// server's unmasked frame header.

constexpr std::array<std::uint8_t, 4> kMask{0x5a, 0xc3, 0x17, 0x8e};

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

struct WsHeader {
  std::uint8_t opcode = 0;
  std::size_t header_len = 0;
  std::uint64_t payload_len = 0;
};

// nullopt = need more bytes.
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
};

std::string ssl_info(const SSL* ssl) {
  return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
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

class FdStream : public Stream {
 public:
  // `owns`: close the fd on destruction (false when a socket object owns it).
  explicit FdStream(int fd, bool owns = true) : fd_(fd), owns_(owns) {}
  ~FdStream() override {
    if (owns_) close(fd_);
  }
  bool write_all(const std::uint8_t* data, std::size_t size) override {
    return fd_write_all(fd_, data, size);
  }
  long read_some(std::uint8_t* data, std::size_t size) override {
    return fd_read_some(fd_, data, size);
  }
  void abort() override { ::shutdown(fd_, SHUT_RDWR); }

 private:
  int fd_;
  bool owns_;
};

// TLS on a blocking fd with OpenSSL directly: the client side of the nginx baseline and of GET
// /ping over HTTPS, and (`server`) the TLS sink's side of nginx's `proxy_ssl` connections.
class SslFdStream : public Stream {
 public:
  SslFdStream(SSL_CTX* ctx, int fd, bool server = false) : fd_(fd), ssl_(SSL_new(ctx)) {
    SSL_set_fd(ssl_, fd_);
    if ((server ? SSL_accept(ssl_) : SSL_connect(ssl_)) != 1) {
      SSL_free(ssl_);
      close(fd_);
      throw std::runtime_error(server ? "TLS handshake with nginx's upstream connection failed"
                                      : "TLS handshake failed");
    }
  }
  ~SslFdStream() override {
    SSL_free(ssl_);
    close(fd_);
  }
  bool write_all(const std::uint8_t* data, std::size_t size) override {
    return ssl_write_all(ssl_, data, size);
  }
  long read_some(std::uint8_t* data, std::size_t size) override {
    return ssl_read_some(ssl_, data, size);
  }
  void abort() override { ::shutdown(fd_, SHUT_RDWR); }
  std::string tls_info() const override { return ssl_info(ssl_); }

 private:
  int fd_;
  SSL* ssl_;
};

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

 private:
  std::unique_ptr<iroh::test::TlsRelayTestClient> client_;
  SSL* ssl_;  // owned by client_'s ssl::stream
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
  std::unique_ptr<Stream> connect(const relay::SecretKey& key) const {
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
};

// ---- receivers ---------------------------------------------------------------------------------

struct ReceiverStats {
  std::atomic<std::uint64_t> datagrams{0};
  std::atomic<std::uint64_t> bytes{0};  // datagram contents (relay) or raw stream bytes (sink)
  std::atomic<bool> disconnected{false};
  std::string end_reason;
};

// Bystander samples: one-way delay per sequence number.
struct BystanderLog {
  std::mutex mutex;
  std::vector<std::int64_t> delay_ns;
  // The relay's CPU time (all its threads, /proc/PID/stat) spent while each datagram was in
  // flight, when relay_pid is known: the delay with the time the host gave to other processes
  // taken out (the flood test's bound, run_check).
  pid_t relay_pid = -1;
  std::vector<double> relay_cpu_ms;
  std::vector<bool> seen;
  std::atomic<std::uint64_t> received{0};
};

// A receiver on a slow link (phase `slow`): it reads at most `bytes_per_s` and sends a relay Ping
// every kSlowPingInterval, timing the relay's Pong (relay.md §6.5). The relay puts Pongs ahead
// of queued datagrams, but not ahead of what it already handed to the kernel: the Pong's delay
// is what the kernel holds unsent for this client (limits.tcp_notsent_lowat) plus what the
// client has not read yet, at the client's reading speed.
struct SlowReader {
  double bytes_per_s = 0;
  std::int64_t measure_from_ns = 0;  // Pings sent earlier (the warm-up) are not timed
  std::vector<double> pong_ms;
  std::uint64_t pings_sent = 0;  // from measure_from_ns on
};
constexpr auto kSlowPingInterval = 50ms;
constexpr std::size_t kSlowReadBytes = 16 * 1024;

// Reads relay frames until `stop`; counts datagrams, answers relay Pings (relay.md §6.5), and for
// the bystander decodes (seq, send time) from each datagram. `slow`: reads at its pace and times
// its own Pings' Pongs.
void relay_receiver(Stream& stream, ReceiverStats& stats, const std::atomic<bool>& stop,
                    BystanderLog* bystander, SlowReader* slow) {
  if (!bystander) lower_thread_priority();
  std::vector<std::uint8_t> buf(512 * 1024);
  std::size_t have = 0;
  const auto started = Clock::now();
  auto next_ping = started;
  std::uint64_t total_read = 0;
  for (;;) {
    if (slow) {
      const auto now = Clock::now();
      if (now >= next_ping) {
        relay::Ping ping;
        const std::int64_t sent = now_ns();
        std::memcpy(ping.data.data(), &sent, 8);
        relay::Bytes msg;
        append_ws_message(msg, relay::encode_client_frame(ping));
        if (stream.write_all(msg.data(), msg.size()) && sent >= slow->measure_from_ns)
          ++slow->pings_sent;
        next_ping = now + kSlowPingInterval;
      }
      // Behind its pace only by what one read brings: sleep until the bytes so far are due.
      std::this_thread::sleep_until(
          started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                        static_cast<double>(total_read) / slow->bytes_per_s)));
    }
    const std::size_t want = slow ? std::min(kSlowReadBytes, buf.size() - have) : buf.size() - have;
    auto n = stream.read_some(buf.data() + have, want);
    if (n > 0) total_read += static_cast<std::uint64_t>(n);
    if (n <= 0) {
      if (!stop.load()) {
        stats.disconnected = true;
        stats.end_reason = n == 0 ? "closed by the relay" : "read error";
      }
      return;
    }
    have += static_cast<std::size_t>(n);
    std::size_t pos = 0;
    std::uint64_t datagrams = 0, bytes = 0;
    while (auto h = parse_ws_header(buf.data() + pos, have - pos)) {
      if (h->payload_len > buf.size() - h->header_len) {
        stats.disconnected = true;
        stats.end_reason = "oversized WebSocket message";
        return;
      }
      if (have - pos < h->header_len + h->payload_len) break;
      const std::uint8_t* p = buf.data() + pos + h->header_len;
      auto len = static_cast<std::size_t>(h->payload_len);
      if (h->opcode == 8) {
        if (!stop.load()) {
          stats.disconnected = true;
          stats.end_reason = "WebSocket close from the relay";
        }
        return;
      }
      if (h->opcode == 2 && len >= 1) {
        if ((p[0] == 6 && len > 34) || (p[0] == 7 && len > 36)) {
          std::size_t contents = len - (p[0] == 6 ? 34 : 36);
          std::size_t segment = p[0] == 7 ? (std::size_t{p[34]} << 8 | p[35]) : 0;
          datagrams += segment ? (contents + segment - 1) / segment : 1;
          bytes += contents;
          if (bystander && p[0] == 6 && contents >= 16) {
            std::uint64_t seq = 0;
            std::int64_t sent = 0;
            std::memcpy(&seq, p + 34, 8);
            std::memcpy(&sent, p + 42, 8);
            auto delay = now_ns() - sent;
            double cpu_ms = NAN;
            if (bystander->relay_pid > 0 && contents >= 24) {
              double cpu_sent = 0;
              std::memcpy(&cpu_sent, p + 50, 8);
              cpu_ms = (lt::cpu_seconds(bystander->relay_pid) - cpu_sent) * 1e3;
            }
            std::lock_guard lock(bystander->mutex);
            if (seq < bystander->seen.size() && !bystander->seen[seq]) {
              bystander->seen[seq] = true;
              bystander->delay_ns.push_back(delay);
              if (!std::isnan(cpu_ms)) bystander->relay_cpu_ms.push_back(cpu_ms);
              ++bystander->received;
            }
          }
        } else if (p[0] == 9 && len == 9) {
          relay::Pong pong;
          std::memcpy(pong.data.data(), p + 1, 8);
          relay::Bytes msg;
          append_ws_message(msg, relay::encode_client_frame(pong));
          stream.write_all(msg.data(), msg.size());
        } else if (p[0] == 10 && len == 9 && slow) {
          std::int64_t sent = 0;
          std::memcpy(&sent, p + 1, 8);
          if (sent >= slow->measure_from_ns)
            slow->pong_ms.push_back(static_cast<double>(now_ns() - sent) / 1e6);
        }
      }
      pos += h->header_len + len;
    }
    if (pos > 0) {
      std::memmove(buf.data(), buf.data() + pos, have - pos);
      have -= pos;
    }
    if (datagrams) {
      stats.datagrams.fetch_add(datagrams, std::memory_order_relaxed);
      stats.bytes.fetch_add(bytes, std::memory_order_relaxed);
    }
  }
}

// nginx side: counts the raw bytes nginx forwards (decrypted first when its upstream leg is TLS).
void sink_receiver(Stream& stream, ReceiverStats& stats) {
  lower_thread_priority();
  std::vector<std::uint8_t> buf(512 * 1024);
  for (;;) {
    auto n = stream.read_some(buf.data(), buf.size());
    if (n <= 0) return;
    stats.bytes.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  }
}

// ---- senders -----------------------------------------------------------------------------------

struct SenderStats {
  std::atomic<std::uint64_t> frames{0};
  std::atomic<bool> failed{false};
};

// Writes `block` (K pre-encoded messages) in a loop. rate_frames_per_s > 0 paces the writes on a
// fixed schedule (open loop: a slow write is not compensated by waiting for anything, and a
// schedule more than 100 ms behind is reset rather than burst out).
void flood_sender(Stream& stream, const relay::Bytes& block, std::size_t frames_per_block,
                  double rate_frames_per_s, const std::atomic<bool>& stop, SenderStats& stats) {
  lower_thread_priority();
  auto next = Clock::now();
  auto interval = rate_frames_per_s > 0
                      ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                            static_cast<double>(frames_per_block) / rate_frames_per_s))
                      : Clock::duration::zero();
  while (!stop.load(std::memory_order_relaxed)) {
    if (rate_frames_per_s > 0) {
      auto now = Clock::now();
      if (now < next) std::this_thread::sleep_until(next);
      if (now - next > 100ms) next = now;
      next += interval;
    }
    if (!stream.write_all(block.data(), block.size())) {
      if (!stop.load()) stats.failed = true;
      return;
    }
    stats.frames.fetch_add(frames_per_block, std::memory_order_relaxed);
  }
}

// One timestamped datagram per millisecond: seq (8 bytes) || steady-clock ns (8) || the relay's
// CPU seconds so far (8, a double; relay_pid > 0) || padding.
void bystander_sender(Stream& stream, const relay::EndpointId& dst, std::size_t size,
                      std::size_t max_count, pid_t relay_pid, const std::atomic<bool>& stop,
                      std::atomic<std::uint64_t>& sent, std::atomic<bool>& failed) {
  relay::Bytes contents(std::max<std::size_t>(size, 24), 0xbb);
  auto next = Clock::now();
  for (std::uint64_t seq = 0; seq < max_count && !stop.load(); ++seq) {
    std::this_thread::sleep_until(next);
    next += 1ms;
    auto ts = now_ns();
    std::memcpy(contents.data(), &seq, 8);
    std::memcpy(contents.data() + 8, &ts, 8);
    if (relay_pid > 0) {
      const double cpu = lt::cpu_seconds(relay_pid);
      std::memcpy(contents.data() + 16, &cpu, 8);
    }
    auto frame = relay::encode_client_datagram(dst, relay::Ecn::NotEct, 0, contents);
    relay::Bytes msg;
    append_ws_message(msg, *frame);
    if (!stream.write_all(msg.data(), msg.size())) {
      if (!stop.load()) failed = true;
      return;
    }
    sent.fetch_add(1);
  }
}

// ---- GET /ping timing --------------------------------------------------------------------------

struct PingLog {
  std::vector<double> ms;
  std::uint64_t failed = 0;
};

void ping_timer(std::uint16_t port, ClientTls* tls, const std::atomic<bool>& stop, PingLog& log) {
  static const std::string request =
      "GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  while (!stop.load()) {
    auto start = Clock::now();
    bool ok = false;
    try {
      int fd = tcp_connect(port);
      set_io_timeout(fd, 5000ms);
      std::unique_ptr<Stream> s;
      if (tls) {
        s = std::make_unique<SslFdStream>(tls->raw, fd);
      } else {
        s = std::make_unique<FdStream>(fd);
      }
      if (s->write_all(reinterpret_cast<const std::uint8_t*>(request.data()), request.size())) {
        std::string response;
        std::uint8_t buf[4096];
        for (;;) {
          auto n = s->read_some(buf, sizeof buf);
          if (n <= 0) break;
          response.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
          if (response.find("\r\n\r\n") != std::string::npos) break;
        }
        ok = response.starts_with("HTTP/1.1 200");
      }
    } catch (const std::exception&) {
    }
    if (ok) {
      log.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    } else {
      ++log.failed;
    }
    std::this_thread::sleep_for(20ms);
  }
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  auto idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(idx, v.size() - 1)];
}

// ---- one phase ---------------------------------------------------------------------------------

struct PhaseSpec {
  std::string label;
  std::size_t pairs = 4;
  std::size_t k = 16;
  std::size_t size = 1200;
  std::size_t batch = 0;  // datagrams per frame; 0 = single-datagram frames (type 4)
  double rate_per_s = 0;  // offered datagrams/s over all senders; 0 = unlimited
  double seconds = 5;
  std::chrono::milliseconds warmup{1000};
  bool bystander = true;
  bool pinger = true;
  // Also time each bystander datagram in the relay's CPU time (BystanderLog::relay_cpu_ms).
  bool relay_cpu_delay = false;
  // The CPUs the relay and this generator are pinned to, for the host steal figures (-1: none).
  int relay_cpu = -1, gen_cpu = -1;
};

struct PhaseResult {
  bool ran = false;
  std::string error;
  double delivered_per_s = 0;  // datagrams
  double mb_per_s = 0;         // datagram contents, 10^6 bytes
  double offered_per_s = 0;    // datagrams written by the senders
  double cpu_cores = 0;        // of the relay / nginx during the window
  std::size_t receivers = 0, disconnected = 0, senders_failed = 0;
  bool bystander_sender_failed = false;  // its connection broke during the flood
  std::string disconnect_reason;
  std::uint64_t by_sent = 0, by_received = 0;
  double by_p50_ms = NAN, by_p99_ms = NAN, by_max_ms = NAN;
  double by_cpu_p99_ms = NAN;  // relay CPU time while in flight (BystanderLog::relay_cpu_ms)
  PingLog ping;
  // Share of the window the hypervisor took from the relay's / the generator's CPU (percent).
  double steal_relay_pct = NAN, steal_gen_pct = NAN;
  std::string tls;           // negotiated by the first sender's connection (Stream::tls_info)
  std::string upstream_tls;  // by nginx's first upstream connection to the TLS sink
};

// A loopback listener for nginx's upstream connections: plain, or (cert and key given) TLS with
// the relay's certificate and suites in the relay's server-preferred order, for nginx's
// `proxy_ssl` leg.
class Sink {
 public:
  Sink() : Sink({}, {}) {}
  Sink(const std::filesystem::path& cert, const std::filesystem::path& key) {
    if (!cert.empty()) {
      tls_ = SSL_CTX_new(TLS_server_method());
      // Read-ahead: one recv() can bring many records, as the relay's tls_socket reads them, so
      // the sink does not add a syscall per 16 KiB record to the generator's CPU.
      if (!tls_ || SSL_CTX_use_certificate_chain_file(tls_, cert.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(tls_, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION) != 1 ||
          SSL_CTX_set_cipher_list(tls_, kTls12Ciphers) != 1 ||
          SSL_CTX_set_ciphersuites(tls_, kTls13Suites) != 1) {
        SSL_CTX_free(tls_);
        throw std::runtime_error("TLS sink: cannot load " + cert.string() + " / " + key.string());
      }
      SSL_CTX_set_options(tls_, SSL_OP_CIPHER_SERVER_PREFERENCE);
      SSL_CTX_set_read_ahead(tls_, 1);
    }
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 128) != 0)
      throw std::runtime_error("sink listen failed");
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    set_io_timeout(fd_, 5000ms);  // accept() gives up after 5 s
  }
  ~Sink() {
    close(fd_);
    SSL_CTX_free(tls_);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  std::uint16_t port() const { return port_; }
  // The next connection from nginx, TLS handshake done; throws after 5 s without one. The
  // accepted socket inherits the 5 s timeouts, which bound the handshake too.
  std::unique_ptr<Stream> accept_one() {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) throw std::runtime_error("nginx did not connect to the sink within 5 s");
    if (!tls_) return std::make_unique<FdStream>(fd);
    return std::make_unique<SslFdStream>(tls_, fd, true);
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  SSL_CTX* tls_ = nullptr;
};

// `rx_target`: where the receivers (and the bystander's) connect, when not `target` (the mesh
// benchmark: senders on one node, receivers on its peer).
// What a flood sender writes per write(): spec.k masked WebSocket messages, each one datagram
// frame to `dst` (a batch frame of spec.batch datagrams when set); nullopt when the frame is over
// the relay protocol's limit (relay.md §5.4).
std::optional<relay::Bytes> datagram_block(const relay::EndpointId& dst, const PhaseSpec& spec) {
  const relay::Bytes contents(spec.size * (spec.batch ? spec.batch : 1), 0xa5);
  const auto frame = relay::encode_client_datagram(
      dst, relay::Ecn::NotEct, static_cast<std::uint16_t>(spec.batch ? spec.size : 0), contents);
  if (!frame) return std::nullopt;
  relay::Bytes block;
  for (std::size_t k = 0; k < spec.k; ++k) append_ws_message(block, *frame);
  return block;
}

PhaseResult run_phase(const Target& target, const PhaseSpec& spec, Sink* sink,
                      const Target* rx_target = nullptr) {
  const Target& rx_at = rx_target ? *rx_target : target;
  PhaseResult r;
  std::atomic<bool> stop_senders{false}, stop_receivers{false};
  std::size_t per_frame = spec.batch ? spec.batch : 1;

  std::vector<relay::SecretKey> rx_keys, tx_keys;
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    rx_keys.push_back(relay::SecretKey::generate());
    tx_keys.push_back(relay::SecretKey::generate());
  }
  auto by_rx_key = relay::SecretKey::generate();
  auto by_tx_key = relay::SecretKey::generate();
  bool bystander = spec.bystander && target.relay;

  std::vector<std::unique_ptr<Stream>> rx, tx, sinks;
  std::unique_ptr<Stream> by_rx, by_tx;
  std::vector<std::unique_ptr<ReceiverStats>> rx_stats;
  std::vector<std::unique_ptr<SenderStats>> tx_stats;
  std::vector<relay::Bytes> blocks;
  std::size_t message_bytes = 0;
  try {
    if (target.relay) {
      for (auto& key : rx_keys) rx.push_back(rx_at.connect(key));
      if (bystander) by_rx = rx_at.connect(by_rx_key);
    }
    for (std::size_t i = 0; i < spec.pairs; ++i) {
      tx.push_back(target.connect(tx_keys[i]));
      if (!target.relay) sinks.push_back(sink->accept_one());
    }
    if (bystander) by_tx = target.connect(by_tx_key);
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  if (!tx.empty()) r.tls = tx.front()->tls_info();
  if (!sinks.empty()) r.upstream_tls = sinks.front()->tls_info();
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    auto block = datagram_block(rx_keys[i].public_key(), spec);
    if (!block) {
      r.error = "frame too large for the relay protocol (relay.md §5.4)";
      return r;
    }
    message_bytes = block->size() / spec.k;
    blocks.push_back(std::move(*block));
  }

  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    rx_stats.push_back(std::make_unique<ReceiverStats>());
    tx_stats.push_back(std::make_unique<SenderStats>());
  }
  ReceiverStats by_stats;
  BystanderLog by_log;
  std::atomic<std::uint64_t> by_sent{0};
  std::atomic<bool> by_failed{false};
  auto by_max = static_cast<std::size_t>((spec.seconds + 1) * 1000 +
                                         static_cast<double>(spec.warmup.count()));
  by_log.seen.assign(by_max, false);
  by_log.delay_ns.reserve(by_max);
  if (spec.relay_cpu_delay) {
    by_log.relay_pid = target.pid;
    by_log.relay_cpu_ms.reserve(by_max);
  }
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    if (target.relay) {
      threads.emplace_back(relay_receiver, std::ref(*rx[i]), std::ref(*rx_stats[i]),
                           std::cref(stop_receivers), nullptr, nullptr);
    } else {
      threads.emplace_back(sink_receiver, std::ref(*sinks[i]), std::ref(*rx_stats[i]));
    }
  }
  if (bystander) {
    threads.emplace_back(relay_receiver, std::ref(*by_rx), std::ref(by_stats),
                         std::cref(stop_receivers), &by_log, nullptr);
  }
  std::thread pinger;
  std::atomic<bool> stop_pinger{false};
  if (spec.pinger && target.relay) {
    pinger = std::thread(ping_timer, target.port, target.tls ? target.client_tls : nullptr,
                         std::cref(stop_pinger), std::ref(r.ping));
  }
  std::vector<std::thread> senders;
  double rate_each = spec.rate_per_s / static_cast<double>(spec.pairs) /
                     static_cast<double>(per_frame);  // frames/s per sender
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < spec.pairs; ++i) {
    senders.emplace_back(flood_sender, std::ref(*tx[i]), std::cref(blocks[i]), spec.k, rate_each,
                         std::cref(stop_senders), std::ref(*tx_stats[i]));
  }
  if (bystander) {
    senders.emplace_back(bystander_sender, std::ref(*by_tx), by_rx_key.public_key(), spec.size,
                         by_max, by_log.relay_pid, std::cref(stop_senders), std::ref(by_sent),
                         std::ref(by_failed));
  }

  auto sum_rx = [&] {
    std::uint64_t d = 0, b = 0;
    for (auto& s : rx_stats) {
      d += s->datagrams.load();
      b += s->bytes.load();
    }
    return std::pair{d, b};
  };
  auto sum_tx = [&] {
    std::uint64_t f = 0;
    for (auto& s : tx_stats) f += s->frames.load();
    return f;
  };
  std::this_thread::sleep_until(t0 + spec.warmup);
  auto [d0, b0] = sum_rx();
  auto f0 = sum_tx();
  double cpu0 = lt::cpu_seconds(target.pid, !target.relay);
  const double steal_relay0 = lt::steal_seconds(spec.relay_cpu);
  const double steal_gen0 = lt::steal_seconds(spec.gen_cpu);
  auto w0 = Clock::now();
  std::this_thread::sleep_until(w0 + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(spec.seconds)));
  auto [d1, b1] = sum_rx();
  auto f1 = sum_tx();
  double cpu1 = lt::cpu_seconds(target.pid, !target.relay);
  double window = seconds_since(w0);
  r.steal_relay_pct = (lt::steal_seconds(spec.relay_cpu) - steal_relay0) / window * 100;
  r.steal_gen_pct = (lt::steal_seconds(spec.gen_cpu) - steal_gen0) / window * 100;

  stop_senders = true;
  for (auto& s : tx) s->abort();  // a sender may be blocked in write() on a full socket
  if (by_tx) by_tx->abort();
  for (auto& t : senders) t.join();
  // Grace for bystander datagrams still in flight: they count as delivered, with their delay.
  auto grace_end = Clock::now() + 3s;
  while (bystander && by_log.received.load() < by_sent.load() && Clock::now() < grace_end) {
    std::this_thread::sleep_for(10ms);
  }
  stop_pinger = true;
  if (pinger.joinable()) pinger.join();
  stop_receivers = true;
  for (auto& s : rx) s->abort();
  if (by_rx) by_rx->abort();
  for (auto& s : sinks) s->abort();
  for (auto& t : threads) t.join();

  r.ran = true;
  r.cpu_cores = (cpu1 - cpu0) / window;
  r.offered_per_s = static_cast<double>(f1 - f0) * static_cast<double>(per_frame) / window;
  if (target.relay) {
    r.delivered_per_s = static_cast<double>(d1 - d0) / window;
    r.mb_per_s = static_cast<double>(b1 - b0) / window / 1e6;
  } else {
    // nginx forwards raw bytes: whole messages of the same size as the relay's input.
    double messages = static_cast<double>(b1 - b0) / static_cast<double>(message_bytes);
    r.delivered_per_s = messages * static_cast<double>(per_frame) / window;
    r.mb_per_s = messages * static_cast<double>(spec.size * per_frame) / window / 1e6;
  }
  r.receivers = spec.pairs + (bystander ? 1 : 0);
  for (auto& s : rx_stats) {
    if (s->disconnected) {
      ++r.disconnected;
      r.disconnect_reason = s->end_reason;
    }
  }
  if (by_stats.disconnected) {
    ++r.disconnected;
    r.disconnect_reason = "bystander: " + by_stats.end_reason;
  }
  for (auto& s : tx_stats) r.senders_failed += s->failed ? 1 : 0;
  r.bystander_sender_failed = by_failed.load();
  if (bystander) {
    r.by_sent = by_sent.load();
    r.by_received = by_log.received.load();
    std::vector<double> ms;
    for (auto ns : by_log.delay_ns) ms.push_back(static_cast<double>(ns) / 1e6);
    r.by_p50_ms = percentile(ms, 0.50);
    r.by_p99_ms = percentile(ms, 0.99);
    r.by_max_ms = percentile(ms, 1.0);
    if (!by_log.relay_cpu_ms.empty()) r.by_cpu_p99_ms = percentile(by_log.relay_cpu_ms, 0.99);
  }
  return r;
}

void print_result(const std::string& label, const PhaseResult& r, bool relay) {
  if (!r.ran) {
    std::printf("%-28s did not run: %s\n", label.c_str(), r.error.c_str());
    std::fflush(stdout);
    return;
  }
  // CPU microseconds per delivered datagram: on a machine that other work keeps busy the
  // throughput follows the CPU share the process got; this figure does not.
  std::printf(
      "%-28s delivered %11.0f datagrams/s %8.1f MB/s | offered %11.0f/s | CPU %.2f | %.3f "
      "CPU-us/datagram\n",
      label.c_str(), r.delivered_per_s, r.mb_per_s, r.offered_per_s, r.cpu_cores,
      r.delivered_per_s > 0 ? r.cpu_cores / r.delivered_per_s * 1e6 : NAN);
  // Time the hypervisor gave to other guests: throughput and delays of such a phase follow it.
  if (!std::isnan(r.steal_relay_pct) || !std::isnan(r.steal_gen_pct)) {
    std::printf("%-28s host steal: relay's CPU %.1f %%, generator's CPU %.1f %%\n", "",
                r.steal_relay_pct, r.steal_gen_pct);
  }
  // What was negotiated, so that a TLS comparison is seen to be like with like.
  if (!r.tls.empty()) {
    std::printf("%-28s TLS: %s%s%s\n", "", r.tls.c_str(),
                r.upstream_tls.empty() ? "" : "; nginx -> sink: ", r.upstream_tls.c_str());
  }
  if (relay) {
    std::printf("%-28s receivers disconnected %zu/%zu%s%s; senders cut off %zu%s\n", "",
                r.disconnected, r.receivers, r.disconnected ? " (last: " : "",
                r.disconnected ? (r.disconnect_reason + ")").c_str() : "", r.senders_failed,
                r.bystander_sender_failed ? " + the bystander's" : "");
    if (r.by_sent) {
      double loss = 100.0 * static_cast<double>(r.by_sent - std::min(r.by_sent, r.by_received)) /
                    static_cast<double>(r.by_sent);
      std::printf(
          "%-28s bystander %llu sent, %llu received, loss %.2f %%, one-way p50 %.2f ms p99 "
          "%.2f ms max %.2f ms\n",
          "", static_cast<unsigned long long>(r.by_sent),
          static_cast<unsigned long long>(r.by_received), loss, r.by_p50_ms, r.by_p99_ms,
          r.by_max_ms);
      if (!std::isnan(r.by_cpu_p99_ms))
        std::printf("%-28s bystander in flight: relay CPU time p99 %.2f ms\n", "", r.by_cpu_p99_ms);
    }
    if (!r.ping.ms.empty() || r.ping.failed) {
      std::printf("%-28s GET /ping %zu ok, %llu failed, p50 %.2f ms p99 %.2f ms max %.2f ms\n", "",
                  r.ping.ms.size(), static_cast<unsigned long long>(r.ping.failed),
                  percentile(r.ping.ms, 0.5), percentile(r.ping.ms, 0.99),
                  percentile(r.ping.ms, 1.0));
    }
  }
  std::fflush(stdout);
}

// The relay's capacity: an unlimited flood may collapse it, so its peak is searched with paced
// offered loads doubling from 8,000 datagrams/s (1 s each) until the relay delivers less than
// 90 % of what was offered or the generator cannot offer more; the best delivered rate wins.
double find_peak(const Target& target, PhaseSpec spec, const Target* rx_target = nullptr) {
  spec.seconds = 1;
  spec.warmup = 300ms;
  spec.bystander = spec.pinger = false;
  double peak = 0;
  for (double rate = 8000; rate < 1e8; rate *= 2) {
    spec.rate_per_s = rate;
    auto r = run_phase(target, spec, nullptr, rx_target);
    if (!r.ran) {
      std::printf("%-28s did not run: %s\n", spec.label.empty() ? "relay ramp" : spec.label.c_str(),
                  r.error.c_str());
      break;
    }
    std::printf("%-28s offered %11.0f/s delivered %11.0f datagrams/s\n",
                ((spec.label.empty() ? std::string("relay") : spec.label) + " ramp " +
                 std::to_string(static_cast<long long>(rate)) + "/s")
                    .c_str(),
                r.offered_per_s, r.delivered_per_s);
    std::fflush(stdout);
    peak = std::max(peak, r.delivered_per_s);
    if (r.delivered_per_s < 0.9 * r.offered_per_s || r.offered_per_s < 0.9 * rate) break;
  }
  return peak;
}

// Phase `slow`: one unpaced sender to one receiver that reads at `bytes_per_s` and times the
// relay's Pongs to its Pings (SlowReader), for `spec.seconds` after `spec.warmup`.
struct SlowResult {
  bool ran = false;
  std::string error;
  SlowReader reader;
  double delivered_per_s = 0;
  bool disconnected = false;
  std::string disconnect_reason;
};

SlowResult run_slow_phase(const Target& target, const PhaseSpec& spec, double bytes_per_s) {
  SlowResult r;
  const auto rx_key = relay::SecretKey::generate(), tx_key = relay::SecretKey::generate();
  std::unique_ptr<Stream> rx, tx;
  try {
    rx = target.connect(rx_key);
    tx = target.connect(tx_key);
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  const auto block = datagram_block(rx_key.public_key(), spec);
  if (!block) {
    r.error = "frame too large for the relay protocol (relay.md §5.4)";
    return r;
  }
  ReceiverStats rx_stats;
  SenderStats tx_stats;
  std::atomic<bool> stop_rx{false}, stop_tx{false};
  r.reader.bytes_per_s = bytes_per_s;
  r.reader.measure_from_ns =
      now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(spec.warmup).count();
  std::thread receiver(relay_receiver, std::ref(*rx), std::ref(rx_stats), std::cref(stop_rx),
                       nullptr, &r.reader);
  std::thread sender(flood_sender, std::ref(*tx), std::cref(*block), spec.k, 0.0,
                     std::cref(stop_tx), std::ref(tx_stats));
  std::this_thread::sleep_for(spec.warmup);
  const auto d0 = rx_stats.datagrams.load();
  std::this_thread::sleep_for(std::chrono::duration<double>(spec.seconds));
  const auto d1 = rx_stats.datagrams.load();
  // Pongs still queued get the time one more Ping interval takes, then both ends stop.
  std::this_thread::sleep_for(kSlowPingInterval);
  stop_tx = true;
  tx->abort();
  sender.join();
  stop_rx = true;
  rx->abort();
  receiver.join();
  r.delivered_per_s = static_cast<double>(d1 - d0) / spec.seconds;
  r.disconnected = rx_stats.disconnected;
  r.disconnect_reason = rx_stats.end_reason;
  r.ran = true;
  return r;
}

void print_slow_result(const SlowResult& r, double bytes_per_s) {
  const std::string label = "relay slow receiver";
  if (!r.ran) {
    std::printf("%-28s did not run: %s\n", label.c_str(), r.error.c_str());
    return;
  }
  std::printf(
      "%-28s reads %.1f MB/s: Pong delay p50 %.1f ms p99 %.1f ms max %.1f ms (%zu of %llu Pings "
      "answered) | delivered %.0f datagrams/s | %s\n",
      label.c_str(), bytes_per_s / 1e6, percentile(r.reader.pong_ms, 0.5),
      percentile(r.reader.pong_ms, 0.99), percentile(r.reader.pong_ms, 1.0),
      r.reader.pong_ms.size(), static_cast<unsigned long long>(r.reader.pings_sent),
      r.delivered_per_s,
      r.disconnected ? ("disconnected: " + r.disconnect_reason).c_str() : "not disconnected");
  std::fflush(stdout);
}

// Overload against a peak measured at the same time (--overload-cycles=N). The ramp's best
// 1-s step is a maximum over many windows on a machine whose speed swings by a fifth between
// seconds, compared with one later window: that ratio is low even when nothing collapses. Here
// each cycle runs three windows of the overload phases' length back to back (the same bystander
// and pinger): paced at a rate R the relay sustains (it delivered >= 97 % of it), then 4x and
// 16x R unpaced; each cycle's ratio is its flood over its own paced window, and the figure is
// the median. R starts at the ramp's peak and follows a staircase: 10 % lower after a paced
// window the relay did not keep up with (that cycle does not count: its "paced" window was
// itself a flood), 3 % higher after one it did.
struct InterleavedOverload {
  std::vector<double> ratio4, ratio16;  // of the cycles whose paced window was sustained
  std::size_t cycles = 0;               // that ran
};

InterleavedOverload interleaved_overload(const Target& target, PhaseSpec spec, double peak,
                                         int cycles) {
  InterleavedOverload out;
  double rate = peak;
  for (int c = 1; c <= cycles; ++c) {
    spec.rate_per_s = rate;
    const auto paced = run_phase(target, spec, nullptr);
    spec.rate_per_s = 4 * rate;
    const auto over4 = run_phase(target, spec, nullptr);
    spec.rate_per_s = 16 * rate;
    const auto over16 = run_phase(target, spec, nullptr);
    if (!paced.ran || !over4.ran || !over16.ran) {
      std::printf("%-28s cycle %d did not run: %s\n", "relay interleaved", c,
                  (paced.error + over4.error + over16.error).c_str());
      break;
    }
    ++out.cycles;
    const bool sustained = paced.delivered_per_s >= 0.97 * rate;
    std::printf(
        "%-28s cycle %d: paced %9.0f/s delivered %9.0f%s | 4x %9.0f (%.3f) | 16x %9.0f (%.3f)\n",
        "relay interleaved", c, rate, paced.delivered_per_s, sustained ? "" : " (not sustained)",
        over4.delivered_per_s, over4.delivered_per_s / paced.delivered_per_s,
        over16.delivered_per_s, over16.delivered_per_s / paced.delivered_per_s);
    std::fflush(stdout);
    if (sustained) {
      out.ratio4.push_back(over4.delivered_per_s / paced.delivered_per_s);
      out.ratio16.push_back(over16.delivered_per_s / paced.delivered_per_s);
      rate *= 1.03;
    } else {
      rate *= 0.9;
    }
  }
  return out;
}

// ---- processes ---------------------------------------------------------------------------------

struct RelayProcess {
  std::unique_ptr<lt::ChildProcess> child;
  std::uint16_t port = 0;
  std::filesystem::path log;
};

// Plain: one HTTP listener serving everything. TLS: HTTPS listener (the plain one then only
// answers captive-portal checks, relay.md §2.1).
RelayProcess start_relay(const std::string& binary, const lt::TempDir& dir, bool tls, int cpu) {
  RelayProcess p;
  auto sub = dir.path() / (tls ? "relay-tls" : "relay-plain");
  std::filesystem::create_directories(sub);
  p.port = lt::free_tcp_port();
  std::string extra;
  auto http_port = p.port;
  if (tls) {
    http_port = lt::free_tcp_port();
    extra = "tls:\n  cert_mode: manual\n  https_bind_addr: \"127.0.0.1:" + std::to_string(p.port) +
            "\"\n  manual_cert_path: " + (dir.path() / "cert.pem").string() +
            "\n  manual_key_path: " + (dir.path() / "key.pem").string() +
            "\nenable_quic_addr_discovery: false\n";
  }
  auto config = lt::write_relay_config(sub, http_port, extra + g_relay_extra_yaml);
  p.log = sub / "relay.log";
  p.child =
      std::make_unique<lt::ChildProcess>(pinned(cpu, {binary, "--config", config.string()}), p.log);
  if (!lt::wait_for_port(p.port, 10s)) {
    throw std::runtime_error("relay did not listen on 127.0.0.1:" + std::to_string(p.port) +
                             (p.child->running() ? " within 10 s" : " (it exited)") +
                             "; its log:\n" + lt::read_tail(p.log));
  }
  return p;
}

bool make_cert(const lt::TempDir& dir) {
  auto cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" +
      (dir.path() / "key.pem").string() + "' -out '" + (dir.path() / "cert.pem").string() +
      "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

struct NginxProcess {
  std::unique_ptr<lt::ChildProcess> child;
  std::uint16_t plain_port = 0, tls_port = 0, tls_both_port = 0;
};

// nginx `stream` with one worker (the relay also gets one core): a plain listener and an `ssl`
// listener with the relay's certificate proxying to the plain sink (TLS termination: half the
// relay's crypto), and an `ssl` listener proxying with `proxy_ssl` to the TLS sink (decrypt and
// encrypt again, as the relay does between its sender's and receiver's TLS connections). Both
// TLS legs use the relay's suites in its order (kTls12Ciphers, kTls13Suites).
std::optional<NginxProcess> start_nginx(const std::string& binary, const std::string& module,
                                        const lt::TempDir& dir, std::uint16_t sink_port,
                                        std::uint16_t tls_sink_port, int cpu) {
  NginxProcess n;
  auto sub = dir.path() / "nginx";
  std::filesystem::create_directories(sub / "logs");
  n.plain_port = lt::free_tcp_port();
  n.tls_port = lt::free_tcp_port();
  n.tls_both_port = lt::free_tcp_port();
  const std::string listener_tls =
      " ssl_certificate " + (dir.path() / "cert.pem").string() + "; ssl_certificate_key " +
      (dir.path() / "key.pem").string() +
      "; ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on; ssl_ciphers " +
      kTls12Ciphers + "; ssl_conf_command Ciphersuites " + kTls13Suites + ";";
  // nginx is the client on this leg: the sink's server preference picks the suite; the same
  // list in the same order here keeps it the relay's choice whatever the sink does.
  const std::string upstream_tls =
      " proxy_ssl on; proxy_ssl_protocols TLSv1.2 TLSv1.3; proxy_ssl_ciphers " +
      std::string(kTls12Ciphers) + "; proxy_ssl_conf_command Ciphersuites " + kTls13Suites + ";";
  std::ofstream conf(sub / "nginx.conf");
  if (!module.empty()) conf << "load_module " << module << ";\n";
  conf << "worker_processes 1;\npid " << (sub / "nginx.pid").string() << ";\n"
       << "error_log " << (sub / "logs" / "error.log").string() << " warn;\n"
       << "events { worker_connections 1024; }\n"
       << "stream {\n"
       << "  server { listen 127.0.0.1:" << n.plain_port << "; proxy_pass 127.0.0.1:" << sink_port
       << "; }\n"
       << "  server { listen 127.0.0.1:" << n.tls_port << " ssl;" << listener_tls
       << " proxy_pass 127.0.0.1:" << sink_port << "; }\n"
       << "  server { listen 127.0.0.1:" << n.tls_both_port << " ssl;" << listener_tls
       << upstream_tls << " proxy_pass 127.0.0.1:" << tls_sink_port << "; }\n"
       << "}\n";
  conf.close();
  n.child = std::make_unique<lt::ChildProcess>(
      pinned(cpu, {binary, "-p", sub.string(), "-c", (sub / "nginx.conf").string(), "-e",
                   (sub / "logs" / "error.log").string(), "-g", "daemon off;"}),
      sub / "stdout.log");
  if (!lt::wait_for_port(n.plain_port, 10s) || !lt::wait_for_port(n.tls_port, 2s) ||
      !lt::wait_for_port(n.tls_both_port, 2s)) {
    std::cerr << "nginx did not start; its log:\n"
              << lt::read_tail(sub / "logs" / "error.log") << lt::read_tail(sub / "stdout.log")
              << "\n";
    return std::nullopt;
  }
  return n;
}

std::string find_in_path(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}) {
    auto p = std::filesystem::path(dir) / name;
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

double ratio(double a, double b) {
  return b > 0 ? a / b : NAN;
}

// ---- --check: the CI flood test ----------------------------------------------------------------

int run_check(const std::string& relay_binary, const lt::Args& args) {
  auto [relay_cpu, gen_cpu] = pinning(args);
  lt::TempDir dir;
  // --tls: the same flood over HTTPS (the relay's TLS reader and its TLS writer under a flood).
  const bool tls = args.has("tls");
  if (tls && !make_cert(dir)) {
    std::cerr << "openssl could not make a certificate\n";
    return 1;
  }
  ClientTls client_tls;
  auto relay_process = start_relay(relay_binary, dir, tls, relay_cpu);
  Target target{"relay", true, tls, relay_process.port, relay_process.child->pid(), &client_tls};
  PhaseSpec spec;
  spec.label = "flood";
  spec.pairs = 4;
  spec.k = 16;
  spec.seconds =
      static_cast<double>(std::clamp<long long>(args.get_int("check-seconds", 3), 1, 30));
  spec.warmup = 0ms;
  spec.relay_cpu_delay = true;
  auto r = run_phase(target, spec, nullptr);
  print_result(tls ? "flood over TLS (4 senders, K=16)" : "flood (4 senders, K=16)", r, true);
  std::vector<std::string> failures;
  if (!r.ran) failures.push_back("could not run: " + r.error);
  if (r.ran) {
    if (r.disconnected) {
      failures.push_back(std::to_string(r.disconnected) +
                         " reading receiver(s) disconnected: " + r.disconnect_reason);
    }
    if (r.by_sent == 0) failures.push_back("the bystander sent nothing");
    if (r.bystander_sender_failed) failures.push_back("the bystander sender was disconnected");
    if (r.by_received < r.by_sent) {
      failures.push_back("bystander lost " + std::to_string(r.by_sent - r.by_received) + " of " +
                         std::to_string(r.by_sent) + " datagrams");
    }
    // The bound is on the relay's CPU time spent while a bystander datagram was in flight, not
    // on wall time: the relay is pinned to one CPU, so that time is at most the wall delay, and
    // on an idle machine (relay at a full core) the two agree; on a machine other work keeps
    // busy (load 10 on 2 cores: the relay runs a few ms out of every 10s of ms) the wall delay
    // is mostly the host's scheduling of the relay and of this generator, which made the wall
    // bound fail on main too. What the test proves stays: a bystander whose datagram waits
    // behind the flood (the relay reading and dropping or writing flood frames while its
    // datagram sits, issue 13's 0.67-5 s) keeps the relay busy for that long and fails.
    if (!(r.by_cpu_p99_ms < 200.0)) {
      failures.push_back("bystander p99 delay in relay CPU time " +
                         std::to_string(r.by_cpu_p99_ms) + " ms (wall p99 " +
                         std::to_string(r.by_p99_ms) + " ms), bound 200 ms");
    }
  }
  if (!relay_process.child->running()) failures.push_back("the relay exited");
  for (auto& f : failures) std::printf("FAIL: %s\n", f.c_str());
  if (!failures.empty()) {
    std::printf("relay log tail:\n%s\n", lt::read_tail(relay_process.log).c_str());
    return 1;
  }
  std::printf("PASS\n");
  return 0;
}

// ---- mesh benchmark (issue 16 item 6, docs/mesh.md) ---------------------------------------------

// Two relay nodes in a mesh, both pinned to --relay-cpu (so the cross-node figure pays for both
// nodes' work on one core, as the same-node figure pays for one node's), the generator on
// --gen-cpu. The same peak search (find_peak) runs with senders and receivers on node 1
// ("same node") and with senders on node 1, receivers on node 2 ("across the mesh"), --rounds
// times alternating, and the ratio of the best figures is printed (target >= 0.5). Figures only.
int run_mesh(const std::string& relay_binary, const lt::Args& args) {
  auto [relay_cpu, gen_cpu] = pinning(args);
  pin_self(gen_cpu);
  PhaseSpec spec;
  spec.pairs = static_cast<std::size_t>(std::clamp<long long>(args.get_int("pairs", 4), 1, 64));
  spec.k = static_cast<std::size_t>(std::clamp<long long>(args.get_int("k", 16), 1, 1024));
  spec.size =
      static_cast<std::size_t>(std::clamp<long long>(args.get_int("size", 1200), 16, 65000));
  const auto rounds = std::clamp<long long>(args.get_int("rounds", 2), 1, 10);

  lt::TempDir dir;
  const auto key_path = dir.path() / "mesh.key";
  {
    std::ofstream key(key_path);
    key << "mesh-benchmark-key-0123456789abcdef0123456789abcdef\n";
  }
  std::filesystem::permissions(
      key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const std::uint16_t port[2] = {lt::free_tcp_port(), lt::free_tcp_port()};
  RelayProcess node[2];
  for (int i = 0; i < 2; ++i) {
    auto sub = dir.path() / ("node" + std::to_string(i + 1));
    std::filesystem::create_directories(sub);
    const std::string extra = "mesh:\n  peers: [\"http://127.0.0.1:" + std::to_string(port[1 - i]) +
                              "\"]\n  psk_file: \"" + key_path.string() + "\"\n" +
                              g_relay_extra_yaml;
    auto config = lt::write_relay_config(sub, port[i], extra);
    node[i].port = port[i];
    node[i].log = sub / "relay.log";
    node[i].child = std::make_unique<lt::ChildProcess>(
        pinned(relay_cpu, {relay_binary, "--config", config.string()}), node[i].log);
  }
  for (int i = 0; i < 2; ++i) {
    if (!lt::wait_for_port(port[i], 10s)) {
      std::cerr << "node " << i + 1 << " did not listen on 127.0.0.1:" << port[i] << "; its log:\n"
                << lt::read_tail(node[i].log) << "\n";
      return 1;
    }
  }
  // The links form within a few backoff steps (100 ms doubling) once both listen; each phase's
  // receivers connect before its senders and the warm-up covers their Present.
  std::this_thread::sleep_for(2s);
  Target t1{"node1", true, false, port[0], node[0].child->pid(), nullptr};
  Target t2{"node2", true, false, port[1], node[1].child->pid(), nullptr};
  std::printf(
      "relay_openloop --mesh: %zu pairs, %zu B datagrams, K=%zu, both nodes on CPU %d, generator "
      "on CPU %d\n",
      spec.pairs, spec.size, spec.k, relay_cpu, gen_cpu);
  std::fflush(stdout);
  double same = 0, cross = 0;
  for (long long round = 0; round < rounds; ++round) {
    spec.label = "same node";
    same = std::max(same, find_peak(t1, spec));
    spec.label = "across the mesh";
    cross = std::max(cross, find_peak(t1, spec, &t2));
  }
  std::printf(
      "mesh benchmark: same node %.0f datagrams/s, across the mesh %.0f datagrams/s, ratio %.2f "
      "(target >= 0.5)\n",
      same, cross, same > 0 ? cross / same : 0.0);
  for (int i = 0; i < 2; ++i) {
    if (!node[i].child->running()) {
      std::printf("node %d exited; its log:\n%s\n", i + 1, lt::read_tail(node[i].log).c_str());
      return 1;
    }
  }
  return same > 0 && cross > 0 ? 0 : 1;
}

// ---- benchmark ---------------------------------------------------------------------------------

// What one round of run_benchmark measured.
struct RoundPhases {
  PhaseResult single, single_nginx, single_k1, single_k1_nginx, batch_relay, batch_nginx,
      tls_single, tls_single_nginx, tls_single_both, tls_batch, tls_batch_nginx, tls_batch_both,
      over4, over16;
  double peak = 0;  // the relay's: the best of the ramp and the single-frame phases
  InterleavedOverload interleaved;
  SlowResult slow;
};

// The figures printed, in the order first printed, with their values over the rounds: --rounds
// ends with each one's median.
class FigureLog {
 public:
  void print(const char* what, double value, const char* target) {
    std::printf("%-56s %8.3f   (target %s)\n", what, value, target);
    auto [it, added] = figures_.try_emplace(what, Figure{target, {}});
    if (added) order_.push_back(what);
    it->second.values.push_back(value);
  }
  void print_medians(int rounds) const {
    std::printf("\n== medians over %d rounds (targets from issue 13)\n", rounds);
    for (const auto& what : order_) {
      const auto& f = figures_.at(what);
      std::vector<double> known;
      std::string each;
      for (double v : f.values) {
        char text[32];
        std::snprintf(text, sizeof text, " %.3f", v);
        each += text;
        if (!std::isnan(v)) known.push_back(v);
      }
      std::printf("%-56s %8.3f   (target %s; rounds:%s)\n", what.c_str(), percentile(known, 0.5),
                  f.target.c_str(), each.c_str());
    }
  }

 private:
  struct Figure {
    std::string target;
    std::vector<double> values;
  };
  std::map<std::string, Figure> figures_;
  std::vector<std::string> order_;
};

// One round's ratios, each with its issue-13 target.
void print_round_ratios(const RoundPhases& rp, FigureLog& figures) {
  auto line = [&](const char* what, double value, const char* target) {
    figures.print(what, value, target);
  };
  if (rp.single.ran)
    line("single K=16 datagrams/s relay/nginx",
         ratio(rp.single.delivered_per_s, rp.single_nginx.delivered_per_s), ">= 0.8");
  if (rp.single_k1.ran)
    line("single K=1 datagrams/s relay/nginx",
         ratio(rp.single_k1.delivered_per_s, rp.single_k1_nginx.delivered_per_s), ">= 0.8");
  if (rp.batch_relay.ran)
    line("batch MB/s relay/nginx", ratio(rp.batch_relay.mb_per_s, rp.batch_nginx.mb_per_s),
         ">= 0.8");
  // Two TLS baselines: nginx terminating TLS to a plain upstream does half the relay's crypto
  // (the relay decrypts from the sender and encrypts again to the receiver); nginx with TLS on
  // both legs does the same crypto as the relay.
  if (rp.tls_single.ran) {
    line("TLS single datagrams/s relay/nginx TLS termination",
         ratio(rp.tls_single.delivered_per_s, rp.tls_single_nginx.delivered_per_s), ">= 0.8");
    line("TLS single datagrams/s relay/nginx TLS both legs",
         ratio(rp.tls_single.delivered_per_s, rp.tls_single_both.delivered_per_s), ">= 0.8");
  }
  if (rp.tls_batch.ran) {
    line("TLS batch MB/s relay/nginx TLS termination",
         ratio(rp.tls_batch.mb_per_s, rp.tls_batch_nginx.mb_per_s), ">= 0.8");
    line("TLS batch MB/s relay/nginx TLS both legs",
         ratio(rp.tls_batch.mb_per_s, rp.tls_batch_both.mb_per_s), ">= 0.8");
  }
  // Not targets: nginx itself doing the relay's crypto (decrypt, then encrypt again) against
  // nginx terminating (decrypt only), in the same run: what any relay could reach against the
  // termination baseline if it were as fast as nginx at everything else.
  if (rp.tls_single_both.ran && rp.tls_single_nginx.ran)
    line("TLS single: nginx both legs/nginx termination",
         ratio(rp.tls_single_both.delivered_per_s, rp.tls_single_nginx.delivered_per_s), "-");
  if (rp.tls_batch_both.ran && rp.tls_batch_nginx.ran)
    line("TLS batch: nginx both legs/nginx termination",
         ratio(rp.tls_batch_both.mb_per_s, rp.tls_batch_nginx.mb_per_s), "-");
  // The same ratios per CPU-second used (delivered per CPU-second, relay over nginx): what the
  // ratio would be if both had a whole core, i.e. the figure to compare across runs on a machine
  // that is not quiet.
  auto per_cpu = [](const PhaseResult& r, bool mb) {
    const double v = mb ? r.mb_per_s : r.delivered_per_s;
    return r.ran && r.cpu_cores > 0 ? v / r.cpu_cores : NAN;
  };
  auto cpu_line = [&](const char* what, const PhaseResult& relay_r, const PhaseResult& nginx_r,
                      bool mb) {
    if (relay_r.ran && nginx_r.ran)
      line(what, ratio(per_cpu(relay_r, mb), per_cpu(nginx_r, mb)), ">= 0.8");
  };
  cpu_line("single K=16 per CPU-second relay/nginx", rp.single, rp.single_nginx, false);
  cpu_line("batch MB per CPU-second relay/nginx", rp.batch_relay, rp.batch_nginx, true);
  cpu_line("TLS single per CPU-second relay/nginx TLS termination", rp.tls_single,
           rp.tls_single_nginx, false);
  cpu_line("TLS single per CPU-second relay/nginx TLS both legs", rp.tls_single, rp.tls_single_both,
           false);
  cpu_line("TLS batch MB per CPU-second relay/nginx TLS termination", rp.tls_batch,
           rp.tls_batch_nginx, true);
  cpu_line("TLS batch MB per CPU-second relay/nginx TLS both legs", rp.tls_batch, rp.tls_batch_both,
           true);
  if (rp.peak > 0) std::printf("%-56s %8.0f datagrams/s\n", "relay peak", rp.peak);
  if (rp.over4.ran)
    line("overload 4x: delivered/peak", ratio(rp.over4.delivered_per_s, rp.peak), ">= 0.9");
  if (rp.over16.ran)
    line("overload 16x: delivered/peak", ratio(rp.over16.delivered_per_s, rp.peak), ">= 0.9");
  if (rp.slow.ran) {
    line("slow receiver: Pong delay p99 ms", percentile(rp.slow.reader.pong_ms, 0.99), "-");
    line("slow receiver: disconnected", rp.slow.disconnected ? 1 : 0, "0");
  }
  if (!rp.interleaved.ratio4.empty()) {
    std::printf("%-56s %zu of %zu cycles counted (paced window sustained)\n",
                "overload interleaved with a paced peak", rp.interleaved.ratio4.size(),
                rp.interleaved.cycles);
    line("overload 4x / paced peak, interleaved (median)", percentile(rp.interleaved.ratio4, 0.5),
         ">= 0.9");
    line("overload 16x / paced peak, interleaved (median)", percentile(rp.interleaved.ratio16, 0.5),
         ">= 0.9");
  }
  auto worst = [&](auto field) {
    double w = 0;
    for (auto* r : {&rp.single, &rp.single_k1, &rp.batch_relay, &rp.over4, &rp.over16,
                    &rp.tls_single, &rp.tls_batch}) {
      if (r->ran && r->by_sent) w = std::max(w, field(*r));
    }
    return w;
  };
  line("bystander p99 one-way ms (worst phase)",
       worst([](const PhaseResult& r) { return r.by_p99_ms; }), "<= 5");
  line("bystander loss % (worst phase)", worst([](const PhaseResult& r) {
         return 100.0 * static_cast<double>(r.by_sent - std::min(r.by_sent, r.by_received)) /
                static_cast<double>(r.by_sent);
       }),
       "<= 1");
  line("receivers disconnected (all phases)",
       worst([](const PhaseResult& r) { return static_cast<double>(r.disconnected); }), "0");
  line("GET /ping p99 ms (worst phase)",
       worst([](const PhaseResult& r) { return percentile(r.ping.ms, 0.99); }), "-");
  // Not a target: how much of the figures above the host took (see each phase's steal line).
  line("host steal % of the relay's CPU (worst phase)",
       worst([](const PhaseResult& r) { return r.steal_relay_pct; }), "-");
  line("host steal % of the generator's CPU (worst phase)",
       worst([](const PhaseResult& r) { return r.steal_gen_pct; }), "-");
}

int run_benchmark(const std::string& relay_binary, const lt::Args& args) {
  auto [relay_cpu, gen_cpu] = pinning(args);

  PhaseSpec base;
  base.relay_cpu = relay_cpu;
  base.gen_cpu = gen_cpu;
  base.pairs = static_cast<std::size_t>(std::clamp<long long>(args.get_int("pairs", 4), 1, 64));
  base.seconds = static_cast<double>(std::clamp<long long>(args.get_int("seconds", 5), 1, 120));
  base.warmup =
      std::chrono::milliseconds(std::clamp<long long>(args.get_int("warmup-ms", 1000), 0, 10000));
  base.k = static_cast<std::size_t>(std::clamp<long long>(args.get_int("k", 16), 1, 1024));
  base.rate_per_s =
      static_cast<double>(std::clamp<long long>(args.get_int("rate", 0), 0, 100000000));
  base.size =
      static_cast<std::size_t>(std::clamp<long long>(args.get_int("size", 1200), 16, 65000));
  auto batch = static_cast<std::size_t>(std::clamp<long long>(args.get_int("batch", 10), 2, 54));
  std::string phases =
      "," + args.get("phases", "single,single-k1,batch,tls,tls-batch,overload") + ",";
  auto want = [&](const std::string& p) { return phases.find("," + p + ",") != std::string::npos; };

  lt::TempDir dir;
  if (!make_cert(dir)) {
    std::cerr << "openssl could not make a certificate\n";
    return 1;
  }
  ClientTls tls;
  Sink sink;
  Sink tls_sink(dir.path() / "cert.pem", dir.path() / "key.pem");
  std::string nginx_bin = args.get("nginx", find_in_path("nginx"));
  std::optional<NginxProcess> nginx;
  if (!nginx_bin.empty()) {
    std::string module =
        args.get("nginx-stream-module", "/usr/lib/nginx/modules/ngx_stream_module.so");
    if (!std::filesystem::exists(module)) module.clear();  // stream built in
    nginx = start_nginx(nginx_bin, module, dir, sink.port(), tls_sink.port(), relay_cpu);
  } else {
    std::cout << "nginx not found: no baseline (apt-get install nginx-light libnginx-mod-stream)\n";
  }
  std::printf(
      "relay_openloop: %zu pairs, %zu B datagrams, K=%zu messages per write, %.0f s per phase "
      "(+%lld ms warm-up), relay/nginx on CPU %d, generator on CPU %d\n",
      base.pairs, base.size, base.k, base.seconds, static_cast<long long>(base.warmup.count()),
      relay_cpu, gen_cpu);
  std::fflush(stdout);

  auto relay_phase = [&](Target& t, PhaseSpec s, const std::string& label) {
    s.label = label;
    auto r = run_phase(t, s, nullptr);
    print_result(label, r, true);
    return r;
  };
  // plain, `ssl` termination to the plain sink, or TLS on both legs (`proxy_ssl` to the TLS sink).
  enum class NginxTls { none, termination, both_legs };
  auto nginx_phase = [&](NginxTls mode, PhaseSpec s, const std::string& label) {
    PhaseResult r;
    if (!nginx) return r;
    const auto port = mode == NginxTls::none          ? nginx->plain_port
                      : mode == NginxTls::termination ? nginx->tls_port
                                                      : nginx->tls_both_port;
    Target t{"nginx", false, mode != NginxTls::none, port, nginx->child->pid(), &tls};
    s.label = label;
    s.bystander = s.pinger = false;
    r = run_phase(t, s, mode == NginxTls::both_legs ? &tls_sink : &sink);
    print_result(label, r, false);
    return r;
  };
  auto batch_spec = base;
  batch_spec.batch = batch;
  auto k1_spec = base;
  k1_spec.k = 1;

  // --rounds=N runs every phase N times, relay and nginx alternating as in one round, and ends
  // with each figure's median over the rounds: on a machine whose speed drifts between seconds
  // (other guests, host steal) a ratio of two windows taken close together, repeated, says more
  // than one long window each.
  const int rounds = static_cast<int>(std::clamp<long long>(args.get_int("rounds", 1), 1, 20));
  const int overload_cycles =
      static_cast<int>(std::clamp<long long>(args.get_int("overload-cycles", 8), 0, 100));
  const auto slow_read_bytes = static_cast<double>(
      std::clamp<long long>(args.get_int("slow-read-bytes", 8'000'000), 10'000, 1'000'000'000));
  FigureLog figures;
  for (int round = 1; round <= rounds; ++round) {
    if (rounds > 1) std::printf("\n== round %d of %d\n", round, rounds);
    RoundPhases rp;
    {
      auto relay_process = start_relay(relay_binary, dir, false, relay_cpu);
      Target t{"relay", true, false, relay_process.port, relay_process.child->pid(), &tls};
      if (want("single")) {
        rp.single = relay_phase(t, base, "relay single K=" + std::to_string(base.k));
        rp.single_nginx =
            nginx_phase(NginxTls::none, base, "nginx single K=" + std::to_string(base.k));
      }
      if (want("single-k1")) {
        rp.single_k1 = relay_phase(t, k1_spec, "relay single K=1");
        rp.single_k1_nginx = nginx_phase(NginxTls::none, k1_spec, "nginx single K=1");
      }
      if (want("batch")) {
        rp.batch_relay = relay_phase(t, batch_spec, "relay batch " + std::to_string(batch) + "x");
        rp.batch_nginx =
            nginx_phase(NginxTls::none, batch_spec, "nginx batch " + std::to_string(batch) + "x");
      }
      rp.peak = std::max(rp.single.delivered_per_s, rp.single_k1.delivered_per_s);
      if (want("overload")) {
        rp.peak = std::max(rp.peak, find_peak(t, base));
        std::printf("%-28s %.0f datagrams/s (max of the ramp and the single-frame phases)\n",
                    "relay peak", rp.peak);
      }
      if (want("overload") && rp.peak > 0) {
        auto spec = base;
        spec.rate_per_s = 4 * rp.peak;
        rp.over4 = relay_phase(t, spec, "relay overload 4x peak");
        spec.rate_per_s = 16 * rp.peak;
        rp.over16 = relay_phase(t, spec, "relay overload 16x peak");
        if (overload_cycles > 0)
          rp.interleaved = interleaved_overload(t, base, rp.peak, overload_cycles);
      }
      if (want("slow")) {
        rp.slow = run_slow_phase(t, base, slow_read_bytes);
        print_slow_result(rp.slow, slow_read_bytes);
      }
    }
    if (want("tls") || want("tls-batch")) {
      auto relay_process = start_relay(relay_binary, dir, true, relay_cpu);
      Target t{"relay", true, true, relay_process.port, relay_process.child->pid(), &tls};
      if (want("tls")) {
        rp.tls_single = relay_phase(t, base, "relay TLS single K=" + std::to_string(base.k));
        rp.tls_single_nginx = nginx_phase(NginxTls::termination, base,
                                          "nginx TLS single K=" + std::to_string(base.k));
        rp.tls_single_both = nginx_phase(NginxTls::both_legs, base,
                                         "nginx TLS both legs single K=" + std::to_string(base.k));
      }
      if (want("tls-batch")) {
        rp.tls_batch = relay_phase(t, batch_spec, "relay TLS batch " + std::to_string(batch) + "x");
        rp.tls_batch_nginx = nginx_phase(NginxTls::termination, batch_spec,
                                         "nginx TLS batch " + std::to_string(batch) + "x");
        rp.tls_batch_both = nginx_phase(NginxTls::both_legs, batch_spec,
                                        "nginx TLS both legs batch " + std::to_string(batch) + "x");
      }
    }

    std::printf("\n== ratios (targets from issue 13)%s\n",
                rounds > 1 ? (" of round " + std::to_string(round)).c_str() : "");
    print_round_ratios(rp, figures);
  }
  if (rounds > 1) figures.print_medians(rounds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  try {
    lt::Args args(argc, argv, kUsage);
    if (args.positional().size() != 1) {
      std::cerr << kUsage;
      return 2;
    }
    if (args.has("relay-threads")) {
      g_relay_extra_yaml =
          "relay_threads: " + std::to_string(args.get_int("relay-threads", 0)) + "\n";
    }
    std::string limits;
    for (const char* key : {"client-queue-bytes", "tcp-notsent-lowat"}) {
      if (!args.has(key)) continue;
      std::string yaml_key = key;
      std::replace(yaml_key.begin(), yaml_key.end(), '-', '_');
      limits += "  " + yaml_key + ": " + std::to_string(args.get_int(key, 0)) + "\n";
    }
    if (!limits.empty()) g_relay_extra_yaml += "limits:\n" + limits;
    if (args.has("check")) return run_check(args.positional()[0], args);
    if (args.has("mesh")) return run_mesh(args.positional()[0], args);
    return run_benchmark(args.positional()[0], args);
  } catch (const std::exception& e) {
    std::cerr << "relay_openloop: " << e.what() << "\n";
    return 1;
  }
}
