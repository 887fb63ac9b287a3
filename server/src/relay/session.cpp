// The session part of Connection: its lifecycle, and the relay phase's reader (spec relay.md
// §5, §6): WebSocket frames parsed from a large buffer (many per read), the rx rate limit (§6.8),
// frame handling and forwarding through the registry, a per-turn budget and TCP back-pressure
// (issue 13).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <limits>

#include "core/log.hpp"
#include "relay/connection_impl.hpp"
#include "relay/relay_service.hpp"

namespace iroh::server {

template <class Stream>
Connection<Stream>::~Connection() {
  state_.connections.remove(this);
  if (counted_ip_) state_.remove_ip(*counted_ip_);
  release_pre_auth();
  state_.metrics.open_connections.fetch_sub(1, std::memory_order_relaxed);
  if (role_ == ListenerRole::RelayService) {
    state_.metrics.http_connections_closed.fetch_add(1, std::memory_order_relaxed);
    if (errored_) state_.metrics.http_connections_errored.fetch_add(1, std::memory_order_relaxed);
  }
}

template <class Stream>
void Connection<Stream>::on_open() {
  state_.connections.add(this);
  state_.metrics.open_connections.fetch_add(1, std::memory_order_relaxed);
  if (role_ == ListenerRole::RelayService) {
    state_.metrics.http_connections.fetch_add(1, std::memory_order_relaxed);
  }
}

template <class Stream>
std::string Connection<Stream>::peer_text() const {
  return format_endpoint(peer_);
}

// Keepalive interval of §6.5: 15 s + a whole number of seconds in [1, 5].
template <class Stream>
Clock::duration Connection<Stream>::first_ping_interval() {
  return 15s + std::chrono::seconds(1 + random_u32(5));
}

template <class Stream>
void Connection<Stream>::close() {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(stream_.get_executor(), [self] { self->close_socket(); });
  }
}

