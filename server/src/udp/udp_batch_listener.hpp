// One batched UDP socket shared by the STUN and DNS listeners: it binds (a host of "::" is
// dual-stack, a specific address is not; optional SO_REUSEPORT so several listeners share the
// address), drains the socket with recvmmsg in bounded rounds per readiness wake-up, hands each
// datagram to the service's handler and flushes the replies with sendmmsg. Replies leave from the
// address the request was sent to (udp_pktinfo.hpp; needed and asked for on a wildcard bind only).
//
// The handler is a plain object held by value; its calls are resolved at compile time, so the
// per-datagram path has no virtual call and no allocation:
//   struct Handler {
//     // Writes the reply to `request` into `reply` and returns its length (0 = no reply).
//     std::size_t handle(std::span<const std::uint8_t> request, const sockaddr_storage& from,
//                        std::span<std::uint8_t> reply);
//     void truncated();                  // a datagram longer than max_request (not handled)
//     void failed(std::uint64_t count);  // receive errors and replies that could not be sent
//     // Optional: before each recvmmsg batch is handled; replies [first, first + count) of that
//     // batch (numbered in the order handle() returned non-zero) went out; after one wake-up.
//     void begin_batch();
//     void replies_sent(std::size_t first, std::size_t count);
//     void drained();
//   };
//
//   auto listener = std::make_shared<UdpBatchListenerFor<Handler>>(io, limits, names, handler);
//   listener->open_and_bind(endpoint, reuse_port);  // throws boost::system::system_error
//   listener->start();                              // receive loop on its own thread
//   listener->stop();                               // idempotent; joins that thread
//
// The receive loop is a thread blocked in recvmmsg, not a coroutine on the io_context (issue 15
// item 7, like knotd's UDP workers): a socket registered with the reactor's epoll has a waiter on
// its wait queue, and every sent datagram, once freed, walked that queue (sock_wfree, ~9 % of the
// DNS server's CPU); a thread that sends is not waiting on the socket, so that walk finds no one.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/strand.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "udp/udp_pktinfo.hpp"

namespace iroh::server {

struct UdpBatchLimits {
  std::size_t batch = 32;          // datagrams per recvmmsg/sendmmsg call
  std::size_t max_request = 1500;  // receive buffer per datagram; longer ones arrive truncated
  std::size_t max_reply = 1500;    // reply buffer per datagram
};

struct UdpBatchNames {
  std::string log_prefix;  // "stun: " logs "stun: send failed: ..." / "...receive failed: ..."
  std::string reuse_port_error;  // what() of the system_error when SO_REUSEPORT cannot be set
};

class UdpBatchListener : public std::enable_shared_from_this<UdpBatchListener> {
 public:
  UdpBatchListener(boost::asio::io_context& io, UdpBatchLimits limits, UdpBatchNames names);
  virtual ~UdpBatchListener();
  UdpBatchListener(const UdpBatchListener&) = delete;
  UdpBatchListener& operator=(const UdpBatchListener&) = delete;

  // `reuse_port` lets several listeners share the address; the kernel spreads peers over them.
  void open_and_bind(const boost::asio::ip::udp::endpoint& endpoint, bool reuse_port);
  boost::asio::ip::udp::endpoint local_endpoint() const { return local_; }
  void start();
  void stop();

 protected:
  // Handles datagrams [0, received) of one recvmmsg batch, queueing replies 0, 1, ... with
  // queue_reply(); returns how many were queued. Called once per batch.
  virtual std::size_t handle_batch(std::size_t received) = 0;
  virtual void replies_sent(std::size_t first, std::size_t count) = 0;
  virtual void failed(std::uint64_t count) = 0;
  virtual void drained() = 0;

  bool truncated(std::size_t i) const { return (rx_msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0; }
  std::span<const std::uint8_t> request(std::size_t i) const {
    return {rx_.data() + i * limits_.max_request, rx_msgs_[i].msg_len};
  }
  const sockaddr_storage& peer(std::size_t i) const { return peers_[i]; }
  std::span<std::uint8_t> reply_buffer(std::size_t out) {
    return {tx_.data() + out * limits_.max_reply, limits_.max_reply};
  }
  // Queues reply slot `out` (`size` bytes) to the sender of datagram `i`, from the address `i`
  // was sent to.
  void queue_reply(std::size_t i, std::size_t out, std::size_t size);

 private:
  using Control = std::array<std::uint8_t, udp_pktinfo::kPktinfoControlSize>;

  void send_batch(std::size_t count);
  // Receives, answers and sends until stop(); runs on thread_.
  void receive_loop();

  const UdpBatchLimits limits_;
  const UdpBatchNames names_;
  std::atomic<bool> stopping_{false};
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::udp::socket socket_;  // binds; released to fd_ (no reactor) before start()
  boost::asio::ip::udp::endpoint local_;
  int fd_ = -1;
  bool pktinfo_ = false;  // destination addresses asked for (a wildcard bind)
  std::thread thread_;
  // Per-datagram buffers for one recvmmsg/sendmmsg round (`batch` each), allocated once.
  std::vector<std::uint8_t> rx_;
  std::vector<std::uint8_t> tx_;
  std::vector<sockaddr_storage> peers_;
  std::vector<Control> rx_control_;
  std::vector<Control> tx_control_;
  std::vector<iovec> rx_iov_;
  std::vector<iovec> tx_iov_;
  std::vector<mmsghdr> rx_msgs_;
  std::vector<mmsghdr> tx_msgs_;
};

template <class Handler>
class UdpBatchListenerFor final : public UdpBatchListener {
 public:
  UdpBatchListenerFor(boost::asio::io_context& io, UdpBatchLimits limits, UdpBatchNames names,
                      Handler handler)
      : UdpBatchListener(io, limits, std::move(names)), handler_(std::move(handler)) {}
  // The receive thread calls handler_: it ends before handler_ goes.
  ~UdpBatchListenerFor() override { stop(); }

 private:
  std::size_t handle_batch(std::size_t received) override {
    if constexpr (requires(Handler & h) { h.begin_batch(); }) handler_.begin_batch();
    std::size_t replies = 0;
    for (std::size_t i = 0; i < received; ++i) {
      if (truncated(i)) {
        handler_.truncated();
        continue;
      }
      const std::size_t size = handler_.handle(request(i), peer(i), reply_buffer(replies));
      if (size != 0) queue_reply(i, replies++, size);
    }
    return replies;
  }

  void replies_sent(std::size_t first, std::size_t count) override {
    if constexpr (requires(Handler & h, std::size_t n) { h.replies_sent(n, n); }) {
      handler_.replies_sent(first, count);
    }
  }

  void failed(std::uint64_t count) override { handler_.failed(count); }

  void drained() override {
    if constexpr (requires(Handler & h) { h.drained(); }) handler_.drained();
  }

  Handler handler_;
};

}  // namespace iroh::server
