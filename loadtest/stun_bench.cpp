// STUN load generator: keeps a bounded window of Binding requests (with FINGERPRINT) in flight
// from a few UDP sockets (sendmmsg/recvmmsg batches, one thread, optionally pinned to a CPU) and
// counts valid Binding success responses. It stops after --requests measured responses (a fixed
// amount of work, so a slow round takes longer instead of doing less) or after --seconds, whichever
// comes first. Used by loadtest/run-stun.sh to compare our server with coturn on loopback.
//
//   stun_bench --port P [--host 127.0.0.1] [--seconds 10] [--requests 0 (= no limit)]
//              [--sockets 4] [--window 32] [--cpu N] [--label L]
//
// Prints one line: "<label>: <rate> responses/s (... answered N ...; T s)". Exits non-zero if
// nothing was answered.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "iroh/stun.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kBatch = 64;
constexpr std::size_t kPool = 256;  // distinct prebuilt requests per socket
// A socket that hears nothing for this long has lost its window; it is refilled.
constexpr auto kLossTimeout = std::chrono::milliseconds(20);

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  double seconds = 10;
  double warmup = 0.5;
  long long requests = 0;
  int cpu = -1;
  int sockets = 4;
  int window = 32;
  std::string label = "stun";
};

struct Socket {
  int fd = -1;
  int in_flight = 0;
  std::size_t next_request = 0;
  Clock::time_point last_reply;
  std::vector<iroh::stun::Bytes> requests;
};

