// Open-loop overload of a running relay (issue 13): senders write K pre-encoded relay frames per
// write() as fast as the relay reads them; receivers read and count; a bystander pair sends one
// datagram per millisecond and reports one-way delay and loss. Unlike relay_throughput, nothing
// here is back-pressured by a client library, so the relay sees what a busy relay sees.
// A benchmark, not a test: it prints figures and exits 0 unless it could not run at all.
//
//   taskset -c 0 iroh-relay --config cfg.yaml &
//   taskset -c 1 relay_flood --port=3340 --senders=4 --k=16 --size=1200 --seconds=5
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "integration/relay_raw_client.hpp"
#include "relay_harness.hpp"

namespace {

using iroh::loadtest::Args;
using iroh::test::append_ws_frame;
using iroh::test::connect_raw;
using iroh::test::RawClient;
using iroh::test::ServerFrameParser;
namespace relay = iroh::relay;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kUsage =
    "usage: relay_flood [options]\n"
    "  --host=IP --port=P  the relay (default 127.0.0.1:3340)\n"
    "  --senders=N         flooding sender->receiver pairs (default 4)\n"
    "  --k=K               relay frames per write() (default 16)\n"
    "  --size=S            datagram payload bytes (default 1200)\n"
    "  --segments=G        >1: batch frames of G segments of S bytes (default 1)\n"
    "  --seconds=T         flood duration (default 5)\n"
    "  --slow-readers=R    receivers that never read (default 0)\n"
    "  --relay-pid=PID     report this process's RSS at the end\n";

std::uint64_t now_ns() {
  return std::uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

}  // namespace

int main(int argc, char** argv) try {
  Args args(argc, argv, kUsage);
  auto host = args.get("host", "127.0.0.1");
  auto port = std::uint16_t(args.get_int("port", 3340));
  int senders = int(args.get_int("senders", 4));
  int k = int(args.get_int("k", 16));
  std::size_t size = std::size_t(args.get_int("size", 1200));
  int segments = int(args.get_int("segments", 1));
  auto duration = std::chrono::seconds(args.get_int("seconds", 5));
  int slow = int(args.get_int("slow-readers", 0));
  long relay_pid = long(args.get_int("relay-pid", 0));
  if (senders < 1 || senders > 256 || k < 1 || k > 1024 || size < 17 || size > 60000 ||
      segments < 1 || segments * size > 65000 || duration < 1s || duration > 600s) {
    std::cerr << kUsage;
    return 2;
  }
  boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(host), port);

  std::vector<RawClient> receivers, flooders;
  for (int i = 0; i < senders; ++i) receivers.push_back(connect_raw(ep));
  for (int i = 0; i < senders; ++i) flooders.push_back(connect_raw(ep));
  RawClient by_tx = connect_raw(ep), by_rx = connect_raw(ep);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent_frames{0}, recv_datagrams{0}, recv_bytes{0};
  std::atomic<int> receivers_lost{0};
  std::vector<std::thread> threads;

