// One TCP connection on a relay-service or captive-portal listener (spec relay.md §2-§6): HTTP/1.1
// requests until an upgrade on /relay, then the relay handshake, then a registered relay client.
// Its parts live in their own files:
//   relay/handshake.cpp  TLS, HTTP requests, the WebSocket upgrade, ServerChallenge/ClientAuth or
//                        the auth header, access control, registration (§2-§4);
//   relay/session.cpp    the relay phase's reader: WebSocket frames from a large buffer, the rx
//                        rate limit (§6.8), frame handling and forwarding, back-pressure (issue
//                        13);
//   relay/writer.cpp     the send queue's producers (any thread) and the writer that drains it
//                        with one gather write per batch, the write watchdog and keepalive Pings.
//   relay/tls_socket.*   TLS driven by OpenSSL on the socket itself (issue 13), the stream of
//                        TLS connections.
// Every member is confined to the connection's executor except the send queue and what guards it
// (queue_mutex_), which other connections' readers and the registry use.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/rate_limit.hpp"
#include "http/serve_loop.hpp"
#include "relay/ping_tracker.hpp"
#include "relay/relay_state.hpp"
#include "relay/send_queue.hpp"
#include "relay/tls_socket.hpp"
#include "relay/ws_framing.hpp"

namespace iroh::server {

namespace relay_conn {

using namespace std::chrono_literals;

constexpr std::size_t kMaxHttpHeader = 16 * 1024;
constexpr std::size_t kMaxHttpBody = 64 * 1024;
// Issue 19: before authentication the read buffer holds at most an HTTP header (plus one read of
// slack) and WebSocket messages of at most kMaxHandshakeMessage bytes (ClientAuth is 98 bytes).
constexpr std::size_t kPreAuthBufferMax = kMaxHttpHeader + 4 * 1024;
constexpr std::size_t kMaxHandshakeMessage = 1024;
constexpr std::size_t kHandshakeReadBytes = 2 * 1024;
static_assert(kPreAuthBufferMax <= config::Limits::kPreAuthReserveBytes);
// Pongs, Status and EndpointGone share this lane; a client that floods Pings without reading
// loses Pongs rather than growing memory.
constexpr std::size_t kControlQueueCapacity = 512;
// Read buffer kept while waiting for data; anything above is released so idle clients stay small.
constexpr std::size_t kKeepReadBufferBytes = 8 * 1024;
// Reads while data keeps coming: one syscall yields dozens of 1200-byte datagram frames.
constexpr std::size_t kBusyReadBytes = 64 * 1024;
// One socket write carries up to this many control frames (2 iovecs each) and up to
// kMaxBatchSpans runs of datagram messages from the send queue's chunks (SendQueue::pop_batch),
// well under IOV_MAX (the plain-TCP writer calls sendmsg itself because Asio passes at most 64
// iovecs per call), and about kMaxBatchBytes (at least one chunk's run, DatagramLane::take).
// The bytes bound what a batch in flight holds outside the queue's byte caps (pop_batch gives
// its bytes back), so a slow reader pins at most about this much beyond them.
constexpr std::size_t kMaxBatchFrames = 128;
constexpr std::size_t kMaxBatchSpans = 4;
constexpr std::size_t kMaxBatchBytes = 64 * 1024;
// Per-turn budget of the reader (issue 13): after this many frames or bytes handled without
// waiting for the socket, it lets the other handlers of its thread run (writers above all), so
// one flooding connection cannot monopolise a thread.
// 64 KiB is one busy read: with 256 KiB, and writers that wrote batch after batch (now one per
// turn, writer.cpp), a flood over TLS held a worker ~0.5 ms per turn and a bystander's datagrams
// waited 8-20 ms (p99) behind it.
constexpr std::size_t kReadTurnFrames = 64;
constexpr std::size_t kReadTurnBytes = 64 * 1024;
// Back-pressure (issue 13): a sender whose datagram filled a destination queue past its throttle
// mark (SendQueue::above_throttle_mark) stops being read until that queue is half empty again,
// or at most this long; not when the destination is stalled (limits.stalled_write_after).
constexpr auto kThrottleMaxPause = 20ms;
// ... and when limits.total_queue_bytes is reached, for this long.
constexpr auto kBudgetBackoff = 5ms;
// Senders recorded as waiting for one destination to drain; beyond it, further ones only drop.
constexpr std::size_t kMaxDrainWaiters = 256;

using PlainStream = boost::asio::ip::tcp::socket;
// TLS on the socket itself rather than Asio's ssl::stream (relay/tls_socket.hpp says why).
using TlsStream = TlsSocket;

}  // namespace relay_conn

template <class Stream>
class Connection final : public RelayClientHandle,
                         public TrackedConnection,
                         public std::enable_shared_from_this<Connection<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsSocket>;
  using Clock = std::chrono::steady_clock;
  using error_code = boost::system::error_code;
  template <class T>
  using awaitable = boost::asio::awaitable<T>;
  using DrainWaiters = std::vector<std::pair<RelayClientHandle*, std::weak_ptr<RelayClientHandle>>>;