bool is_binding_success(const std::uint8_t* p, std::size_t n) {
  return n >= iroh::stun::kHeaderSize && p[0] == 0x01 && p[1] == 0x01 && p[4] == 0x21 &&
         p[5] == 0x12 && p[6] == 0xA4 && p[7] == 0x42;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--host") {
      o.host = v;
    } else if (k == "--port") {
      o.port = std::atoi(v);
    } else if (k == "--seconds") {
      o.seconds = std::atof(v);
    } else if (k == "--sockets") {
      o.sockets = std::atoi(v);
    } else if (k == "--window") {
      o.window = std::atoi(v);
    } else if (k == "--requests") {
      o.requests = std::atoll(v);
    } else if (k == "--cpu") {
      o.cpu = std::atoi(v);
    } else if (k == "--label") {
      o.label = v;
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.sockets < 1 || o.sockets > 64 || o.window < 1 ||
      o.window > 1024 || o.seconds <= 0 || o.seconds > 120 || o.requests < 0) {
    std::fprintf(stderr,
                 "usage: stun_bench --port P [--host H] [--seconds S<=120] [--sockets 1..64] "
                 "[--window 1..1024] [--requests N] [--cpu N] [--label L]\n");
    return 2;
  }
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
  }

  sockaddr_storage server{};
  socklen_t server_len = 0;
  int family = AF_INET;
  if (inet_pton(AF_INET, o.host.c_str(), &reinterpret_cast<sockaddr_in&>(server).sin_addr) == 1) {
    auto& sin = reinterpret_cast<sockaddr_in&>(server);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<std::uint16_t>(o.port));
    server_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, o.host.c_str(),
                       &reinterpret_cast<sockaddr_in6&>(server).sin6_addr) == 1) {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(server);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(static_cast<std::uint16_t>(o.port));
    server_len = sizeof(sockaddr_in6);
    family = AF_INET6;
  } else {
    std::fprintf(stderr, "bad host %s (numeric address expected)\n", o.host.c_str());
    return 2;
  }

  std::vector<Socket> sockets(static_cast<std::size_t>(o.sockets));
  std::uint32_t seq = 0;
  for (Socket& s : sockets) {
    s.fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (s.fd < 0 || ::connect(s.fd, reinterpret_cast<sockaddr*>(&server), server_len) != 0) {
      std::perror("socket/connect");
      return 1;
    }
    const int buf = 1 << 20;
    ::setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    for (std::size_t i = 0; i < kPool; ++i) {
      iroh::stun::TransactionId id{};
      ++seq;
      std::memcpy(id.data(), &seq, sizeof seq);
      id[11] = 0x5B;
      s.requests.push_back(iroh::stun::make_binding_request(id));
    }
  }

  std::array<std::array<std::uint8_t, 1500>, kBatch> rx{};
  std::array<iovec, kBatch> rx_iov{};
  std::array<mmsghdr, kBatch> rx_msgs{};
  std::array<iovec, kBatch> tx_iov{};
  std::array<mmsghdr, kBatch> tx_msgs{};
  std::vector<pollfd> pfds(sockets.size());
  for (std::size_t i = 0; i < sockets.size(); ++i) pfds[i] = {sockets[i].fd, POLLIN, 0};

  const auto start = Clock::now();
  const auto measure_from =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.seconds));
  std::uint64_t sent = 0, received = 0, measured = 0, invalid = 0, refills = 0, send_errors = 0;
  for (Socket& s : sockets) s.last_reply = start;

  auto fill = [&](Socket& s) {
    while (s.in_flight < o.window) {
      const std::size_t n =
          std::min<std::size_t>(kBatch, static_cast<std::size_t>(o.window - s.in_flight));
      for (std::size_t i = 0; i < n; ++i) {
        auto& req = s.requests[s.next_request++ % kPool];
        tx_iov[i] = {req.data(), req.size()};
        tx_msgs[i] = mmsghdr{};
        tx_msgs[i].msg_hdr.msg_iov = &tx_iov[i];
        tx_msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int r = ::sendmmsg(s.fd, tx_msgs.data(), static_cast<unsigned>(n), 0);
      if (r <= 0) {
        ++send_errors;
        return;
      }
      s.in_flight += r;
      sent += static_cast<std::uint64_t>(r);
    }
  };

  for (Socket& s : sockets) fill(s);
  // Bounded by `end`: every iteration either polls with a timeout or makes progress.
  const auto done = [&] {
    return o.requests > 0 && measured >= static_cast<std::uint64_t>(o.requests);
  };
  for (auto now = Clock::now(); now < end && !done(); now = Clock::now()) {
    const int ready = ::poll(pfds.data(), pfds.size(), 10);
    now = Clock::now();
    for (std::size_t k = 0; k < sockets.size(); ++k) {
      Socket& s = sockets[k];
      if (ready > 0 && (pfds[k].revents & POLLIN) != 0) {
        for (int round = 0; round < 16; ++round) {
          for (std::size_t i = 0; i < kBatch; ++i) {
            rx_iov[i] = {rx[i].data(), rx[i].size()};
            rx_msgs[i] = mmsghdr{};
            rx_msgs[i].msg_hdr.msg_iov = &rx_iov[i];
            rx_msgs[i].msg_hdr.msg_iovlen = 1;
          }
          const int r = ::recvmmsg(s.fd, rx_msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
          if (r <= 0) break;
          for (int i = 0; i < r; ++i) {
            if (is_binding_success(rx[static_cast<std::size_t>(i)].data(),
                                   rx_msgs[static_cast<std::size_t>(i)].msg_len)) {
              ++received;
              if (now >= measure_from) ++measured;
            } else {
              ++invalid;
            }
          }
          s.in_flight = std::max(0, s.in_flight - r);
          s.last_reply = now;
          if (r < static_cast<int>(kBatch)) break;
        }
      } else if (now - s.last_reply > kLossTimeout) {
        s.in_flight = 0;  // the window was lost (queue overflow somewhere); start over
        s.last_reply = now;
        ++refills;
      }
      fill(s);
    }
  }
  const auto finished = std::min(Clock::now(), end);
  const double elapsed = std::chrono::duration<double>(finished - measure_from).count();
  const double rate = elapsed > 0 ? static_cast<double>(measured) / elapsed : 0;
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double generator_cpu =
      static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
      static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  std::printf(
      "%s: %.0f responses/s (sent %llu, answered %llu, invalid %llu, window refills %llu, "
      "send errors %llu; %d sockets x window %d; measured %llu in %.2f s; generator CPU %.2f s)\n",
      o.label.c_str(), rate, static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(received), static_cast<unsigned long long>(invalid),
      static_cast<unsigned long long>(refills), static_cast<unsigned long long>(send_errors),
      o.sockets, o.window, static_cast<unsigned long long>(measured), elapsed, generator_cpu);
  for (Socket& s : sockets) ::close(s.fd);
  return measured > 0 ? 0 : 1;
}
