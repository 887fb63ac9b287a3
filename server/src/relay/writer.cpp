// The writer part of Connection (spec relay.md §6.3, issue 13): the send queue's producers
// (other connections' readers and the registry, any thread), and the writer coroutine that drains
// the queue with one gather write per batch, control frames first; the write watchdog; and the
// server's keepalive Pings (§6.5).
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "core/log.hpp"
#include "relay/connection_impl.hpp"

namespace iroh::server {

template <class Stream>
RelayClientHandle::Enqueue Connection<Stream>::try_enqueue_datagram(const ServerDatagram& frame,
                                                                    RelayClientHandle* sender) {
  Enqueue queued = Enqueue::Ok;
  {
    std::lock_guard lock(queue_mutex_);
    if (closed_) return Enqueue::Closed;
    switch (queue_.push_datagram(frame)) {
      case SendQueue::Push::Ok:
        break;
      case SendQueue::Push::OkAboveMark:
        if (add_drain_waiter(sender)) queued = Enqueue::OkThrottle;
        break;
      case SendQueue::Push::BudgetFull:
        return Enqueue::BudgetFull;
      case SendQueue::Push::Full:
        return add_drain_waiter(sender) ? Enqueue::FullThrottle : Enqueue::Full;
    }
    if (!writer_waiting_) return queued;
    writer_waiting_ = false;
  }
  wake_writer();
  return queued;
}

template <class Stream>
RelayClientHandle::Enqueue Connection<Stream>::try_enqueue_control(relay::Bytes&& frame) {
  return enqueue_control(QueuedFrame{std::move(frame), kBinary}, kControlQueueCapacity);
}

template <class Stream>
std::size_t Connection<Stream>::queued_datagrams() {
  std::lock_guard lock(queue_mutex_);
  return queue_.datagram_count();
}

template <class Stream>
std::size_t Connection<Stream>::queued_bytes() {
  std::lock_guard lock(queue_mutex_);
  return queue_.datagram_bytes();
}

template <class Stream>
void Connection<Stream>::resume_reading() {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(stream_.get_executor(), [self] {
      self->resume_signal_ = true;
      if (self->throttle_timer_) self->throttle_timer_->cancel();
    });
  }
}

// A datagram handed to another worker found its destination full: the same back-pressure as for
// a local destination (forward() in session.cpp), one post later.
template <class Stream>
void Connection<Stream>::slow_down(SlowDown why) {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(stream_.get_executor(), [self, why] {
      if (why == SlowDown::BudgetBackoff) {
        self->budget_backoff_ = true;
      } else if (!self->throttled_) {
        self->throttled_ = true;
        self->resume_signal_ = false;
      }
    });
  }
}

template <class Stream>
RelayClientHandle::Enqueue Connection<Stream>::enqueue_control(QueuedFrame&& frame,
                                                               std::size_t capacity) {
  {
    std::lock_guard lock(queue_mutex_);
    if (closed_) return Enqueue::Closed;
    if (!queue_.push_control(std::move(frame), capacity)) return Enqueue::Full;
    if (!writer_waiting_) return Enqueue::Ok;
    writer_waiting_ = false;
  }
  wake_writer();
  return Enqueue::Ok;
}

template <class Stream>
void Connection<Stream>::wake_writer() {
  asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->wake_.cancel(); });
}

// queue_mutex_ held. Records `sender` as waiting for this queue to drain, unless this client is
// not draining at all (limits.stalled_write_after). False: the sender is not to be throttled.
template <class Stream>
bool Connection<Stream>::add_drain_waiter(RelayClientHandle* sender) {
  if (!sender || sender == this) return false;
  const auto started = write_started_ns_.load(std::memory_order_relaxed);
  if (started != 0 && Clock::now().time_since_epoch() - Clock::duration(started) >
                          settings_->limits.stalled_write_after)
    return false;
  for (const auto& w : drain_waiters_) {
    if (w.first == sender) return true;
  }
  if (drain_waiters_.size() >= kMaxDrainWaiters) return false;
  drain_waiters_.emplace_back(sender, sender->weak_handle());
  return true;
}