template <class Stream>
void Connection<Stream>::drain(const relay::Restarting& restarting) {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(stream_.get_executor(), [self, restarting] { self->drain_on_strand(restarting); });
  }
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::run(std::shared_ptr<Connection> self) {
  try {
    co_await run_inner();
  } catch (const std::exception& e) {
    log::debug("connection from ", peer_text(), " failed: ", e.what());
    errored_ = true;
  }
  close_socket();
  (void)self;
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::run_inner() {
  bool established = co_await establish();
  if (!established) co_return;
  ping_.on_receive(Clock::now());
  asio::co_spawn(stream_.get_executor(), write_loop(this->shared_from_this()), asio::detached);
  co_await read_loop();
  close_socket();
  state_.registry.unregister_client(this, std::move(sent_to_));
  log::debug("client ", endpoint_id().to_hex(), " disconnected");
}

// The relay phase's reader.
template <class Stream>
asio::awaitable<void> Connection<Stream>::read_loop() {
  max_message_ = relay::kMaxFrameSize;
  buffer_.max_size(std::numeric_limits<std::size_t>::max());
  std::size_t turn_frames = 0, turn_bytes = 0;
  for (;;) {
    // A whole message already in the buffer is taken without a coroutine call (issue 13); only
    // otherwise does read_message() wait, for the socket or for the rx limit.
    const BufferedRead next = next_buffered_binary_message();
    bool got = next.step == ReadStep::Message;
    // Not `if (!co_await ...) co_return;`: GCC 12 miscompiles that here (SIGILL on entry).
    if (!got) got = co_await read_message(next);
    if (!got || !handle_frame(message_bytes())) break;
    turn_bytes += message_.size();
    if (throttled_ || budget_backoff_) {
      co_await throttle_pause();
      if (socket_closed_) break;
      turn_frames = turn_bytes = 0;
    } else if (++turn_frames >= kReadTurnFrames || turn_bytes >= kReadTurnBytes) {
      turn_frames = turn_bytes = 0;
      co_await asio::post(stream_.get_executor(), asio::use_awaitable);
    }
  }
}

// TCP back-pressure instead of reading and dropping at full speed (issue 13): stops reading
// until a destination that was full has drained (resume_reading) or kThrottleMaxPause passed;
// after limits.total_queue_bytes was hit, for kBudgetBackoff.
template <class Stream>
asio::awaitable<void> Connection<Stream>::throttle_pause() {
  state_.metrics.senders_throttled.fetch_add(1, std::memory_order_relaxed);
  const bool wait_for_drain = throttled_;
  throttled_ = budget_backoff_ = false;
  if (wait_for_drain && resume_signal_) {
    resume_signal_ = false;
    co_return;
  }
  if (!throttle_timer_)
    throttle_timer_ = std::make_unique<asio::steady_timer>(stream_.get_executor());
  throttle_timer_->expires_after(wait_for_drain ? Clock::duration(kThrottleMaxPause)
                                                : Clock::duration(kBudgetBackoff));
  error_code ec;
  co_await throttle_timer_->async_wait(ec_token(ec));
  resume_signal_ = false;
}

// False if the client must be closed.
template <class Stream>
bool Connection<Stream>::handle_frame(relay::ByteSpan message) {
  // The time of the socket read that brought the frame (fill()): one clock read per read, not
  // per frame; the keepalive works in seconds.
  ping_.on_receive(last_read_at_);
  // Keys are checked in forward(), only for destinations that are not registered.
  auto decoded = relay::decode_client_frame(message, relay::KeyCheck::Skip);
  if (auto* err = std::get_if<relay::DecodeError>(&decoded)) {
    state_.metrics.malformed_frames.fetch_add(1, std::memory_order_relaxed);
    log::debug("client ", endpoint_id().to_hex(), ": bad frame (", relay::to_string(*err),
               "), closing");
    return false;
  }
  auto& frame = std::get<relay::ClientFrame>(decoded);
  if (auto* dg = std::get_if<relay::Datagram>(&frame)) {
    return forward(*dg);
  } else if (auto* ping = std::get_if<relay::Ping>(&frame)) {
    state_.metrics.got_ping.fetch_add(1, std::memory_order_relaxed);
    if (auto pong = relay::encode_server_frame(relay::Pong{ping->data}, version())) {
      if (try_enqueue_control(std::move(*pong)) != Enqueue::Ok) {
        state_.metrics.control_dropped.fetch_add(1, std::memory_order_relaxed);
      }
    }
  } else if (auto* pong = std::get_if<relay::Pong>(&frame)) {
    ping_.on_pong(pong->data, Clock::now());
  }
  return true;
}

// False if the client must be closed (invalid destination key, §5.5).
template <class Stream>
bool Connection<Stream>::forward(const relay::Datagram& dg) {
  auto& m = state_.metrics;
  m.send_packets_recv.fetch_add(1, std::memory_order_relaxed);
  m.bytes_recv.fetch_add(dg.contents.size(), std::memory_order_relaxed);
  // Encoded straight into the destination's send queue (issue 13), from the read buffer.
  const ServerDatagram frame = ServerDatagram::from(endpoint_id(), dg);
  if (!frame.valid()) {
    m.dropped_unencodable.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  const auto outcome = state_.registry.forward(dg.peer, frame, this, &route_);
  switch (outcome) {
    case ClientRegistry::Forward::Queued:
    case ClientRegistry::Forward::HandedOff:
      note_sent_to(dg.peer);
      break;
    case ClientRegistry::Forward::UnknownDestination:
      // Issue 16 (docs/mesh.md §6.1): not active here; maybe at a mesh peer.
      if (state_.mesh) {
        switch (state_.mesh->forward(dg.peer, frame.to_bytes())) {
          case Mesh::Route::Forwarded:
            note_sent_to(dg.peer);
            return true;
          case Mesh::Route::MeshDown:
            m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
            m.dropped_mesh_down.fetch_add(1, std::memory_order_relaxed);
            return true;
          case Mesh::Route::LinkFull:
            m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
            m.dropped_mesh_link_full.fetch_add(1, std::memory_order_relaxed);
            return true;
          case Mesh::Route::Unknown:
            break;
        }
      }
      // A registered id authenticated with its key, so it is a valid point; only unknown
      // destinations need the (cached) point check. Like the reference, an invalid key closes
      // the sender rather than being dropped silently.
      if (!state_.key_cache.is_valid(dg.peer)) {
        m.malformed_frames.fetch_add(1, std::memory_order_relaxed);
        log::debug("client ", endpoint_id().to_hex(), ": bad frame (invalid key), closing");
        return false;
      }
      m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
      m.dropped_unknown_destination.fetch_add(1, std::memory_order_relaxed);
      break;
    case ClientRegistry::Forward::QueuedThrottle:
      note_sent_to(dg.peer);
      throttle_on_destination();
      break;
    case ClientRegistry::Forward::QueueFullThrottle:
      throttle_on_destination();
      count_queue_drop(m, outcome);
      break;
    case ClientRegistry::Forward::TotalQueueFull:
      budget_backoff_ = true;
      count_queue_drop(m, outcome);
      break;
    case ClientRegistry::Forward::QueueFull:
    case ClientRegistry::Forward::RecipientClosed:
      count_queue_drop(m, outcome);
      break;
  }
  return true;
}

// A destination recorded this client as waiting for it to drain: the reader stops after this
// frame (read_loop, throttle_pause) until the destination resumes it.
template <class Stream>
void Connection<Stream>::throttle_on_destination() {
  if (throttled_) return;
  throttled_ = true;
  // A resume from an earlier wait must not end this one.
  resume_signal_ = false;
}

// §6.4: the ids this client sent to hear EndpointGone when it leaves. A burst to one peer
// inserts once rather than hashing the id per datagram.
template <class Stream>
void Connection<Stream>::note_sent_to(const relay::EndpointId& dst) {
  if (last_sent_to_ == dst) return;
  sent_to_.insert(dst);
  last_sent_to_ = dst;
}

// §6.8: bytes as read from the socket, approximated as payload + WebSocket header. Returns
// the time until which reading must pause, if any.
template <class Stream>
std::optional<Clock::time_point> Connection<Stream>::account_rx_now(std::size_t payload) {
  if (!rx_limit_) return std::nullopt;
  std::size_t wire = payload + 2 + 4 + (payload > 65535 ? 8 : payload > 125 ? 2 : 0);
  auto now = Clock::now();
  auto resume = rx_limit_->consume(wire, now);
  if (!resume) return std::nullopt;
  state_.metrics.bytes_rx_ratelimited_total.fetch_add(wire, std::memory_order_relaxed);
  if (!rate_limited_once_) {
    rate_limited_once_ = true;
    state_.metrics.conns_rx_ratelimited_total.fetch_add(1, std::memory_order_relaxed);
    if (registered_ && version() == relay::ProtocolVersion::V2) {
      if (auto f = relay::encode_server_frame(
              relay::Status{static_cast<std::uint8_t>(relay::StatusCode::RateLimited)},
              version())) {
        try_enqueue_control(std::move(*f));
      }
    }
  }
  if (*resume <= now) return std::nullopt;
  return resume;
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::pause_until(Clock::time_point resume) {
  asio::steady_timer pause(stream_.get_executor());
  pause.expires_at(resume);
  error_code ec;
  co_await pause.async_wait(ec_token(ec));
}

template <class Stream>
void Connection<Stream>::close_socket() {
  // The route cache holds its destination: two clients sending to each other would keep each
  // other alive.
  route_.reset();
  if (socket_closed_) return;
  socket_closed_ = true;
  std::size_t dropped = 0;
  decltype(drain_waiters_) waiters;
  {
    std::lock_guard lock(queue_mutex_);
    closed_ = true;
    dropped = queue_.clear();
    waiters.swap(drain_waiters_);
  }
  resume_waiters(waiters);
  if (dropped) state_.metrics.dropped_write_error.fetch_add(dropped, std::memory_order_relaxed);
  error_code ec;
  socket().shutdown(tcp::socket::shutdown_both, ec);
  socket().close(ec);
  wake_.cancel();
  watchdog_.cancel();
  if (throttle_timer_) throttle_timer_->cancel();
}

template <class Stream>
void Connection<Stream>::drain_on_strand(const relay::Restarting& restarting) {
  if (!registered_) {
    close_socket();
    return;
  }
  log::debug("client ", endpoint_id().to_hex(), ": draining (Restarting)");
  auto frame = relay::encode_server_frame(restarting, version());
  bool queued = frame && try_enqueue_control(std::move(*frame)) == Enqueue::Ok;
  // 1001 "going away"; the writer closes the socket once the Close frame is written.
  queued = queued && enqueue_control(QueuedFrame{relay::Bytes{0x03, 0xE9}, kClose},
                                     kControlQueueCapacity + 1) == Enqueue::Ok;
  if (!queued) close_socket();
}

// One binary message into message_ (text messages skipped), going on from `next`, what
// next_buffered_binary_message() found: waits out the rx limit's pause, reads the socket while
// the buffer holds no whole message. False on error / close.
template <class Stream>
asio::awaitable<bool> Connection<Stream>::read_message(BufferedRead next) {
  for (;;) {
    if (next.step == ReadStep::Message) co_return true;
    if (next.step == ReadStep::End) co_return false;
    bool more = true;
    if (next.step == ReadStep::Pause) {
      co_await pause_until(next.resume);
      if (socket_closed_) co_return false;
      if (message_binary_) co_return true;
    } else {
      // A plain statement, not `if (!co_await ...)` (GCC 12, see read_loop).
      more = co_await fill(next.need);
    }
    if (!more) co_return false;
    next = next_buffered_binary_message();
  }
}

// Reads until buffer_ holds `need` bytes. False on EOF / error.
template <class Stream>
asio::awaitable<bool> Connection<Stream>::fill(std::size_t need) {
  while (buffer_.size() < need) {
    error_code ec;
    // A plain `if` (both branches compile for either stream): keeps GCC 12's coroutine lowering
    // away from co_await inside discarded `if constexpr` branches.
    if (!kTls) {
      std::size_t want =
          std::max(need - buffer_.size(), registered_ ? kBusyReadBytes : kHandshakeReadBytes);
      std::size_t n = socket().read_some(buffer_.prepare(want), ec);
      if (!ec) {
        buffer_.commit(n);
        continue;
      }
      if (ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
      // Nothing to read: release the busy-time buffer, then wait with a small read. Not
      // async_wait: with edge-triggered epoll, data arriving between the failed read and the
      // wait's registration would not complete the wait; a queued read retries itself.
      if (buffer_.capacity() > buffer_.size() + kKeepReadBufferBytes) buffer_.shrink_to_fit();
      route_.reset();  // waiting: do not pin a destination that may leave meanwhile
      // The pending read uses a few bytes inside the connection, so an idle client holds no
      // read buffer at all.
      n = co_await socket().async_read_some(asio::buffer(wait_bytes_), ec_token(ec));
      if (ec) co_return false;
      buffer_.commit(asio::buffer_copy(buffer_.prepare(n), asio::buffer(wait_bytes_, n)));
    } else {
      // TLS on the socket itself (relay/tls_socket.hpp): records straight from the socket into
      // the large buffer, as many as it holds, then wait for the socket; like plain TCP, an idle
      // client holds no read buffer while it waits (SSL_MODE_RELEASE_BUFFERS frees TLS's own).
      std::size_t want =
          std::max(need - buffer_.size(), registered_ ? kBusyReadBytes : kHandshakeReadBytes);
      const TlsSocket::Result r = tls_read(buffer_.prepare(want).data(), want);
      // Reading produced TLS bytes the socket did not take (TlsSocket::read): the writer sends
      // them, also when it is asleep.
      if (tls_write_pending() != 0) wake_.cancel();
      if (r.status == TlsSocket::Status::Done) {
        buffer_.commit(r.bytes);
        continue;
      }
      if (r.status != TlsSocket::Status::WantRead && r.status != TlsSocket::Status::WantWrite) {
        count_tls_end(r.error);
        co_return false;
      }
      if (buffer_.capacity() > buffer_.size() + kKeepReadBufferBytes) buffer_.shrink_to_fit();
      route_.reset();  // waiting: do not pin a destination that may leave meanwhile
      // async_wait re-arms the descriptor in epoll (EPOLL_CTL_MOD), which reports readiness
      // that arrived before the wait: no edge is lost between the failed read and the wait.
      co_await socket().async_wait(r.status == TlsSocket::Status::WantRead
                                       ? tcp::socket::wait_read
                                       : tcp::socket::wait_write,
                                   ec_token(ec));
      if (ec) co_return false;
    }
  }
  last_read_at_ = Clock::now();  // when the frames it brought arrived (handle_frame)
  co_return true;
}

template <class Stream>
TlsSocket::Result Connection<Stream>::tls_read(void* data, std::size_t size) {
  if constexpr (kTls) {
    return stream_.read(data, size);
  } else {
    (void)data;
    (void)size;
    return {TlsSocket::Status::Failed, 0, asio::error::operation_not_supported};
  }
}

template <class Stream>
TlsSocket::Result Connection<Stream>::tls_write(const void* data, std::size_t size) {
  if constexpr (kTls) {
    return stream_.write(data, size);
  } else {
    (void)data;
    (void)size;
    return {TlsSocket::Status::Failed, 0, asio::error::operation_not_supported};
  }
}

template <class Stream>
TlsSocket::Result Connection<Stream>::tls_flush() {
  if constexpr (kTls) {
    return stream_.flush();
  } else {
    return {TlsSocket::Status::Failed, 0, asio::error::operation_not_supported};
  }
}

template <class Stream>
std::size_t Connection<Stream>::tls_write_pending() const {
  if constexpr (kTls) {
    return stream_.write_pending();
  } else {
    return 0;
  }
}

// How a TLS connection's record stream ended, counted (issue 13): close_notify (eof) is a clean
// end; a TCP close without it (at a record boundary or inside a record) is relayserver_tls_
// unexpected_eof_total; a record that does not decrypt (garbage, a bad MAC) or another TLS
// error is relayserver_tls_errors_total and marks the connection as errored. Socket errors and
// ends the relay caused itself (it closed the socket, or a wait was cancelled) are not TLS's.
template <class Stream>
void Connection<Stream>::count_tls_end(const error_code& ec) {
  if (!kTls || socket_closed_ || !ec || ec == asio::error::eof ||
      ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
    return;
  if (ec == ssl::error::stream_truncated) {
    state_.metrics.tls_unexpected_eof.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (ec.category() != asio::error::get_ssl_category()) return;
  log::debug("TLS connection from ", peer_text(), " failed: ", ec.message());
  state_.metrics.tls_errors.fetch_add(1, std::memory_order_relaxed);
  errored_ = true;
}

template <class Stream>
bool Connection<Stream>::ws_protocol_error(const char* what) {
  log::debug("connection from ", peer_text(), ": websocket protocol error: ", what);
  errored_ = true;
  return false;
}

// The next complete data message (binary or text, message_binary_) from what buffer_ holds, into
// message_, which stays valid until the next call; or NeedMore with the bytes buffer_ must hold
// to get further. No I/O (issue 13: a busy reader finds dozens of messages per socket read, and a
// coroutine call per message cost more than parsing it). Answers WebSocket pings; a Close is
// echoed and the writer closes the connection after sending it. End on a protocol violation.
template <class Stream>
typename Connection<Stream>::ReadStep Connection<Stream>::next_buffered_message(std::size_t& need) {
  for (;;) {
    buffer_.consume(consumed_);
    consumed_ = 0;
    if (fragments_complete_) {
      fragments_ = {};
      fragments_complete_ = false;
    }
    ws::ClientHeader h;
    need = 2;
    const char* error = nullptr;
    const ws::Parse parsed = ws::parse_client_header(buffer_data(), buffer_.size(), h, need, error);
    if (parsed == ws::Parse::NeedMore) return ReadStep::NeedMore;
    if (parsed == ws::Parse::Error) {
      ws_protocol_error(error);
      return ReadStep::End;
    }
    const std::uint8_t opcode = h.opcode;
    const std::uint64_t len = h.payload_len;
    const bool control = opcode & 0x8;
    if (!control) {
      if ((opcode == kContinuation) != in_fragments_) {
        ws_protocol_error("bad continuation");
        return ReadStep::End;
      }
      // kMaxHandshakeMessage until the client is registered (issue 19), then a relay frame.
      if (len > max_message_ - std::min(max_message_, fragments_.size())) {
        ws_protocol_error("message too big");
        return ReadStep::End;
      }
    }
    const std::size_t head = h.header_len;
    const std::size_t total = head + std::size_t(len);
    if (buffer_.size() < total) {
      need = total;
      return ReadStep::NeedMore;
    }
    std::uint8_t* frame = buffer_data();
    std::uint8_t* payload = frame + head;
    ws::unmask(payload, std::size_t(len), frame + head - 4);
    consumed_ = total;
    if (control) {
      if (!answer_control_frame(opcode, payload, std::size_t(len))) return ReadStep::End;
      continue;
    }
    if (opcode != kContinuation) message_binary_ = opcode == kBinary;
    if (h.fin && !in_fragments_) {
      message_ = {payload, std::size_t(len)};
      return ReadStep::Message;
    }
    fragments_.insert(fragments_.end(), payload, payload + len);
    in_fragments_ = !h.fin;
    if (h.fin) {
      fragments_complete_ = true;
      message_ = {fragments_.data(), fragments_.size()};
      return ReadStep::Message;
    }
  }
}

// A WebSocket Ping is answered with a Pong and a Close echoed (the writer closes the connection
// after sending it); Pongs are ignored. False if the connection must end now.
template <class Stream>
bool Connection<Stream>::answer_control_frame(std::uint8_t opcode, const std::uint8_t* payload,
                                              std::size_t len) {
  if (opcode == kPong) return true;
  // A Close before the handshake completed ends the connection now (issue 19), rather
  // than at the handshake deadline: nobody sends the queued reply before registration.
  if (opcode == kClose && !registered_) return false;
  relay::Bytes reply(payload, payload + std::min<std::size_t>(len, opcode == kClose ? 2 : 125));
  auto queued = enqueue_control(QueuedFrame{std::move(reply), opcode == kPing ? kPong : kClose},
                                kControlQueueCapacity);
  if (opcode == kClose && queued != Enqueue::Ok) return false;
  if (queued != Enqueue::Ok) state_.metrics.control_dropped.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// The next binary message from what buffer_ holds (text messages are skipped), its bytes counted
// against the rx rate limit (§6.8): Pause with `resume` when the limit says to wait before
// handling it (then it is binary only if message_binary_).
template <class Stream>
typename Connection<Stream>::BufferedRead Connection<Stream>::next_buffered_binary_message() {
  BufferedRead r;
  for (;;) {
    r.step = next_buffered_message(r.need);
    if (r.step != ReadStep::Message) return r;
    if (auto until = account_rx_now(message_.size())) {
      r.step = ReadStep::Pause;
      r.resume = *until;
      return r;
    }
    if (message_binary_) return r;
  }
}

#define IROH_INSTANTIATE_SESSION(S)                                                     \
  template Connection<S>::~Connection();                                                \
  template void Connection<S>::on_open();                                               \
  template std::string Connection<S>::peer_text() const;                                \
  template Clock::duration Connection<S>::first_ping_interval();                        \
  template void Connection<S>::close();                                                 \
  template void Connection<S>::drain(const relay::Restarting&);                         \
  template asio::awaitable<void> Connection<S>::run(std::shared_ptr<Connection<S>>);    \
  template asio::awaitable<void> Connection<S>::run_inner();                            \
  template asio::awaitable<bool> Connection<S>::read_message(BufferedRead);             \
  template asio::awaitable<bool> Connection<S>::fill(std::size_t);                      \
  template TlsSocket::Result Connection<S>::tls_read(void*, std::size_t);               \
  template TlsSocket::Result Connection<S>::tls_write(const void*, std::size_t);        \
  template TlsSocket::Result Connection<S>::tls_flush();                                \
  template std::size_t Connection<S>::tls_write_pending() const;                        \
  template void Connection<S>::count_tls_end(const error_code&);                        \
  template bool Connection<S>::ws_protocol_error(const char*);                          \
  template Connection<S>::ReadStep Connection<S>::next_buffered_message(std::size_t&);  \
  template bool Connection<S>::answer_control_frame(std::uint8_t, const std::uint8_t*,  \
                                                    std::size_t);                       \
  template Connection<S>::BufferedRead Connection<S>::next_buffered_binary_message();   \
  template std::optional<Clock::time_point> Connection<S>::account_rx_now(std::size_t); \
  template asio::awaitable<void> Connection<S>::pause_until(Clock::time_point);         \
  template asio::awaitable<void> Connection<S>::read_loop();                            \
  template asio::awaitable<void> Connection<S>::throttle_pause();                       \
  template bool Connection<S>::handle_frame(relay::ByteSpan);                           \
  template bool Connection<S>::forward(const relay::Datagram&);                         \
  template void Connection<S>::throttle_on_destination();                               \
  template void Connection<S>::note_sent_to(const relay::EndpointId&);                  \
  template void Connection<S>::close_socket();                                          \
  template void Connection<S>::drain_on_strand(const relay::Restarting&);
IROH_RELAY_FOR_EACH_STREAM(IROH_INSTANTIATE_SESSION)

}  // namespace iroh::server
