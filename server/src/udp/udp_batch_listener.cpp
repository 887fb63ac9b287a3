#include "udp/udp_batch_listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// Full recvmmsg batches after which the handler's drained() runs anyway (metrics stay current
// under a flood).
constexpr int kRoundsPerWake = 16;
// Attempts to flush one batch when a send fails with EINTR or EAGAIN.
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

UdpBatchListener::~UdpBatchListener() {
  stop();
}

void UdpBatchListener::open_and_bind(const udp::endpoint& endpoint, bool reuse_port) {
  socket_.open(endpoint.protocol());
  const int fd = socket_.native_handle();
  if (endpoint.address().is_v6()) {
    // "::" also serves IPv4 (mapped addresses); a specific v6 address is v6 only anyway.
    socket_.set_option(asio::ip::v6_only(!endpoint.address().is_unspecified()));
  }
  // Only a wildcard-bound socket needs each datagram's destination address to answer from it
  // (udp_pktinfo.hpp); a socket bound to one address answers from that one anyway, and without
  // the control messages the kernel skips writing one per datagram received and the source
  // address lookup per reply sent (issue 15 item 7, like knotd on a configured address).
  pktinfo_ = endpoint.address().is_unspecified();
  if (pktinfo_) udp_pktinfo::enable_pktinfo(fd, endpoint.address().is_v6());
  // Room for bursts while the loop is busy elsewhere (the kernel caps it at rmem_max).
  const int receive_buffer = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  const int on = 1;
  if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    throw boost::system::system_error(errno, boost::system::system_category(),
                                      names_.reuse_port_error);
  }
  socket_.bind(endpoint);
  local_ = socket_.local_endpoint();
  // Out of the reactor (see the header): blocking calls on our own thread from here on. A
  // receive timeout bounds how long stop() waits should the shutdown() wake-up not arrive.
  fd_ = socket_.release();
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
  const timeval timeout{0, 200 * 1000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

void UdpBatchListener::start() {
  if (fd_ < 0 || thread_.joinable()) return;
  thread_ = std::thread([this] { receive_loop(); });
}

void UdpBatchListener::stop() {
  stopping_.store(true);
  // Wakes a recvmmsg blocked on the socket (Linux wakes readers of an unconnected UDP socket
  // too, answering ENOTCONN here); the receive timeout is the fallback.
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  // Closed once the loop is gone: the port is free again when stop() returns.
  if (fd_ >= 0 && !thread_.joinable()) {
    ::close(fd_);
    fd_ = -1;
  }
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

void UdpBatchListener::send_batch(std::size_t count) {
  std::size_t next = 0;
  int retries = 0;
  while (next < count && !stopping_.load(std::memory_order_relaxed)) {
    // Blocking: a full send buffer waits here (this thread has nothing else to do), at most
    // kSendRetries times per batch.
    const int sent = ::sendmmsg(fd_, &tx_msgs_[next], static_cast<unsigned>(count - next), 0);
    if (sent > 0) {
      replies_sent(next, static_cast<std::size_t>(sent));
      next += static_cast<std::size_t>(sent);
      continue;
    }
    const int err = errno;
    if ((err == EINTR || err == EAGAIN || err == EWOULDBLOCK) && retries++ < kSendRetries) {
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

void UdpBatchListener::receive_loop() {
  const std::size_t batch = limits_.batch;
  int rounds = 0;
  while (!stopping_.load(std::memory_order_relaxed)) {
    for (std::size_t i = 0; i < batch; ++i) {
      rx_iov_[i] = iovec{rx_.data() + i * limits_.max_request, limits_.max_request};
      msghdr& h = rx_msgs_[i].msg_hdr;
      h = msghdr{};
      h.msg_name = &peers_[i];
      h.msg_namelen = sizeof(sockaddr_storage);
      h.msg_iov = &rx_iov_[i];
      h.msg_iovlen = 1;
      if (pktinfo_) {
        h.msg_control = rx_control_[i].data();
        h.msg_controllen = rx_control_[i].size();
      }
      rx_msgs_[i].msg_len = 0;
    }
    // Waits for the first datagram, then takes what else is queued (up to `batch`).
    const int received =
        ::recvmmsg(fd_, rx_msgs_.data(), static_cast<unsigned>(batch), MSG_WAITFORONE, nullptr);
    if (received <= 0) {
      const int err = received < 0 ? errno : 0;
      if (rounds != 0) {
        drained();
        rounds = 0;
      }
      if (received == 0 || err == EAGAIN || err == EWOULDBLOCK || err == EINTR ||
          err == ECONNREFUSED) {
        continue;
      }
      if (err == EBADF || err == ENOTSOCK) break;
      failed(1);
      log::warn(names_.log_prefix, "receive failed: ", std::strerror(err));
      continue;
    }
    const std::size_t replies = handle_batch(static_cast<std::size_t>(received));
    if (replies != 0) send_batch(replies);
    // The queue ran dry (a short batch), or a bounded number of full ones: what the handler
    // accumulated per wake-up (metrics) goes out now.
    if (static_cast<std::size_t>(received) < batch || ++rounds >= kRoundsPerWake) {
      drained();
      rounds = 0;
    }
  }
  if (rounds != 0) drained();
}

}  // namespace iroh::server