  for (int i = 0; i < senders; ++i) {
    threads.emplace_back([&, i] {
      relay::Bytes contents(std::size_t(segments) * size, std::uint8_t(i));
      auto frame = relay::encode_client_datagram(receivers[std::size_t(i)].key.public_key(),
                                                 relay::Ecn::NotEct,
                                                 segments > 1 ? std::uint16_t(size) : 0, contents);
      std::vector<std::uint8_t> buf;
      for (int j = 0; j < k; ++j) append_ws_frame(buf, *frame);
      int fd = flooders[std::size_t(i)].fd;
      timeval tv{0, 200000};
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      while (!stop.load(std::memory_order_relaxed)) {
        std::size_t off = 0;
        while (off < buf.size() && !stop.load(std::memory_order_relaxed)) {
          ssize_t n = ::send(fd, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
          if (n > 0)
            off += std::size_t(n);
          else if (errno != EAGAIN && errno != EINTR)
            return;
        }
        if (off == buf.size()) sent_frames.fetch_add(std::uint64_t(k), std::memory_order_relaxed);
      }
    });
  }
  for (int i = 0; i < senders; ++i) {
    if (i < slow) continue;
    threads.emplace_back([&, i] {
      ServerFrameParser parser;
      std::vector<std::uint8_t> buf(256 * 1024);
      int fd = receivers[std::size_t(i)].fd;
      while (!stop.load(std::memory_order_relaxed)) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          receivers_lost.fetch_add(1);
          return;
        }
        if (n < 0) continue;
        parser.feed(buf.data(), std::size_t(n), [&](const std::uint8_t* p, std::size_t len) {
          if (len && (p[0] == 6 || p[0] == 7)) {
            recv_datagrams.fetch_add(1, std::memory_order_relaxed);
            recv_bytes.fetch_add(len, std::memory_order_relaxed);
          }
        });
      }
    });
  }
  // Bystander: one datagram per millisecond, sequence number and send time in its last 16 bytes.
  std::mutex delays_mutex;
  std::vector<double> delays_ms;
  std::atomic<std::uint64_t> by_sent{0};
  bool by_rx_lost = false;
  threads.emplace_back([&] {
    auto next = Clock::now();
    std::uint64_t seq = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      relay::Bytes contents(64, 0);
      std::uint64_t ts = now_ns();
      std::memcpy(contents.data() + 48, &seq, 8);
      std::memcpy(contents.data() + 56, &ts, 8);
      auto frame =
          relay::encode_client_datagram(by_rx.key.public_key(), relay::Ecn::NotEct, 0, contents);
      std::vector<std::uint8_t> buf;
      append_ws_frame(buf, *frame);
      if (::send(by_tx.fd, buf.data(), buf.size(), MSG_NOSIGNAL) != ssize_t(buf.size())) return;
      ++seq;
      by_sent.store(seq);
      next += 1ms;
      std::this_thread::sleep_until(next);
    }
  });
  threads.emplace_back([&] {
    ServerFrameParser parser;
    std::vector<std::uint8_t> buf(64 * 1024);
    auto until = Clock::time_point::max();
    while (Clock::now() < until) {
      if (stop.load() && until == Clock::time_point::max()) until = Clock::now() + 1s;
      ssize_t n = ::recv(by_rx.fd, buf.data(), buf.size(), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        by_rx_lost = true;
        return;
      }
      if (n < 0) continue;
      std::uint64_t at = now_ns();
      parser.feed(buf.data(), std::size_t(n), [&](const std::uint8_t* p, std::size_t len) {
        if (len < 64 || p[0] != 6) return;
        std::uint64_t ts;
        std::memcpy(&ts, p + len - 8, 8);
        std::lock_guard lock(delays_mutex);
        delays_ms.push_back(double(at - ts) / 1e6);
      });
    }
  });

  auto started = Clock::now();
  std::this_thread::sleep_for(duration);
  auto recv_at_end = recv_datagrams.load();
  auto bytes_at_end = recv_bytes.load();
  auto sent_at_end = sent_frames.load();
  double secs = std::chrono::duration<double>(Clock::now() - started).count();
  stop = true;
  for (auto& t : threads) t.join();

  std::sort(delays_ms.begin(), delays_ms.end());
  auto pct = [&](double p) {
    return delays_ms.empty() ? -1.0
                             : delays_ms[std::min(delays_ms.size() - 1,
                                                  std::size_t(p * double(delays_ms.size())))];
  };
  std::uint64_t bsent = by_sent.load();
  double loss = bsent ? 100.0 * double(bsent - std::min<std::uint64_t>(bsent, delays_ms.size())) /
                            double(bsent)
                      : 0;
  std::printf("senders=%d k=%d size=%zu segments=%d seconds=%.2f\n", senders, k, size, segments,
              secs);
  std::printf("offered frames/s      %.0f\n", double(sent_at_end) / secs);
  std::printf("delivered frames/s    %.0f  (datagrams/s %.0f)\n", double(recv_at_end) / secs,
              double(recv_at_end) * segments / secs);
  std::printf("delivered MB/s        %.1f\n", double(bytes_at_end) / secs / 1e6);
  std::printf("delivered/offered     %.4f\n",
              sent_at_end ? double(recv_at_end) / double(sent_at_end) : 0.0);
  std::printf("receivers lost        %d%s\n", receivers_lost.load(),
              by_rx_lost ? " (+bystander)" : "");
  std::printf("bystander sent %llu got %zu loss %.2f%% p50 %.3f ms p99 %.3f ms max %.3f ms\n",
              (unsigned long long)bsent, delays_ms.size(), loss, pct(0.5), pct(0.99),
              delays_ms.empty() ? -1.0 : delays_ms.back());
  if (relay_pid > 0) {
    if (auto rss = iroh::loadtest::vm_rss_bytes(pid_t(relay_pid)))
      std::printf("relay RSS             %.1f MB\n", double(*rss) / 1e6);
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "relay_flood: " << e.what() << "\n";
  return 1;
}
