#include "stun_service.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "bind_address.hpp"
#include "iroh/stun.hpp"
#include "log.hpp"
#include "udp_pktinfo.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// Datagrams handled per recvmmsg/sendmmsg call: enough to amortise the syscalls, small enough
// that the buffers stay in cache.
constexpr std::size_t kBatch = 64;
// STUN over UDP stays below the path MTU; anything longer is truncated and counted as ignored.
constexpr std::size_t kMaxDatagram = 1500;
// recvmmsg rounds per readiness wake-up before yielding to other work on the io_context.
constexpr int kRoundsPerWake = 16;
// Attempts to flush one batch when the socket send buffer is full.
constexpr int kSendRetries = 4;
using udp_pktinfo::kPktinfoControlSize;
using udp_pktinfo::reply_control;

}  // namespace

stun::Endpoint to_stun_endpoint(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    std::array<std::uint8_t, 4> a{};
    std::memcpy(a.data(), &sin.sin_addr, 4);
    return stun::Endpoint::v4(a, ntohs(sin.sin_port));
  }
  const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
  std::array<std::uint8_t, 16> a{};
  std::memcpy(a.data(), &sin6.sin6_addr, 16);
  return stun::Endpoint::v6(a, ntohs(sin6.sin6_port));
}

namespace {

prometheus::Counter& stun_counter(prometheus::Registry& registry, const std::string& name,
                                  const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

StunMetrics::StunMetrics(prometheus::Registry& registry)
    : requests(stun_counter(registry, "stun_requests_total", "Number of stun requests made.")),
      ipv4_success(stun_counter(registry, "stun_ipv4_success_total",
                                "Number of successful requests over ipv4.")),
      ipv6_success(stun_counter(registry, "stun_ipv6_success_total",
                                "Number of successful requests over ipv6.")),
      bad_requests(stun_counter(
          registry, "stun_bad_requests_total",
          "Number of bad requests, either non-stun packets or incorrect binding request.")),
      failures(stun_counter(registry, "stun_failures_total", "Number of failures.")),
      ignored(stun_counter(registry, "stun_ignored_total",
                           "Number of datagrams ignored: not STUN, indications, responses, "
                           "oversize.")) {}

// What the listeners of one service share; outlives stop() while a loop is winding down.
struct StunShared {
  StunShared(std::string software_value, std::shared_ptr<prometheus::Registry> registry_value)
      : software(std::move(software_value)),
        registry(registry_value ? std::move(registry_value)
                                : std::make_shared<prometheus::Registry>()),
        metrics(*registry) {}
  std::string software;
  std::shared_ptr<prometheus::Registry> registry;
  StunMetrics metrics;
  std::atomic<bool> stopping{false};
};

// One UDP socket with its receive loop, on its own strand.
struct StunListener {
  StunListener(asio::io_context& io, std::shared_ptr<StunShared> s)
      : shared(std::move(s)), strand(asio::make_strand(io)), socket(strand) {}

  // Per-datagram buffers for one recvmmsg/sendmmsg round, allocated once.
  struct Slots {
    std::array<std::array<std::uint8_t, kMaxDatagram>, kBatch> rx{};
    std::array<std::array<std::uint8_t, stun::kMaxResponseSize>, kBatch> tx{};
    std::array<sockaddr_storage, kBatch> peers{};
    std::array<std::array<std::uint8_t, kPktinfoControlSize>, kBatch> rx_control{};
    std::array<std::array<std::uint8_t, kPktinfoControlSize>, kBatch> tx_control{};
    std::array<iovec, kBatch> rx_iov{};
    std::array<iovec, kBatch> tx_iov{};
    std::array<mmsghdr, kBatch> rx_msgs{};
    std::array<mmsghdr, kBatch> tx_msgs{};
    std::array<stun::Endpoint::Family, kBatch> tx_success_family{};
    std::array<bool, kBatch> tx_success{};
  };

  // Counts of one drain() call, added to the shared metrics at its end.
  struct Tally {
    std::uint64_t requests = 0, ipv4_success = 0, ipv6_success = 0, bad_requests = 0, failures = 0,
                  ignored = 0;
  };

  std::shared_ptr<StunShared> shared;
  Tally counters;
  asio::strand<asio::io_context::executor_type> strand;
  udp::socket socket;
  std::unique_ptr<Slots> slots = std::make_unique<Slots>();

  // `reuse_port` lets several listeners share the address; the kernel spreads peers over them.
  void open_and_bind(const udp::endpoint& ep, bool reuse_port) {
    socket.open(ep.protocol());
    const int fd = socket.native_handle();
    const int on = 1;
    if (ep.address().is_v6()) {
      // "::" also serves IPv4 (mapped addresses); a specific v6 address is v6 only anyway.
      socket.set_option(asio::ip::v6_only(!ep.address().is_unspecified()));
    }
    udp_pktinfo::enable_pktinfo(fd, ep.address().is_v6());
    // Room for bursts while the loop is busy elsewhere (the kernel caps it at rmem_max).
    const int receive_buffer = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
      throw boost::system::system_error(errno, boost::system::system_category(), "SO_REUSEPORT");
    }
    socket.bind(ep);
    socket.non_blocking(true);
  }

  // Fills tx slot `out_index` from rx slot `i`; returns true if there is something to send.
  bool handle(std::size_t i, std::size_t out_index) {
    Slots& s = *slots;
    const mmsghdr& m = s.rx_msgs[i];
    if ((m.msg_hdr.msg_flags & MSG_TRUNC) != 0) {
      ++counters.ignored;
      return false;
    }
    const stun::Endpoint source = to_stun_endpoint(s.peers[i]);
    const stun::HandleResult r = stun::handle_datagram(
        stun::ByteSpan(s.rx[i].data(), m.msg_len), source, s.tx[out_index],
        stun::ResponseOptions{.software = shared->software, .fingerprint = true});
    if (!r.is_request) {
      ++counters.ignored;
      return false;
    }
    ++counters.requests;
    if (!r.success()) ++counters.bad_requests;
    if (r.action != stun::Action::Reply) {
      log::debug("stun: dropped request: ", stun::to_string(r.reason));
      return false;
    }
    mmsghdr& t = s.tx_msgs[out_index];
    t = mmsghdr{};
    s.tx_iov[out_index] = iovec{s.tx[out_index].data(), r.size};
    t.msg_hdr.msg_iov = &s.tx_iov[out_index];
    t.msg_hdr.msg_iovlen = 1;
    t.msg_hdr.msg_name = &s.peers[i];
    t.msg_hdr.msg_namelen = m.msg_hdr.msg_namelen;
    const std::size_t control = reply_control(m.msg_hdr, s.tx_control[out_index].data());
    if (control != 0) {
      t.msg_hdr.msg_control = s.tx_control[out_index].data();
      t.msg_hdr.msg_controllen = control;
    }
    s.tx_success[out_index] = r.success();
    s.tx_success_family[out_index] = r.reported_family;
    return true;
  }

  void count_sent(std::size_t index) {
    Slots& s = *slots;
    if (!s.tx_success[index]) return;
    auto& counter = s.tx_success_family[index] == stun::Endpoint::Family::V4
                        ? counters.ipv4_success
                        : counters.ipv6_success;
    ++counter;
  }

  asio::awaitable<void> send_batch(std::size_t count) {
    Slots& s = *slots;
    const int fd = socket.native_handle();
    std::size_t next = 0;
    int retries = 0;
    while (next < count) {
      const int sent =
          ::sendmmsg(fd, &s.tx_msgs[next], static_cast<unsigned>(count - next), MSG_DONTWAIT);
      if (sent > 0) {
        for (int k = 0; k < sent; ++k) count_sent(next + static_cast<std::size_t>(k));
        next += static_cast<std::size_t>(sent);
        continue;
      }
      const int err = errno;
      if (err == EINTR) continue;
      if ((err == EAGAIN || err == EWOULDBLOCK) && retries++ < kSendRetries) {
        auto [ec] = co_await socket.async_wait(udp::socket::wait_write,
                                               asio::as_tuple(asio::use_awaitable));
        if (ec) break;
        continue;
      }
      if (err == EINVAL && s.tx_msgs[next].msg_hdr.msg_controllen != 0) {
        // A source address the kernel will not use (it went away): let routing choose.
        s.tx_msgs[next].msg_hdr.msg_control = nullptr;
        s.tx_msgs[next].msg_hdr.msg_controllen = 0;
        continue;
      }
      // This datagram cannot go out (unreachable peer, full buffer): count it, send the rest.
      ++counters.failures;
      log::debug("stun: send failed: ", std::strerror(err));
      ++next;
    }
    for (; next < count; ++next) ++counters.failures;
  }

  void publish_counters() {
    StunMetrics& m = shared->metrics;
    const Tally t = std::exchange(counters, Tally{});
    if (t.requests != 0) m.requests.Increment(static_cast<double>(t.requests));
    if (t.ipv4_success != 0) m.ipv4_success.Increment(static_cast<double>(t.ipv4_success));
    if (t.ipv6_success != 0) m.ipv6_success.Increment(static_cast<double>(t.ipv6_success));
    if (t.bad_requests != 0) m.bad_requests.Increment(static_cast<double>(t.bad_requests));
    if (t.failures != 0) m.failures.Increment(static_cast<double>(t.failures));
    if (t.ignored != 0) m.ignored.Increment(static_cast<double>(t.ignored));
  }

  // Returns false when the socket is gone.
  asio::awaitable<bool> drain() {
    const bool open = co_await drain_rounds();
    publish_counters();
    co_return open;
  }

  asio::awaitable<bool> drain_rounds() {
    Slots& s = *slots;
    const int fd = socket.native_handle();
    for (int round = 0; round < kRoundsPerWake; ++round) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        s.rx_iov[i] = iovec{s.rx[i].data(), s.rx[i].size()};
        msghdr& h = s.rx_msgs[i].msg_hdr;
        h = msghdr{};
        h.msg_name = &s.peers[i];
        h.msg_namelen = sizeof(sockaddr_storage);
        h.msg_iov = &s.rx_iov[i];
        h.msg_iovlen = 1;
        h.msg_control = s.rx_control[i].data();
        h.msg_controllen = kPktinfoControlSize;
        s.rx_msgs[i].msg_len = 0;
      }
      const int received = ::recvmmsg(fd, s.rx_msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (received < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) co_return true;
        if (err == EINTR || err == ECONNREFUSED) continue;
        if (err == EBADF) co_return false;
        ++counters.failures;
        log::warn("stun: receive failed: ", std::strerror(err));
        co_return true;
      }
      std::size_t replies = 0;
      for (std::size_t i = 0; i < static_cast<std::size_t>(received); ++i) {
        if (handle(i, replies)) ++replies;
      }
      if (replies != 0) co_await send_batch(replies);
      if (static_cast<std::size_t>(received) < kBatch) co_return true;
    }
    co_return true;
  }

  static asio::awaitable<void> receive_loop(std::shared_ptr<StunListener> self) {
    while (!self->shared->stopping.load()) {
      auto [ec] = co_await self->socket.async_wait(udp::socket::wait_read,
                                                   asio::as_tuple(asio::use_awaitable));
      if (ec || self->shared->stopping.load()) break;
      if (!co_await self->drain()) break;
    }
  }
};

