// Compiled PUT /pkarr/{z32} load generator (issue 15 item 7): signs the packets up front, then
// sends them over keep-alive HTTP/1.1 connections, pipelined, spread round-robin over one or more
// daemons (two lookup nodes on one PostgreSQL), and counts the 204s. Also measures the bare
// libsodium verify rate of the same packets on one thread, for the PUT/verify ratio.
//
//   pkarr_put_gen PORT[,PORT...] [packets=20000] [connections=4] [pipeline=64] [keys=256]
//                 [closed|open|verify]
//
// closed (default): each connection sends `pipeline` requests, then waits for their answers.
// open: each connection's requests are written back to back as fast as the socket takes them (a
// sender thread; TCP flow control is the only brake) while another thread reads the answers, so
// the daemon never waits for the generator; `pipeline` is then only the size of each write.
// verify: only the baseline (no connection; PORT is ignored), to run it pinned to the server's
// CPU: the ratio is then PUT/s against what verifying costs the core that serves the PUTs.
// Loopback only: connection i comes from 127.0.0.(1 + i / 128), because the daemon admits at most
// 128 unauthenticated connections per client address (README "Running", limits; an HTTP connection
// never authenticates) and closes more at accept, so more connections need more addresses, as
// separate clients would have. Packets: `keys` keys, timestamps increasing per packet (so most PUTs
// replace the key's previous packet, like republishing endpoints). Never fails on timings; exits 1
// if a connection breaks or nothing was answered 204.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "iroh/pkarr.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  std::vector<const std::string*> todo;
  std::size_t ok = 0, other = 0;
  bool broken = false;
};

// Connections per source address: limits.max_unauthenticated_per_ip of the daemon.
constexpr std::size_t kConnectionsPerSource = 128;

int connect_to(int port, std::size_t index) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in source{};
  source.sin_family = AF_INET;
  source.sin_addr.s_addr =
      htonl(INADDR_LOOPBACK + static_cast<std::uint32_t>(index / kConnectionsPerSource));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
    std::perror("bind");
    std::exit(1);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{30, 0};  // a stuck daemon ends the run instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads responses until `expected` have been parsed (header + Content-Length body each).
