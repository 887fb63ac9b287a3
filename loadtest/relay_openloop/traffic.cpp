// The generator's traffic (traffic.hpp): the receivers' parse of the relay's frames, the paced
// and unpaced senders, GET /ping timing and the sink nginx forwards to.
#include "relay_openloop/traffic.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace relay_openloop {
namespace {

// The flood threads run at a lower priority than the bystander and /ping threads, so the delays
// those measure are the relay's, not the generator's own scheduling of its flood.
void lower_thread_priority() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
}

constexpr std::size_t kSlowReadBytes = 16 * 1024;

}  // namespace

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// ---- receivers ---------------------------------------------------------------------------------

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

void sink_receiver(Stream& stream, ReceiverStats& stats) {
  lower_thread_priority();
  std::vector<std::uint8_t> buf(512 * 1024);
  for (;;) {
    auto n = stream.read_some(buf.data(), buf.size());
    if (n <= 0) return;
    stats.bytes.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  }
}

void tls13_record_receiver(int fd, ReceiverStats& stats, const std::atomic<bool>* stop) {
  lower_thread_priority();
  constexpr std::size_t kHeader = 5;             // type, legacy version, length
  constexpr std::size_t kTagAndType = 16 + 1;    // AEAD tag, inner content type
  constexpr std::uint8_t kApplicationData = 23;  // every protected TLS 1.3 record's outer type
  FdStream socket(fd, false);
  std::vector<std::uint8_t> buf(512 * 1024);
  std::array<std::uint8_t, kHeader> header{};
  std::size_t header_have = 0, body_left = 0, plain = 0;
  for (;;) {
    const long n = socket.read_some(buf.data(), buf.size());
    if (n <= 0) {
      if (stop && !stop->load()) {
        stats.disconnected = true;
        stats.end_reason = n == 0 ? "closed by the relay" : "read error";
      }
      return;
    }
    const std::uint8_t* p = buf.data();
    auto left = static_cast<std::size_t>(n);
    std::uint64_t counted = 0;
    while (left > 0) {
      if (header_have < kHeader) {
        const std::size_t take = std::min(left, kHeader - header_have);
        std::memcpy(header.data() + header_have, p, take);
        header_have += take;
        p += take;
        left -= take;
        if (header_have < kHeader) break;
        body_left = std::size_t{header[3]} << 8 | header[4];
        plain =
            header[0] == kApplicationData && body_left > kTagAndType ? body_left - kTagAndType : 0;
      }
      const std::size_t take = std::min(left, body_left);
      body_left -= take;
      p += take;
      left -= take;
      if (body_left == 0) {
        counted += plain;
        header_have = 0;
      }
    }
    if (counted) stats.bytes.fetch_add(counted, std::memory_order_relaxed);
  }
}

// ---- senders -----------------------------------------------------------------------------------

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

Sink::Sink(const std::filesystem::path& cert, const std::filesystem::path& key) {
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

Sink::~Sink() {
  close(fd_);
  SSL_CTX_free(tls_);
}

std::unique_ptr<Stream> Sink::accept_one() {
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) throw std::runtime_error("nginx did not connect to the sink within 5 s");
  if (!tls_) return std::make_unique<FdStream>(fd);
  return std::make_unique<SslFdStream>(tls_, fd, true);
}

}  // namespace relay_openloop
