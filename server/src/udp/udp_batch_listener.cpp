#include "udp/udp_batch_listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// recvmmsg rounds per readiness wake-up before yielding to other work on the io_context.
constexpr int kRoundsPerWake = 16;
// Attempts to flush one batch when the socket send buffer is full.
constexpr int kSendRetries = 4;

}  // namespace

UdpBatchListener::UdpBatchListener(asio::io_context& io, UdpBatchLimits limits, UdpBatchNames names)
    : limits_(limits),
      names_(std::move(names)),
      strand_(asio::make_strand(io)),
      socket_(strand_),
      rx_(limits.batch * limits.max_request),
      tx_(limits.batch * limits.max_reply),
      peers_(limits.batch),
      rx_control_(limits.batch),
      tx_control_(limits.batch),
      rx_iov_(limits.batch),
      tx_iov_(limits.batch),
      rx_msgs_(limits.batch),
      tx_msgs_(limits.batch) {}

UdpBatchListener::~UdpBatchListener() = default;

void UdpBatchListener::open_and_bind(const udp::endpoint& endpoint, bool reuse_port) {
  socket_.open(endpoint.protocol());
  const int fd = socket_.native_handle();
  if (endpoint.address().is_v6()) {
    // "::" also serves IPv4 (mapped addresses); a specific v6 address is v6 only anyway.
    socket_.set_option(asio::ip::v6_only(!endpoint.address().is_unspecified()));
  }
  udp_pktinfo::enable_pktinfo(fd, endpoint.address().is_v6());
  // Room for bursts while the loop is busy elsewhere (the kernel caps it at rmem_max).
  const int receive_buffer = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  const int on = 1;
  if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    throw boost::system::system_error(errno, boost::system::system_category(),
                                      names_.reuse_port_error);
  }
  socket_.bind(endpoint);
  socket_.non_blocking(true);
}

void UdpBatchListener::start() {
  asio::co_spawn(strand_, receive_loop(shared_from_this()), asio::detached);
}

void UdpBatchListener::stop() {
  if (stopping_.exchange(true)) return;
  // The socket belongs to the strand; closing it there ends the pending wait.
  asio::post(strand_, [self = shared_from_this()] {
    boost::system::error_code ec;
    self->socket_.close(ec);
  });
}

void UdpBatchListener::queue_reply(std::size_t i, std::size_t out, std::size_t size) {
  const mmsghdr& m = rx_msgs_[i];
  mmsghdr& t = tx_msgs_[out];
  t = mmsghdr{};
  tx_iov_[out] = iovec{reply_buffer(out).data(), size};
  t.msg_hdr.msg_iov = &tx_iov_[out];
  t.msg_hdr.msg_iovlen = 1;
  t.msg_hdr.msg_name = &peers_[i];
  t.msg_hdr.msg_namelen = m.msg_hdr.msg_namelen;
  const std::size_t control = udp_pktinfo::reply_control(m.msg_hdr, tx_control_[out].data());
  if (control != 0) {
    t.msg_hdr.msg_control = tx_control_[out].data();
    t.msg_hdr.msg_controllen = control;
  }
}

asio::awaitable<void> UdpBatchListener::send_batch(std::size_t count) {
  const int fd = socket_.native_handle();
  std::size_t next = 0;
  int retries = 0;
  while (next < count) {
    const int sent =
        ::sendmmsg(fd, &tx_msgs_[next], static_cast<unsigned>(count - next), MSG_DONTWAIT);
    if (sent > 0) {
      replies_sent(next, static_cast<std::size_t>(sent));
      next += static_cast<std::size_t>(sent);
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if ((err == EAGAIN || err == EWOULDBLOCK) && retries++ < kSendRetries) {
      auto [ec] =
          co_await socket_.async_wait(udp::socket::wait_write, asio::as_tuple(asio::use_awaitable));
      if (ec) break;
      continue;
    }
    if (err == EINVAL && tx_msgs_[next].msg_hdr.msg_controllen != 0) {
      // A source address the kernel will not use (it went away): let routing choose.
      tx_msgs_[next].msg_hdr.msg_control = nullptr;
      tx_msgs_[next].msg_hdr.msg_controllen = 0;
      continue;
    }
    // This datagram cannot go out (unreachable peer, full buffer): count it, send the rest.
    failed(1);
    log::debug(names_.log_prefix, "send failed: ", std::strerror(err));
    ++next;
  }
  if (next < count) failed(count - next);
}

asio::awaitable<bool> UdpBatchListener::drain() {
  const bool open = co_await drain_rounds();
  drained();
  co_return open;
}

asio::awaitable<bool> UdpBatchListener::drain_rounds() {
  const int fd = socket_.native_handle();
  const std::size_t batch = limits_.batch;
  for (int round = 0; round < kRoundsPerWake; ++round) {
    for (std::size_t i = 0; i < batch; ++i) {
      rx_iov_[i] = iovec{rx_.data() + i * limits_.max_request, limits_.max_request};
      msghdr& h = rx_msgs_[i].msg_hdr;
      h = msghdr{};
      h.msg_name = &peers_[i];
      h.msg_namelen = sizeof(sockaddr_storage);
      h.msg_iov = &rx_iov_[i];
      h.msg_iovlen = 1;
      h.msg_control = rx_control_[i].data();
      h.msg_controllen = rx_control_[i].size();
      rx_msgs_[i].msg_len = 0;
    }
    const int received =
        ::recvmmsg(fd, rx_msgs_.data(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
    if (received < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) co_return true;
      if (err == EINTR || err == ECONNREFUSED) continue;
      if (err == EBADF) co_return false;
      failed(1);
      log::warn(names_.log_prefix, "receive failed: ", std::strerror(err));
      co_return true;
    }
    const std::size_t replies = handle_batch(static_cast<std::size_t>(received));
    if (replies != 0) co_await send_batch(replies);
    if (static_cast<std::size_t>(received) < batch) co_return true;
  }
  co_return true;
}

asio::awaitable<void> UdpBatchListener::receive_loop(std::shared_ptr<UdpBatchListener> self) {
  while (!self->stopping_.load()) {
    auto [ec] = co_await self->socket_.async_wait(udp::socket::wait_read,
                                                  asio::as_tuple(asio::use_awaitable));
    if (ec || self->stopping_.load()) break;
    const bool open = co_await self->drain();
    if (!open) break;
  }
}

}  // namespace iroh::server