struct StunService::Impl {
  asio::io_context& io;
  config::StunConfig config;
  unsigned sockets;
  std::shared_ptr<StunShared> shared;
  std::vector<std::shared_ptr<StunListener>> listeners;
  udp::endpoint bound;
};

StunService::StunService(asio::io_context& io, const config::StunConfig& config,
                         StunOptions options)
    : impl_(std::make_unique<Impl>(
          Impl{io,
               config,
               std::max(1u, options.sockets),
               std::make_shared<StunShared>(std::move(options.software),
                                            std::move(options.metrics_registry)),
               {},
               {}})) {}

StunService::~StunService() {
  stop();
}

void StunService::start() {
  const udp::endpoint ep =
      resolve_bind_endpoint<udp::endpoint>(impl_->config.bind_addr, "stun_bind_addr");
  const bool reuse_port = impl_->sockets > 1;
  for (unsigned i = 0; i < impl_->sockets; ++i) {
    auto listener = std::make_shared<StunListener>(impl_->io, impl_->shared);
    // Port 0: the first socket picks the port, the others join it.
    listener->open_and_bind(i == 0 ? ep : impl_->bound, reuse_port);
    if (i == 0) impl_->bound = listener->socket.local_endpoint();
    impl_->listeners.push_back(std::move(listener));
  }
  log::info("stun: listening on udp ", impl_->bound, " (", impl_->sockets, " socket",
            impl_->sockets == 1 ? "" : "s", ")");
  for (auto& listener : impl_->listeners) {
    asio::co_spawn(listener->strand, StunListener::receive_loop(listener), asio::detached);
  }
}

void StunService::stop() {
  if (impl_->shared->stopping.exchange(true)) return;
  // Each socket belongs to its strand; closing it there ends the pending wait.
  for (auto& listener : impl_->listeners) {
    asio::post(listener->strand, [listener] {
      boost::system::error_code ec;
      listener->socket.close(ec);
    });
  }
}

udp::endpoint StunService::local_endpoint() const {
  return impl_->bound;
}

const StunMetrics& StunService::metrics() const {
  return impl_->shared->metrics;
}

}  // namespace iroh::server