bool read_responses(Conn& c, std::string& buf, std::size_t expected) {
  std::size_t parsed = 0;
  char chunk[65536];
  while (parsed < expected) {
    const auto end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string_view head(buf.data(), end);
      std::size_t body = 0;
      for (std::string_view key : {"Content-Length: ", "content-length: "}) {
        if (auto p = head.find(key); p != std::string_view::npos) {
          body = std::strtoul(head.data() + p + key.size(), nullptr, 10);
        }
      }
      if (buf.size() >= end + 4 + body) {
        if (head.substr(0, 12) == "HTTP/1.1 204") {
          ++c.ok;
        } else {
          ++c.other;
        }
        buf.erase(0, end + 4 + body);
        ++parsed;
        continue;
      }
    }
    const ssize_t n = ::recv(c.fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

void run_open(Conn& c, std::size_t pipeline) {
  std::atomic<bool> send_failed{false};
  std::thread sender([&c, pipeline, &send_failed] {
    std::string out;
    for (std::size_t i = 0; i < c.todo.size(); i += pipeline) {
      const std::size_t n = std::min(pipeline, c.todo.size() - i);
      out.clear();
      for (std::size_t j = 0; j < n; ++j) out += *c.todo[i + j];
      for (std::size_t sent = 0; sent < out.size();) {
        const ssize_t w = ::send(c.fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (w <= 0) {
          send_failed = true;
          return;
        }
        sent += static_cast<std::size_t>(w);
      }
    }
  });
  std::string buf;
  // A failed read ends the run (SO_RCVTIMEO bounds it); shutting the socket down unblocks the
  // sender if it is stuck in send().
  if (!read_responses(c, buf, c.todo.size())) {
    c.broken = true;
    ::shutdown(c.fd, SHUT_RDWR);
  }
  sender.join();
  if (send_failed) c.broken = true;
}

void run(Conn& c, std::size_t pipeline) {
  std::string buf, out;
  for (std::size_t i = 0; i < c.todo.size(); i += pipeline) {
    const std::size_t n = std::min(pipeline, c.todo.size() - i);
    out.clear();
    for (std::size_t j = 0; j < n; ++j) out += *c.todo[i + j];
    std::size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t w = ::send(c.fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (w <= 0) {
        c.broken = true;
        return;
      }
      sent += static_cast<std::size_t>(w);
    }
    if (!read_responses(c, buf, n)) {
      c.broken = true;
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || sodium_init() < 0) {
    std::fprintf(stderr,
                 "usage: pkarr_put_gen PORT[,PORT...] [packets] [connections] [pipeline] [keys] "
                 "[closed|open|verify]\n");
    return 2;
  }
  std::vector<int> ports;
  for (std::string_view rest = argv[1]; !rest.empty();) {
    const auto comma = rest.find(',');
    ports.push_back(std::atoi(std::string(rest.substr(0, comma)).c_str()));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  const std::size_t count = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 20000;
  const std::size_t connections = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 4;
  const std::size_t pipeline = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : 64;
  const std::size_t key_count = argc > 5 ? std::strtoul(argv[5], nullptr, 10) : 256;
  const std::string_view mode = argc > 6 ? argv[6] : "closed";
  if (ports.empty() || count == 0 || connections == 0 || pipeline == 0 || key_count == 0 ||
      (mode != "closed" && mode != "open" && mode != "verify")) {
    std::fprintf(stderr, "pkarr_put_gen: bad arguments\n");
    return 2;
  }
  const bool open_loop = mode == "open";

  std::vector<iroh::relay::SecretKey> keys;
  for (std::size_t i = 0; i < key_count; ++i) keys.push_back(iroh::relay::SecretKey::generate());
  const auto base =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  std::vector<iroh::pkarr::SignedPacket> packets;
  std::vector<std::string> requests;
  packets.reserve(count);
  requests.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto& key = keys[i % keys.size()];
    iroh::pkarr::EndpointInfo info;
    info.relay_urls = {"https://bench.example./"};
    auto signed_packet = iroh::pkarr::sign_endpoint_info(key, base + i, info);
    auto& packet = std::get<iroh::pkarr::SignedPacket>(signed_packet);
    const auto payload = packet.relay_payload();
    std::string request =
        "PUT /pkarr/" + iroh::pkarr::key_to_z32(packet.public_key()) +
        " HTTP/1.1\r\nHost: bench\r\nContent-Length: " + std::to_string(payload.size()) +
        "\r\n\r\n";
    request.append(reinterpret_cast<const char*>(payload.data()), payload.size());
    requests.push_back(std::move(request));
    packets.push_back(std::move(packet));
  }

  // Baseline: what verifying these signatures costs one core (the daemon verifies each PUT).
  std::vector<std::vector<std::uint8_t>> messages;
  for (const auto& p : packets) {
    const auto dns = p.dns();
    std::string prefix =
        "3:seqi" + std::to_string(p.timestamp_us()) + "e1:v" + std::to_string(dns.size()) + ":";
    std::vector<std::uint8_t> m(prefix.begin(), prefix.end());
    m.insert(m.end(), dns.begin(), dns.end());
    messages.push_back(std::move(m));
  }
  // CPU time of this thread too: verifies per CPU-second do not depend on what else runs.
  auto thread_cpu = [] {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
  };
  const double verify_cpu_start = thread_cpu();
  const auto verify_start = Clock::now();
  for (std::size_t i = 0; i < packets.size(); ++i) {
    const auto sig = packets[i].signature();
    if (crypto_sign_verify_detached(sig.data(), messages[i].data(), messages[i].size(),
                                    packets[i].public_key().bytes.data()) != 0) {
      std::fprintf(stderr, "baseline verify failed\n");
      return 1;
    }
  }
  const double verify_rate = static_cast<double>(count) /
                             std::chrono::duration<double>(Clock::now() - verify_start).count();
  const double verify_cpu_rate = static_cast<double>(count) / (thread_cpu() - verify_cpu_start);

  if (mode == "verify") {
    std::printf("libsodium crypto_sign_verify_detached/s (1 thread, %zu packets): %.0f\n", count,
                verify_rate);
    std::printf("libsodium crypto_sign_verify_detached per CPU-second: %.0f\n", verify_cpu_rate);
    return 0;
  }

  std::vector<Conn> conns(connections);
  for (std::size_t i = 0; i < connections; ++i)
    conns[i].fd = connect_to(ports[i % ports.size()], i);
  // Packet i goes to connection i % connections, so each key's versions are spread over the
  // daemons and arrive in order per connection only.
  for (std::size_t i = 0; i < count; ++i) conns[i % connections].todo.push_back(&requests[i]);

  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (auto& c : conns) {
    threads.emplace_back([&c, pipeline, open_loop] {
      if (open_loop) {
        run_open(c, pipeline);
      } else {
        run(c, pipeline);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::size_t ok = 0, other = 0;
  bool broken = false;
  for (auto& c : conns) {
    ok += c.ok;
    other += c.other;
    broken = broken || c.broken;
    ::close(c.fd);
  }
  const double rate = static_cast<double>(ok) / elapsed;
  std::printf(
      "pkarr PUT (%s loop): %zu packets (%zu keys) to %zu daemon(s), %zu connections, pipeline "
      "%zu\n",
      open_loop ? "open" : "closed", count, key_count, ports.size(), connections, pipeline);
  std::printf("answered 204: %zu, other: %zu, %.2f s\n", ok, other, elapsed);
  std::printf("PUT/s (204 = verified + committed): %.0f\n", rate);
  std::printf("libsodium crypto_sign_verify_detached/s (1 thread, same packets): %.0f\n",
              verify_rate);
  std::printf("ratio PUT/s / verify/s: %.2f\n", rate / verify_rate);
  if (broken) std::fprintf(stderr, "a connection broke\n");
  return broken || ok == 0 ? 1 : 0;
}