template <class Stream>
void Connection<Stream>::resume_waiters(
    std::vector<std::pair<RelayClientHandle*, std::weak_ptr<RelayClientHandle>>>& waiters) {
  for (auto& w : waiters) {
    if (auto strong = w.second.lock()) strong->resume_reading();
  }
  waiters.clear();
}

// Write timeout without a timer operation per write: one pending wait checks the write in
// flight and re-arms itself only while writes keep happening. A write times out only when it
// made no progress for limits.write_timeout: the kernel's unacknowledged bytes (SIOCOUTQ)
// neither shrank nor emptied. A client that reads is never closed because the relay itself was
// slow to run the write's completion (issue 13).
template <class Stream>
void Connection<Stream>::begin_write() {
  write_started_ = Clock::now();
  write_started_ns_.store(write_started_.time_since_epoch().count(), std::memory_order_relaxed);
  writing_ = true;
  if (watchdog_armed_) return;
  watchdog_armed_ = true;
  write_progress_at_ = write_started_;
  write_outq_ = send_queue_bytes();
  watchdog_.expires_at(write_started_ + settings_->limits.write_timeout);
  watchdog_.async_wait([weak = this->weak_from_this()](error_code ec) {
    if (auto self = weak.lock()) self->on_write_watchdog(ec);
  });
}

template <class Stream>
void Connection<Stream>::end_write() {
  writing_ = false;
  write_started_ns_.store(0, std::memory_order_relaxed);
}

// Bytes written to the socket and not yet acknowledged by the peer; -1 if unknown.
template <class Stream>
int Connection<Stream>::send_queue_bytes() {
  int outq = 0;
  if (::ioctl(socket().native_handle(), SIOCOUTQ, &outq) != 0) return -1;
  return outq;
}

template <class Stream>
void Connection<Stream>::on_write_watchdog(error_code ec) {
  watchdog_armed_ = false;
  if (ec || !writing_ || socket_closed_) return;
  const auto now = Clock::now();
  const int outq = send_queue_bytes();
  if (outq == 0 || (outq > 0 && outq != write_outq_)) write_progress_at_ = now;
  write_outq_ = outq;
  auto deadline = std::max(write_started_, write_progress_at_) + settings_->limits.write_timeout;
  if (now >= deadline) {
    log::debug("client ", endpoint_id().to_hex(), ": write timeout");
    state_.metrics.write_timeouts.fetch_add(1, std::memory_order_relaxed);
    close_socket();
    return;
  }
  watchdog_armed_ = true;
  watchdog_.expires_at(deadline);
  watchdog_.async_wait([weak = this->weak_from_this()](error_code ec2) {
    if (auto self = weak.lock()) self->on_write_watchdog(ec2);
  });
}