 public:
  // `tls_context` (TLS only) is the context `args` refer to; kept alive with the connection so a
  // certificate reload can swap the listener's context while this connection runs.
  // `counted_ip`: the address counted against limits.max_connections_per_ip, if any.
  // `worker`: the relay worker whose loop runs the connection (`args` are on its executor).
  template <class... Args>
  Connection(std::shared_ptr<RelayServiceState> state, ListenerRole role,
             std::shared_ptr<const RelaySettings> settings,
             std::shared_ptr<boost::asio::ssl::context> tls_context,
             std::optional<boost::asio::ip::address> counted_ip,
             std::optional<boost::asio::ip::address> pre_auth_ip, unsigned worker, Args&&... args)
      : RelayClientHandle(relay::EndpointId{}, relay::ProtocolVersion::V2, worker),
        state_owner_(std::move(state)),
        state_(*state_owner_),
        settings_(std::move(settings)),
        tls_context_(std::move(tls_context)),
        counted_ip_(std::move(counted_ip)),
        pre_auth_ip_(std::move(pre_auth_ip)),
        stream_(std::forward<Args>(args)...),
        watchdog_(stream_.get_executor()),
        wake_(stream_.get_executor()),
        role_(role),
        ping_(first_ping_interval()),
        queue_(SendQueue::Caps{settings_->limits.client_queue_capacity,
                               settings_->limits.client_queue_bytes},
               state_.queue_budget) {
    on_open();
  }
  ~Connection() override;

  awaitable<void> run(std::shared_ptr<Connection> self);

  // RelayClientHandle (writer.cpp): any thread.
  Enqueue try_enqueue_datagram(const ServerDatagram& frame, RelayClientHandle* sender) override;
  Enqueue try_enqueue_control(relay::Bytes&& frame) override;
  std::size_t queued_datagrams() override;
  std::size_t queued_bytes() override;
  void resume_reading() override;
  void slow_down(SlowDown why) override;
  std::weak_ptr<RelayClientHandle> weak_handle() override {
    return std::static_pointer_cast<RelayClientHandle>(this->shared_from_this());
  }

  boost::asio::any_io_executor executor() { return stream_.get_executor(); }

  // TrackedConnection: any thread; only post.
  void close() override;
  void drain(const relay::Restarting& restarting) override;
  std::shared_ptr<TrackedConnection> lock_tracked() override {
    return this->weak_from_this().lock();
  }

 private:
  auto& socket() { return boost::beast::get_lowest_layer(stream_); }
  std::string peer_text() const;
  static Clock::duration first_ping_interval();
  void on_open();

  // handshake.cpp
  awaitable<bool> establish();
  awaitable<std::optional<HttpRequest>> serve_http();
  void finish_response(HttpResponse& res);
  const HttpRouter& routes() const;
  HttpIntercept intercept_upgrade(const HttpRequest& req);
  awaitable<bool> accept_websocket(HttpRequest& req, relay::ProtocolVersion version);
  awaitable<std::optional<relay::EndpointId>> authenticate(const HttpRequest& req);
  awaitable<bool> write_frame(const relay::Bytes& frame, bool timed);
  void arm_establish_deadline();
  void release_pre_auth();
  // mesh_accept.cpp (issue 16): an incoming mesh link on GET /relay/mesh.
  awaitable<void> serve_mesh_link(HttpRequest& req);

  // session.cpp
  awaitable<void> run_inner();
  // The reader's next binary message: next_buffered_binary_message() without I/O, read_message()
  // to go on from what it found (wait for the socket or the rx limit).
  enum class ReadStep { Message, NeedMore, Pause, End };
  struct BufferedRead {
    ReadStep step = ReadStep::NeedMore;
    std::size_t need = 0;        // NeedMore: the bytes buffer_ must hold
    Clock::time_point resume{};  // Pause: until when
  };
  BufferedRead next_buffered_binary_message();
  awaitable<bool> read_message(BufferedRead next);
  awaitable<bool> fill(std::size_t need);
  // TLS only (plain connections never call them): one non-blocking attempt on the TLS socket,
  // and the metrics of how a TLS connection ended.
  TlsSocket::Result tls_read(void* data, std::size_t size);
  TlsSocket::Result tls_write(const void* data, std::size_t size);
  TlsSocket::Result tls_flush();
  std::size_t tls_write_pending() const;
  void count_tls_end(const error_code& ec);
  bool ws_protocol_error(const char* what);
  std::uint8_t* buffer_data() { return static_cast<std::uint8_t*>(buffer_.data().data()); }
  ReadStep next_buffered_message(std::size_t& need);
  bool answer_control_frame(std::uint8_t opcode, const std::uint8_t* payload, std::size_t len);
  relay::ByteSpan message_bytes() const { return message_; }
  std::optional<Clock::time_point> account_rx_now(std::size_t payload);
  awaitable<void> pause_until(Clock::time_point resume);
  awaitable<void> read_loop();
  awaitable<void> throttle_pause();
  bool handle_frame(relay::ByteSpan message);
  bool forward(const relay::Datagram& dg);
  void throttle_on_destination();
  void note_sent_to(const relay::EndpointId& dst);
  void close_socket();
  void drain_on_strand(const relay::Restarting& restarting);

  // writer.cpp
  Enqueue enqueue_control(QueuedFrame&& frame, std::size_t capacity);
  void wake_writer();
  bool add_drain_waiter(RelayClientHandle* sender);
  static void resume_waiters(DrainWaiters& waiters);
  void begin_write();
  void end_write();
  int send_queue_bytes();
  void on_write_watchdog(error_code ec);
  awaitable<bool> write_batch();
  void gather_batch();
  awaitable<bool> write_batch_tls();
  awaitable<bool> write_batch_plain();
  std::size_t send_now(const std::vector<boost::asio::const_buffer>& buffers);
  static bool consume_buffers(std::vector<boost::asio::const_buffer>& buffers, std::size_t n);
  enum class Keepalive { Idle, SendPing, TimedOut };
  Keepalive keepalive_step(relay::Bytes& ping_frame);
  std::optional<std::size_t> take_batch();
  bool count_written(std::size_t datagram_count, bool sent);
  void release_batch_storage();
  awaitable<void> write_loop(std::shared_ptr<Connection> self);