// One non-blocking sendmsg of `buffers` (plain TCP only); the bytes taken, 0 if the socket is
// full, SIZE_MAX on error (logged).
template <class Stream>
std::size_t Connection<Stream>::send_now(const std::vector<asio::const_buffer>& buffers) {
  std::array<iovec, 2 * kMaxBatchFrames + kMaxBatchSpans> iov;
  const std::size_t count = std::min(buffers.size(), iov.size());
  for (std::size_t i = 0; i < count; ++i) {
    iov[i].iov_base = const_cast<void*>(buffers[i].data());
    iov[i].iov_len = buffers[i].size();
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  for (;;) {
    ssize_t n = ::sendmsg(socket().native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return std::size_t(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    log::debug("write to ", peer_text(), " failed: ", std::strerror(errno));
    return SIZE_MAX;
  }
}

// Drops the first `n` bytes of `buffers`; true if nothing is left.
template <class Stream>
bool Connection<Stream>::consume_buffers(std::vector<asio::const_buffer>& buffers, std::size_t n) {
  std::size_t done = 0;
  while (done < buffers.size() && n >= buffers[done].size()) n -= buffers[done++].size();
  buffers.erase(buffers.begin(), buffers.begin() + std::ptrdiff_t(done));
  if (buffers.empty()) return true;
  buffers.front() += n;
  return false;
}

// The batch (control frames in batch_, then the datagram runs in batch_spans_) as one socket
// write: scatter-gather for TCP, one iovec per run; for TLS, SSL_write_ex on each run as it lies
// in the send queue's chunks, which it turns into full-size records written straight to the
// socket. Only the control frames get a WebSocket header here (the datagram runs are whole
// WebSocket messages already), and over TLS a copy (they are few and small).
template <class Stream>
asio::awaitable<bool> Connection<Stream>::write_batch() {
  if (socket_closed_) co_return false;
  gather_batch();
  // A plain `if` for the co_await (GCC 12, see fill() in session.cpp).
  if (kTls) co_return co_await write_batch_tls();
  co_return co_await write_batch_plain();
}

// WebSocket headers for the control frames; for TCP the iovecs of the whole batch, for TLS the
// control frames copied into batch_bytes_ (the runs are written where they lie).
template <class Stream>
void Connection<Stream>::gather_batch() {
  batch_heads_.resize(batch_.size() * kMaxServerHeader);
  batch_buffers_.clear();
  batch_bytes_.clear();
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    std::uint8_t* head = batch_heads_.data() + i * kMaxServerHeader;
    std::size_t head_len = ws::encode_server_header(batch_[i].opcode, batch_[i].bytes.size(), head);
    if constexpr (kTls) {
      batch_bytes_.insert(batch_bytes_.end(), head, head + head_len);
      batch_bytes_.insert(batch_bytes_.end(), batch_[i].bytes.begin(), batch_[i].bytes.end());
    } else {
      batch_buffers_.push_back(asio::buffer(head, head_len));
      batch_buffers_.push_back(asio::buffer(batch_[i].bytes));
    }
  }
  if constexpr (!kTls) {
    for (std::size_t i = 0; i < batch_taken_.spans; ++i)
      batch_buffers_.push_back(asio::buffer(batch_spans_[i].data, batch_spans_[i].size));
  }
}

// TLS (relay/tls_socket.hpp): the batch's records collect in the TLS write buffer and go out in
// one sendmsg per run, without an asynchronous operation while the socket takes them (the usual
// case); otherwise wait for what OpenSSL wants and retry with the same remaining bytes, and wait
// until the write buffer is on the socket. The watchdog times the write from its first wait.
// Nothing to write only flushes what the reader left buffered (write_loop).
// Segment 0 is batch_bytes_ (the control frames), segment i > 0 the run batch_spans_[i - 1].
template <class Stream>
asio::awaitable<bool> Connection<Stream>::write_batch_tls() {
  const std::size_t segments = 1 + batch_taken_.spans;
  auto segment = [this](std::size_t i) {
    return i == 0 ? SendQueue::Span{batch_bytes_.data(), batch_bytes_.size()} : batch_spans_[i - 1];
  };
  error_code ec;
  std::size_t seg = 0, done = 0;
  bool waited = false;
  bool ok = true;
  for (;;) {
    while (seg < segments && done == segment(seg).size) {
      ++seg;
      done = 0;
    }
    if (seg == segments && tls_write_pending() == 0) break;
    const TlsSocket::Result r = seg < segments
                                    ? tls_write(segment(seg).data + done, segment(seg).size - done)
                                    : tls_flush();
    if (r.status == TlsSocket::Status::Done) {
      done += r.bytes;
      continue;
    }
    if (r.status != TlsSocket::Status::WantRead && r.status != TlsSocket::Status::WantWrite) {
      if (!socket_closed_) log::debug("write to ", peer_text(), " failed: ", r.error.message());
      count_tls_end(r.error);
      ok = false;
      break;
    }
    if (!waited) {
      waited = true;
      begin_write();
    }
    co_await socket().async_wait(
        r.status == TlsSocket::Status::WantWrite ? tcp::socket::wait_write : tcp::socket::wait_read,
        ec_token(ec));
    if (ec) {
      ok = false;
      break;
    }
  }
  if (waited) end_write();
  co_return ok;
}

// Plain TCP: the whole batch in one sendmsg, without an asynchronous operation when the socket
// takes it all (the usual case). Only what is left goes through async_write, which waits for the
// socket correctly (issue 13: per-batch cost).
template <class Stream>
asio::awaitable<bool> Connection<Stream>::write_batch_plain() {
  std::size_t written = send_now(batch_buffers_);
  if (written == SIZE_MAX) co_return false;
  if (consume_buffers(batch_buffers_, written)) co_return true;
  error_code ec;
  begin_write();
  co_await asio::async_write(stream_, batch_buffers_, ec_token(ec));
  end_write();
  if (ec) {
    log::debug("write to ", peer_text(), " failed: ", ec.message());
    co_return false;
  }
  co_return true;
}

// §6.5: whether a Ping is due (then `ping_frame` holds it, recorded as outstanding) or the
// outstanding one timed out.
template <class Stream>
typename Connection<Stream>::Keepalive Connection<Stream>::keepalive_step(
    relay::Bytes& ping_frame) {
  const auto now = Clock::now();
  switch (ping_.check(now)) {
    case PingTracker::Due::Nothing:
      return Keepalive::Idle;
    case PingTracker::Due::TimedOut:
      state_.metrics.ping_timeouts.fetch_add(1, std::memory_order_relaxed);
      log::debug("client ", endpoint_id().to_hex(), ": ping timeout");
      return Keepalive::TimedOut;
    case PingTracker::Due::SendPing:
      break;
  }
  relay::Ping ping;
  randombytes_buf(ping.data.data(), ping.data.size());
  ping_.on_ping_sent(ping.data, now, 16s + std::chrono::seconds(random_u32(5)));
  auto encoded = relay::encode_server_frame(ping, version());
  if (!encoded) return Keepalive::TimedOut;
  ping_frame = std::move(*encoded);
  return Keepalive::SendPing;
}

// Gives the previous batch's runs back to the queue (written by now) and takes the next batch:
// control frames into batch_ first (the priority lane stays ahead of queued datagrams), then
// runs of datagram messages into batch_spans_. Resumes senders waiting for this queue once it is
// below its resume mark. Returns the number of datagrams taken; nullopt once the queue is closed.
// An empty queue marks the writer as waiting: a producer then wakes it (wake_writer).
template <class Stream>
std::optional<std::size_t> Connection<Stream>::take_batch() {
  DrainWaiters waiters;
  {
    std::lock_guard lock(queue_mutex_);
    if (closed_) return std::nullopt;
    queue_.release_batch();
    batch_taken_ = queue_.pop_batch(batch_, kMaxBatchFrames, batch_spans_.data(),
                                    batch_spans_.size(), kMaxBatchBytes);
    if (!drain_waiters_.empty() && queue_.below_resume_mark()) waiters.swap(drain_waiters_);
    if (batch_.empty() && batch_taken_.spans == 0) writer_waiting_ = true;
  }
  resume_waiters(waiters);
  return batch_taken_.frames;
}

// Counts the batch just written (or lost); true if it carried a WebSocket Close.
template <class Stream>
bool Connection<Stream>::count_written(std::size_t datagram_count, bool sent) {
  auto& m = state_.metrics;
  if (!sent) {
    m.send_packets_dropped.fetch_add(datagram_count, std::memory_order_relaxed);
    m.dropped_write_error.fetch_add(datagram_count, std::memory_order_relaxed);
    return false;
  }
  // Added once per batch: the counters are shared by every worker. The datagram lane counted
  // its frames and contents bytes as they were queued (DatagramLane::Taken).
  bool close_sent = false;
  std::uint64_t pongs = 0;
  for (const auto& item : batch_) {
    const auto& frame = item.bytes;
    if (item.opcode == kClose) close_sent = true;
    if (item.opcode == kBinary && !frame.empty() &&
        frame[0] == std::uint8_t(relay::FrameType::Pong))
      ++pongs;
  }
  if (batch_taken_.frames) {
    m.send_packets_sent.fetch_add(batch_taken_.frames, std::memory_order_relaxed);
    m.bytes_sent.fetch_add(batch_taken_.contents_bytes, std::memory_order_relaxed);
  }
  if (pongs) m.sent_pong.fetch_add(pongs, std::memory_order_relaxed);
  return close_sent;
}

// Idle: batch storage is only needed while busy.
template <class Stream>
void Connection<Stream>::release_batch_storage() {
  {
    std::lock_guard lock(queue_mutex_);
    queue_.release_storage();
  }
  batch_ = {};
  batch_heads_ = {};
  batch_buffers_ = {};
  batch_bytes_ = {};
  if constexpr (kTls) stream_.release_write_buffer();
}

// The writer: keepalive Pings, then queued frames in batches; sleeps on wake_ until a producer
// or the keepalive wakes it.
template <class Stream>
asio::awaitable<void> Connection<Stream>::write_loop(std::shared_ptr<Connection> self) {
  relay::Bytes ping_frame;
  for (;;) {
    if (socket_closed_) break;
    const Keepalive keepalive = keepalive_step(ping_frame);
    if (keepalive == Keepalive::TimedOut) break;
    if (keepalive == Keepalive::SendPing) {
      bool ping_sent = co_await write_frame(ping_frame, true);
      if (!ping_sent) break;
      continue;
    }
    const std::optional<std::size_t> datagram_count = take_batch();
    if (!datagram_count) break;
    if (!batch_.empty() || batch_taken_.spans != 0) {
      bool sent = co_await write_batch();
      bool close_sent = count_written(*datagram_count, sent);
      batch_.clear();
      if (!sent || close_sent) break;
      // One batch per turn (issue 13): the writer lets the other handlers of its thread run
      // before it takes the next batch, so a flood cannot hold the thread (the reader has
      // kReadTurnBytes), and a busy receiver gets one larger write per pass rather than several
      // small ones (each write wakes the receiving process: ~15 % of the relay's CPU under flood).
      // It also lets senders enqueue more before the writer would sleep on the timer (timer and
      // wake-up cost syscalls).
      co_await asio::post(stream_.get_executor(), asio::use_awaitable);
      continue;
    }
    // TLS bytes the reader produced (a KeyUpdate answer) that the socket did not take then:
    // sent before sleeping (the reader wakes the writer for them, session.cpp fill()).
    if (tls_write_pending() != 0) {
      batch_bytes_.clear();
      if (!co_await write_batch()) break;
      // take_batch() set writer_waiting_: a producer's wake-up may have been spent meanwhile.
      {
        std::lock_guard lock(queue_mutex_);
        writer_waiting_ = false;
      }
      continue;
    }
    release_batch_storage();
    wake_.expires_at(ping_.wake_at());
    error_code ec;
    co_await wake_.async_wait(ec_token(ec));
    std::lock_guard lock(queue_mutex_);
    writer_waiting_ = false;
  }
  close_socket();
  (void)self;
}

#define IROH_INSTANTIATE_WRITER(S)                                                                \
  template RelayClientHandle::Enqueue Connection<S>::try_enqueue_datagram(const ServerDatagram&,  \
                                                                          RelayClientHandle*);    \
  template RelayClientHandle::Enqueue Connection<S>::try_enqueue_control(relay::Bytes&&);         \
  template std::size_t Connection<S>::queued_datagrams();                                         \
  template std::size_t Connection<S>::queued_bytes();                                             \
  template void Connection<S>::resume_reading();                                                  \
  template void Connection<S>::slow_down(RelayClientHandle::SlowDown);                            \
  template RelayClientHandle::Enqueue Connection<S>::enqueue_control(QueuedFrame&&, std::size_t); \
  template void Connection<S>::wake_writer();                                                     \
  template bool Connection<S>::add_drain_waiter(RelayClientHandle*);                              \
  template void Connection<S>::resume_waiters(Connection<S>::DrainWaiters&);                      \
  template void Connection<S>::begin_write();                                                     \
  template void Connection<S>::end_write();                                                       \
  template int Connection<S>::send_queue_bytes();                                                 \
  template void Connection<S>::on_write_watchdog(error_code);                                     \
  template asio::awaitable<bool> Connection<S>::write_batch();                                    \
  template std::size_t Connection<S>::send_now(const std::vector<asio::const_buffer>&);           \
  template bool Connection<S>::consume_buffers(std::vector<asio::const_buffer>&, std::size_t);    \
  template Connection<S>::Keepalive Connection<S>::keepalive_step(relay::Bytes&);                 \
  template std::optional<std::size_t> Connection<S>::take_batch();                                \
  template bool Connection<S>::count_written(std::size_t, bool);                                  \
  template void Connection<S>::release_batch_storage();                                           \
  template asio::awaitable<void> Connection<S>::write_loop(std::shared_ptr<Connection<S>>);
IROH_RELAY_FOR_EACH_STREAM(IROH_INSTANTIATE_WRITER)

}  // namespace iroh::server