  std::shared_ptr<RelayServiceState> state_owner_;  // outlives every connection
  RelayServiceState& state_;
  std::shared_ptr<const RelaySettings> settings_;  // limits as of the accept
  std::shared_ptr<boost::asio::ssl::context>
      tls_context_;  // before stream_: outlives the SSL stream
  std::optional<boost::asio::ip::address> counted_ip_;
  std::optional<boost::asio::ip::address> pre_auth_ip_;  // holds a pre-auth reservation while set
  // The connection's byte stream. After the opening handshake (answered by accept_websocket
  // itself), WebSocket framing is relay/ws_framing.hpp's, so no Beast websocket::stream (its
  // state and read buffer cost ~2 KiB per idle client, issue 13).
  Stream stream_;
  // Only on a relay mesh link (relay/mesh_accept.cpp): Beast's WebSocket over stream_.
  std::unique_ptr<boost::beast::websocket::stream<Stream&>> mesh_ws_;
  boost::beast::flat_buffer buffer_;
  // Reader state: bytes of buffer_ that belong to the message returned last, the reassembly of a
  // fragmented message, and the current message.
  std::size_t consumed_ = 0;
  std::vector<std::uint8_t> fragments_;
  bool in_fragments_ = false;
  bool fragments_complete_ = false;
  bool message_binary_ = false;
  relay::ByteSpan message_;
  std::size_t max_message_ = relay_conn::kMaxHandshakeMessage;
  std::array<std::uint8_t, 16> wait_bytes_{};
  // When fill() last got the bytes it waited for: the arrival time of the frames they carry.
  Clock::time_point last_read_at_{};
  // Writer state, released whenever the writer goes idle: the batch's control frames, its runs of
  // datagram messages (in the send queue's chunks until the next take_batch) and what they hold.
  std::vector<QueuedFrame> batch_;
  std::array<SendQueue::Span, relay_conn::kMaxBatchSpans> batch_spans_{};
  SendQueue::Taken batch_taken_{};
  std::vector<std::uint8_t> batch_heads_;
  std::vector<boost::asio::const_buffer> batch_buffers_;
  std::vector<std::uint8_t> batch_bytes_;
  boost::asio::steady_timer watchdog_;
  boost::asio::steady_timer wake_;
  // Allocated when the reader is first throttled: idle clients stay small.
  std::unique_ptr<boost::asio::steady_timer> throttle_timer_;
  ListenerRole role_;
  boost::asio::ip::tcp::endpoint peer_;
  boost::asio::ip::tcp::endpoint local_;
  PingTracker ping_;

  std::mutex queue_mutex_;
  SendQueue queue_;
  // Senders throttled on this queue, resumed once it drains to its resume mark.
  DrainWaiters drain_waiters_;
  bool writer_waiting_ = false;
  bool closed_ = false;
  // Steady-clock ticks when the write in flight started, 0 when none (read by senders).
  std::atomic<Clock::rep> write_started_ns_{0};
  // Reader back-pressure state.
  bool throttled_ = false;
  bool budget_backoff_ = false;
  bool resume_signal_ = false;
  // Write watchdog: SIOCOUTQ at the last check and when it last moved.
  int write_outq_ = -1;
  Clock::time_point write_progress_at_{};

  bool socket_closed_ = false;
  bool errored_ = false;
  // In the registry (set by establish() before ServerConfirmsAuth is written): frames queued
  // from then on are sent by the writer once it starts.
  bool registered_ = false;
  bool writing_ = false;
  bool watchdog_armed_ = false;
  bool rate_limited_once_ = false;
  Clock::time_point write_started_{};
  EndpointIdSet sent_to_;
  // The destination this client sent to last: already in sent_to_, and its registry route.
  std::optional<relay::EndpointId> last_sent_to_;
  ClientRegistry::RouteCache route_;
  std::optional<RxTokenBucket> rx_limit_;
};

// Each part explicitly instantiates the members it defines for both streams.
#define IROH_RELAY_FOR_EACH_STREAM(X) \
  X(relay_conn::PlainStream)          \
  X(relay_conn::TlsStream)

}  // namespace iroh::server
