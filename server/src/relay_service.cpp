#include "relay_service.hpp"

#include <linux/sockios.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "access_control.hpp"
#include "client_registry.hpp"
#include "key_cache.hpp"
#include "log.hpp"
#include "rate_limiter.hpp"
#include "relay/send_queue.hpp"
#include "relay/ws_framing.hpp"
#include "status_page.hpp"
#include "tls.hpp"

#ifndef IROH_RELAY_VERSION
#define IROH_RELAY_VERSION "0.0.0"
#endif

namespace iroh::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kHstsValue = "max-age=63072000; includeSubDomains";
constexpr std::string_view kCspValue =
    "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'self'; "
    "block-all-mixed-content; plugin-types 'none'";
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
// TLS only: the read an idle client keeps pending pins this much; it doubles while reads fill it.
constexpr std::size_t kIdleReadBytes = 64;
// One socket write carries up to this many queued frames (2 iovecs each; Asio passes at most 64
// to sendmsg) or about this many bytes.
constexpr std::size_t kMaxBatchFrames = 32;
constexpr std::size_t kMaxBatchBytes = 64 * 1024;
// Per-turn budget of the reader (issue 13): after this many frames or bytes handled without
// waiting for the socket, it lets the other handlers of its thread run (writers above all), so
// one flooding connection cannot monopolise a thread.
constexpr std::size_t kReadTurnFrames = 64;
constexpr std::size_t kReadTurnBytes = 256 * 1024;
// Back-pressure (issue 13): a sender whose datagram found a full destination queue stops being
// read until that queue is half empty again, or at most this long.
constexpr auto kThrottleMaxPause = 20ms;
// ... and when limits.total_queue_bytes is reached, for this long.
constexpr auto kBudgetBackoff = 5ms;
// A destination whose socket write has been pending this long is not draining: senders to it
// have their datagrams dropped but are not throttled, so a client that never reads cannot slow
// the senders that also talk to others.
constexpr auto kStalledWriteAfter = 50ms;
// Senders recorded as waiting for one destination to drain; beyond it, further ones only drop.
constexpr std::size_t kMaxDrainWaiters = 256;

// After the upgrade, WebSocket framing is done by relay/ws_framing.hpp rather than by Beast, so
// that reads can take many frames per syscall and writes can put many frames in one sendmsg;
// Beast only does the opening handshake.
using ws::kBinary;
using ws::kClose;
using ws::kContinuation;
using ws::kMaxServerHeader;
using ws::kPing;
using ws::kPong;
using ws::kText;

enum class ListenerRole { RelayService, CaptivePortal };

auto ec_token(error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

template <class Fields>
void add_security_headers(http::header<false, Fields>& h) {
  h.set("Strict-Transport-Security", kHstsValue);
  h.set("Content-Security-Policy", kCspValue);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::uint64_t random_u32(std::uint32_t upper_exclusive) {
  return randombytes_uniform(upper_exclusive);
}

// Keepalive interval of §6.5: 15 s + a whole number of seconds in [1, 5].
Clock::duration first_ping_interval() {
  return 15s + std::chrono::seconds(1 + random_u32(5));
}

class TrackedConnection {
 public:
  virtual ~TrackedConnection() = default;
  // Any thread; only posts.
  virtual void close() = 0;
  // Any thread; only posts. Relay clients get Restarting (§6.7) and a WebSocket Close, then the
  // connection closes; connections still in their handshake close at once.
  virtual void drain(const relay::Restarting& restarting) = 0;
  // Null once the connection is being destroyed.
  virtual std::shared_ptr<TrackedConnection> lock_tracked() = 0;
};

class ConnectionSet {
 public:
  void add(TrackedConnection* c) {
    std::lock_guard lock(mutex_);
    set_.insert(c);
  }
  void remove(TrackedConnection* c) {
    std::lock_guard lock(mutex_);
    set_.erase(c);
  }
  template <class F>
  void for_each(F&& f) {
    // Strong references taken under the lock, used and released outside it: the last release
    // runs the destructor, which takes the lock again.
    std::vector<std::shared_ptr<TrackedConnection>> alive;
    {
      std::lock_guard lock(mutex_);
      alive.reserve(set_.size());
      for (auto* c : set_) {
        if (auto strong = c->lock_tracked()) alive.push_back(std::move(strong));
      }
    }
    for (auto& c : alive) f(*c);
  }
  void close_all() {
    for_each([](TrackedConnection& c) { c.close(); });
  }

 private:
  std::mutex mutex_;
  std::unordered_set<TrackedConnection*> set_;
};

tcp::endpoint resolve_bind_addr(const config::SocketAddr& addr) {
  std::string host = addr.host;
  if (host.empty() || host == "*") host = "::";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (!ec) return {ip, addr.port};
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, std::to_string(addr.port), ec);
  if (ec || results.empty()) {
    throw boost::system::system_error(ec ? ec : asio::error::host_not_found,
                                      "cannot resolve bind address " + addr.to_string());
  }
  return results.begin()->endpoint();
}

}  // namespace

// The settings a reload (SIGHUP) replaces. Connections take a snapshot when they are accepted;
// the access control in force is read when a client authenticates.
struct RelaySettings {
  config::Limits limits;
  std::shared_ptr<AccessControl> access;
};

struct RelayServiceState {
  RelayServiceState(const config::Config& c, RelayMetrics& m)
      : config(c),
        metrics(m),
        registry(m),
        key_cache(c.key_cache_capacity),
        queue_budget(c.limits.total_queue_bytes),
        pre_auth_budget(c.limits.pre_auth_bytes),
        settings_(std::make_shared<RelaySettings>(RelaySettings{
            c.limits, std::make_shared<AccessControl>(c.access, c.source.string())})) {
    reset_accept_bucket(c.limits);
  }

  // The startup config; reloadable parts live in settings().
  const config::Config& config;
  RelayMetrics& metrics;
  ClientRegistry registry;
  KeyCache key_cache;
  QueueBudget queue_budget;     // limits.total_queue_bytes
  QueueBudget pre_auth_budget;  // limits.pre_auth_bytes
  HttpRouter relay_router;
  HttpRouter captive_router;
  ConnectionSet connections;

  std::shared_ptr<const RelaySettings> settings() const {
    std::lock_guard lock(settings_mutex_);
    return settings_;
  }
  void set_settings(std::shared_ptr<const RelaySettings> next) {
    std::lock_guard lock(settings_mutex_);
    settings_ = std::move(next);
    reset_accept_bucket(settings_->limits);
    queue_budget.set_limit(settings_->limits.total_queue_bytes);
    pre_auth_budget.set_limit(settings_->limits.pre_auth_bytes);
  }
  std::shared_ptr<ssl::context> tls_context() const {
    std::lock_guard lock(settings_mutex_);
    return tls_context_;
  }
  void set_tls_context(std::shared_ptr<ssl::context> ctx) {
    std::lock_guard lock(settings_mutex_);
    tls_context_ = std::move(ctx);
  }
  bool tls_mode = false;

  // limits.accept_conn_limit / accept_conn_burst: a token bucket over accepted connections.
  bool take_accept_token(const config::Limits& limits) {
    if (!limits.accept_conn_limit) return true;
    std::lock_guard lock(accept_mutex_);
    auto now = Clock::now();
    double burst = accept_burst(limits);
    accept_tokens_ = std::min(
        burst, accept_tokens_ + std::chrono::duration<double>(now - accept_refilled_).count() *
                                    *limits.accept_conn_limit);
    accept_refilled_ = now;
    if (accept_tokens_ < 1.0) return false;
    accept_tokens_ -= 1.0;
    return true;
  }

  // limits.max_connections_per_ip: false (nothing counted) if `ip` is at its limit.
  bool add_ip(const asio::ip::address& ip, const config::Limits& limits) {
    if (!limits.max_connections_per_ip) return true;
    std::lock_guard lock(ip_mutex_);
    auto& n = per_ip_[ip];
    if (n >= *limits.max_connections_per_ip) {
      if (n == 0) per_ip_.erase(ip);
      return false;
    }
    ++n;
    return true;
  }
  void remove_ip(const asio::ip::address& ip) {
    std::lock_guard lock(ip_mutex_);
    auto it = per_ip_.find(ip);
    if (it == per_ip_.end()) return;
    if (--it->second == 0) per_ip_.erase(it);
  }

  // Issue 19: a pre-auth reservation (limits.pre_auth_bytes) and a slot among `ip`'s
  // unauthenticated connections (limits.max_unauthenticated_per_ip); the reason if refused.
  const char* take_pre_auth(const asio::ip::address& ip, const config::Limits& limits) {
    if (!pre_auth_budget.try_take(config::Limits::kPreAuthReserveBytes)) return "pre_auth_bytes";
    std::lock_guard lock(ip_mutex_);
    auto& n = unauth_per_ip_[ip];
    if (n >= limits.max_unauthenticated_per_ip) {
      if (n == 0) unauth_per_ip_.erase(ip);
      pre_auth_budget.give_back(config::Limits::kPreAuthReserveBytes);
      return "max_unauthenticated_per_ip";
    }
    ++n;
    return nullptr;
  }
  void release_pre_auth(const asio::ip::address& ip) {
    pre_auth_budget.give_back(config::Limits::kPreAuthReserveBytes);
    std::lock_guard lock(ip_mutex_);
    auto it = unauth_per_ip_.find(ip);
    if (it == unauth_per_ip_.end()) return;
    if (--it->second == 0) unauth_per_ip_.erase(it);
  }
  std::atomic<bool> stopping{false};
  Clock::time_point started = Clock::now();

  struct Listener {
    tcp::acceptor acceptor;
    ListenerRole role;
    bool tls;
  };
  std::vector<std::unique_ptr<Listener>> listeners;
  std::optional<tcp::endpoint> http_endpoint;
  std::optional<tcp::endpoint> https_endpoint;

 private:
  static double accept_burst(const config::Limits& limits) {
    if (limits.accept_conn_burst) return double(*limits.accept_conn_burst);
    return std::max(1.0, std::ceil(limits.accept_conn_limit.value_or(1.0)));
  }
  void reset_accept_bucket(const config::Limits& limits) {
    std::lock_guard lock(accept_mutex_);
    accept_tokens_ = accept_burst(limits);
    accept_refilled_ = Clock::now();
  }

  mutable std::mutex settings_mutex_;
  std::shared_ptr<const RelaySettings> settings_;
  std::shared_ptr<ssl::context> tls_context_;
  std::mutex accept_mutex_;
  double accept_tokens_ = 0;
  Clock::time_point accept_refilled_;
  std::mutex ip_mutex_;
  std::unordered_map<asio::ip::address, std::size_t> per_ip_;
  std::unordered_map<asio::ip::address, std::size_t> unauth_per_ip_;
};

// The counted IP of a connection (v4-mapped IPv6 counted as the IPv4 address).
asio::ip::address counted_address(const tcp::endpoint& ep) {
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  return a;
}

std::string format_endpoint(const tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6()) {
    auto v6 = addr.to_v6();
    if (v6.is_v4_mapped())
      return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string() + ":" +
             std::to_string(ep.port());
    return "[" + v6.to_string() + "]:" + std::to_string(ep.port());
  }
  return addr.to_string() + ":" + std::to_string(ep.port());
}

std::string http_date() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::optional<std::string> captive_portal_response(std::string_view challenge) {
  if (challenge.empty() || challenge.size() >= 64) return std::nullopt;
  for (char c : challenge) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return std::nullopt;
  }
  return "response " + std::string(challenge);
}

UpgradeCheck check_upgrade_request(const HttpRequest& req) {
  UpgradeCheck out;
  auto upgrade = req.find(http::field::upgrade);
  if (upgrade == req.end()) {
    out.error = "missing header: upgrade";
    return out;
  }
  if (!iequals(upgrade->value(), "websocket")) {
    out.error = "invalid header value for upgrade: value must be websocket";
    return out;
  }
  if (req.find(http::field::sec_websocket_key) == req.end()) {
    out.error = "missing header: sec-websocket-key";
    return out;
  }
  auto version = req.find(http::field::sec_websocket_version);
  if (version == req.end()) {
    out.error = "missing header: sec-websocket-version";
    return out;
  }
  if (version->value() != "13") {
    out.error =
        "invalid header value for sec-websocket-version: unsupported websocket version, only "
        "supporting 13";
    out.bad_ws_version = true;
    return out;
  }
  auto protocol = req.find(http::field::sec_websocket_protocol);
  if (protocol == req.end()) {
    out.error = "missing header: sec-websocket-protocol";
    return out;
  }
  std::string_view value = protocol->value();
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (!(u == '\t' || (u >= 0x20 && u < 0x7f))) {
      out.error = "invalid header value for sec-websocket-protocol: header value is not ascii";
      return out;
    }
  }
  auto negotiated = relay::negotiate_subprotocol(value);
  if (!negotiated) {
    out.error =
        "invalid header value for sec-websocket-protocol: unsupported relay version: we support "
        "iroh-relay-v2, iroh-relay-v1 but you only provide " +
        std::string(value);
    return out;
  }
  out.ok = true;
  out.version = static_cast<int>(*negotiated);
  return out;
}

namespace {

// One TCP connection on a relay-service or captive-portal listener: HTTP/1.1 requests until an
// upgrade on /relay, then the relay handshake, then a registered relay client. Every member is
// confined to the connection's strand except the two queues (queue_mutex_).
template <class Stream>
class Connection final : public RelayClientHandle,
                         public TrackedConnection,
                         public std::enable_shared_from_this<Connection<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

 public:
  // `tls_context` (TLS only) is the context `args` refer to; kept alive with the connection so a
  // certificate reload can swap the listener's context while this connection runs.
  // `counted_ip`: the address counted against limits.max_connections_per_ip, if any.
  template <class... Args>
  Connection(std::shared_ptr<RelayServiceState> state, ListenerRole role,
             std::shared_ptr<const RelaySettings> settings,
             std::shared_ptr<ssl::context> tls_context, std::optional<asio::ip::address> counted_ip,
             std::optional<asio::ip::address> pre_auth_ip, Args&&... args)
      : RelayClientHandle(relay::EndpointId{}, relay::ProtocolVersion::V2),
        state_owner_(std::move(state)),
        state_(*state_owner_),
        settings_(std::move(settings)),
        tls_context_(std::move(tls_context)),
        counted_ip_(std::move(counted_ip)),
        pre_auth_ip_(std::move(pre_auth_ip)),
        ws_(std::forward<Args>(args)...),
        watchdog_(ws_.get_executor()),
        wake_(ws_.get_executor()),
        role_(role),
        queue_(SendQueue::Caps{settings_->limits.client_queue_capacity,
                               settings_->limits.client_queue_bytes},
               state_.queue_budget) {
    state_.connections.add(this);
    state_.metrics.open_connections.fetch_add(1, std::memory_order_relaxed);
    if (role_ == ListenerRole::RelayService) {
      state_.metrics.http_connections.fetch_add(1, std::memory_order_relaxed);
    }
  }

  ~Connection() override {
    state_.connections.remove(this);
    if (counted_ip_) state_.remove_ip(*counted_ip_);
    release_pre_auth();
    state_.metrics.open_connections.fetch_sub(1, std::memory_order_relaxed);
    if (role_ == ListenerRole::RelayService) {
      state_.metrics.http_connections_closed.fetch_add(1, std::memory_order_relaxed);
      if (errored_) state_.metrics.http_connections_errored.fetch_add(1, std::memory_order_relaxed);
    }
  }

  asio::awaitable<void> run(std::shared_ptr<Connection> self) {
    try {
      co_await run_inner();
    } catch (const std::exception& e) {
      log::debug("connection from ", peer_text(), " failed: ", e.what());
      errored_ = true;
    }
    close_socket();
    (void)self;
  }

  Enqueue try_enqueue_datagram(relay::Bytes&& frame, RelayClientHandle* sender) override {
    {
      std::lock_guard lock(queue_mutex_);
      if (closed_) return Enqueue::Closed;
      switch (queue_.push_datagram(std::move(frame))) {
        case SendQueue::Push::Ok:
          break;
        case SendQueue::Push::BudgetFull:
          return Enqueue::BudgetFull;
        case SendQueue::Push::Full:
          return add_drain_waiter(sender) ? Enqueue::FullThrottle : Enqueue::Full;
      }
      if (!writer_waiting_) return Enqueue::Ok;
      writer_waiting_ = false;
    }
    wake_writer();
    return Enqueue::Ok;
  }
  Enqueue try_enqueue_control(relay::Bytes&& frame) override {
    return enqueue_control(QueuedFrame{std::move(frame), kBinary}, kControlQueueCapacity);
  }
  std::size_t queued_datagrams() override {
    std::lock_guard lock(queue_mutex_);
    return queue_.datagram_count();
  }
  std::size_t queued_bytes() override {
    std::lock_guard lock(queue_mutex_);
    return queue_.datagram_bytes();
  }
  void resume_reading() override {
    if (auto self = this->weak_from_this().lock()) {
      asio::post(ws_.get_executor(), [self] {
        self->resume_signal_ = true;
        if (self->throttle_timer_) self->throttle_timer_->cancel();
      });
    }
  }
  std::weak_ptr<RelayClientHandle> weak_handle() override {
    return std::static_pointer_cast<RelayClientHandle>(this->shared_from_this());
  }

  asio::any_io_executor executor() { return ws_.get_executor(); }

  void close() override {
    if (auto self = this->weak_from_this().lock()) {
      asio::post(ws_.get_executor(), [self] { self->close_socket(); });
    }
  }
  void drain(const relay::Restarting& restarting) override {
    if (auto self = this->weak_from_this().lock()) {
      asio::post(ws_.get_executor(), [self, restarting] { self->drain_on_strand(restarting); });
    }
  }
  std::shared_ptr<TrackedConnection> lock_tracked() override {
    return this->weak_from_this().lock();
  }

 private:
  auto& socket() { return beast::get_lowest_layer(ws_); }

  std::string peer_text() const { return format_endpoint(peer_); }

  Enqueue enqueue_control(QueuedFrame&& frame, std::size_t capacity) {
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

  void wake_writer() {
    asio::post(ws_.get_executor(), [self = this->shared_from_this()] { self->wake_.cancel(); });
  }

  // queue_mutex_ held. Records `sender` as waiting for this queue to drain, unless this client is
  // not draining at all (see kStalledWriteAfter). False: the sender is not to be throttled.
  bool add_drain_waiter(RelayClientHandle* sender) {
    if (!sender || sender == this) return false;
    const auto started = write_started_ns_.load(std::memory_order_relaxed);
    if (started != 0 &&
        Clock::now().time_since_epoch() - Clock::duration(started) > kStalledWriteAfter)
      return false;
    for (const auto& w : drain_waiters_) {
      if (w.first == sender) return true;
    }
    if (drain_waiters_.size() >= kMaxDrainWaiters) return false;
    drain_waiters_.emplace_back(sender, sender->weak_handle());
    return true;
  }

  static void resume_waiters(
      std::vector<std::pair<RelayClientHandle*, std::weak_ptr<RelayClientHandle>>>& waiters) {
    for (auto& w : waiters) {
      if (auto strong = w.second.lock()) strong->resume_reading();
    }
    waiters.clear();
  }

  // The connection authenticated (or ends): its pre-auth reservation goes back.
  void release_pre_auth() {
    if (!pre_auth_ip_) return;
    state_.release_pre_auth(*pre_auth_ip_);
    pre_auth_ip_.reset();
  }

  void close_socket() {
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

  void drain_on_strand(const relay::Restarting& restarting) {
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

  // Covers TLS + HTTP + relay handshake (§2.5, §4.5).
  void arm_establish_deadline() {
    watchdog_.expires_after(settings_->limits.handshake_timeout);
    watchdog_.async_wait([weak = this->weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        log::debug("connection from ", self->peer_text(), ": handshake timeout");
        self->state_.metrics.handshake_failures.fetch_add(1, std::memory_order_relaxed);
        self->close_socket();
      }
    });
  }

  // Write timeout without a timer operation per write: one pending wait checks the write in
  // flight and re-arms itself only while writes keep happening. A write times out only when it
  // made no progress for limits.write_timeout: the kernel's unacknowledged bytes (SIOCOUTQ)
  // neither shrank nor emptied. A client that reads is never closed because the relay itself was
  // slow to run the write's completion (issue 13).
  void begin_write() {
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
  void end_write() {
    writing_ = false;
    write_started_ns_.store(0, std::memory_order_relaxed);
  }
  // Bytes written to the socket and not yet acknowledged by the peer; -1 if unknown.
  int send_queue_bytes() {
    int outq = 0;
    if (::ioctl(socket().native_handle(), SIOCOUTQ, &outq) != 0) return -1;
    return outq;
  }
  void on_write_watchdog(error_code ec) {
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

  asio::awaitable<void> run_inner() {
    bool established = co_await establish();
    if (!established) co_return;
    last_rx_ = Clock::now();
    ping_interval_ = first_ping_interval_cached();
    asio::co_spawn(ws_.get_executor(), write_loop(this->shared_from_this()), asio::detached);
    co_await read_loop();
    close_socket();
    state_.registry.unregister_client(this, std::move(sent_to_));
    log::debug("client ", endpoint_id().to_hex(), " disconnected");
  }

  // TLS, HTTP, upgrade, relay handshake, access control, registration. A separate coroutine so
  // its frame (request, handshake state) is freed before the long-lived relay phase.
  asio::awaitable<bool> establish() {
    const Clock::time_point accepted_at = Clock::now();
    error_code ec;
    peer_ = socket().remote_endpoint(ec);
    local_ = socket().local_endpoint(ec);
    arm_establish_deadline();

    auto upgrade = co_await serve_http();
    if (!upgrade) co_return false;
    auto check = check_upgrade_request(*upgrade);
    auto version = static_cast<relay::ProtocolVersion>(check.version);
    if (!co_await accept_websocket(*upgrade, version)) co_return false;

    auto id = co_await authenticate(*upgrade);
    if (!id) {
      state_.metrics.handshake_failures.fetch_add(1, std::memory_order_relaxed);
      co_return false;
    }
    // The access control in force now (a reload may have replaced it since the accept).
    std::shared_ptr<AccessControl> access = state_.settings()->access;
    AccessDecision decision = co_await access->check(*id, *upgrade);
    if (!decision.allowed) {
      log::debug("client ", id->to_hex(), " from ", peer_text(), ": denied (", decision.reason,
                 ")");
      state_.metrics.denied.fetch_add(1, std::memory_order_relaxed);
      // Named, not a temporary: GCC 12 destroys temporaries inside co_await twice.
      relay::Bytes deny = relay::encode(relay::ServerDeniesAuth{decision.reason});
      co_await write_frame(deny, false);
      co_return false;
    }
    // Registered before ServerConfirmsAuth so that a peer that hears about us right after our
    // confirmation can already reach us; the writer (started later) sends queued frames after it.
    set_identity(*id, version);
    state_.registry.register_client(this->shared_from_this());
    // Authenticated: no longer counted against the pre-auth limits (before the confirmation, so a
    // client that hears it may open the next connection at once).
    release_pre_auth();
    relay::Bytes confirm = relay::encode(relay::ServerConfirmsAuth{});
    if (!co_await write_frame(confirm, false)) {
      close_socket();
      state_.registry.unregister_client(this, {});
      co_return false;
    }
    watchdog_.cancel();
    state_.metrics.handshake_duration.observe(Clock::now() - accepted_at);
    // Keeps frames the client sent right behind ClientAuth.
    buffer_.shrink_to_fit();
    log::debug("client ", id->to_hex(), " connected from ", peer_text(), " (v", int(version), ")");
    co_return true;
  }

  // Serves plain requests until a valid upgrade on /relay; returns that request.
  asio::awaitable<std::optional<HttpRequest>> serve_http() {
    error_code ec;
    if constexpr (kTls) {
      co_await ws_.next_layer().async_handshake(ssl::stream_base::server, ec_token(ec));
      if (ec) {
        log::debug("TLS handshake with ", peer_text(), " failed: ", ec.message());
        errored_ = true;
        co_return std::nullopt;
      }
    }
    buffer_.max_size(kPreAuthBufferMax);
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHttpHeader);
      // The route decides the body limit (2 MiB for /pkarr, §4.2): header first, then the body.
      parser.body_limit(boost::none);
      co_await http::async_read_header(ws_.next_layer(), buffer_, parser, ec_token(ec));
      if (!ec) {
        const auto& head = parser.get();
        const std::size_t limit =
            routes().body_limit(head.method(), target_path(head.target()), kMaxHttpBody);
        if (parser.content_length() && *parser.content_length() > limit) {
          ec = http::error::body_limit;
        } else {
          parser.body_limit(limit);
          co_await http::async_read(ws_.next_layer(), buffer_, parser, ec_token(ec));
        }
      }
      if (ec == http::error::header_limit) {
        // Issue 19: a clear answer instead of a silent close.
        HttpResponse res{http::status::request_header_fields_too_large, 11};
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "Request header fields too large";
        res.keep_alive(false);
        res.prepare_payload();
        finish_response(res);
        co_await http::async_write(ws_.next_layer(), res, ec_token(ec));
        co_return std::nullopt;
      }
      if (ec == http::error::body_limit) {
        auto res = make_response(parser.get(), http::status::payload_too_large,
                                 "Failed to buffer the request body: length limit exceeded",
                                 "text/plain; charset=utf-8");
        res.keep_alive(false);
        finish_response(res);
        co_await http::async_write(ws_.next_layer(), res, ec_token(ec));
        co_return std::nullopt;
      }
      if (ec) {
        if (ec != http::error::end_of_stream && ec != asio::error::eof &&
            ec != asio::error::operation_aborted && ec != http::error::partial_message) {
          errored_ = true;
        }
        co_return std::nullopt;
      }
      HttpRequest req = parser.release();
      auto path = target_path(req.target());
      if (role_ == ListenerRole::RelayService && path == "/relay" &&
          req.method() == http::verb::get) {
        auto check = check_upgrade_request(req);
        if (check.ok) co_return std::optional<HttpRequest>(std::move(req));
        auto res =
            make_response(req, http::status::bad_request, check.error, "text/plain; charset=utf-8");
        if (check.bad_ws_version) res.set(http::field::sec_websocket_version, "13");
        finish_response(res);
        co_await http::async_write(ws_.next_layer(), res, ec_token(ec));
        if (ec || res.need_eof()) co_return std::nullopt;
        continue;
      }
      auto res = co_await dispatch(req);
      co_await http::async_write(ws_.next_layer(), res, ec_token(ec));
      if (ec || res.need_eof()) co_return std::nullopt;
    }
  }

  void finish_response(HttpResponse& res) {
    res.set(http::field::date, http_date());
    if (role_ == ListenerRole::RelayService) add_security_headers(res.base());
  }

  const HttpRouter& routes() const {
    return role_ == ListenerRole::CaptivePortal ? state_.captive_router : state_.relay_router;
  }

  asio::awaitable<HttpResponse> dispatch(const HttpRequest& req) {
    const HttpRouter& router = routes();
    RequestInfo info{peer_, local_, kTls};
    HttpResponse res;
    bool failed = false;
    if (const HttpHandler* handler = router.find(req.method(), target_path(req.target()))) {
      try {
        res = co_await (*handler)(req, info);
      } catch (const std::exception& e) {
        log::warn("handler for ", req.target(), " failed: ", e.what());
        failed = true;
      }
    } else {
      res = make_response(req, http::status::not_found, "Not Found");
    }
    if (failed)
      res = make_response(req, http::status::internal_server_error, "Internal Server Error");
    finish_response(res);
    co_return res;
  }

  asio::awaitable<bool> accept_websocket(HttpRequest& req, relay::ProtocolVersion version) {
    if (buffer_.size() != 0) {
      // Like the reference: bytes pipelined behind the upgrade request end the connection.
      log::debug("connection from ", peer_text(), ": data after the upgrade request");
      co_return false;
    }
    // Beast insists on "Connection: upgrade"; the spec does not check it.
    if (!http::token_list(req[http::field::connection]).exists("upgrade")) {
      req.set(http::field::connection, "Upgrade");
    }
    ws_.set_option(websocket::stream_base::timeout{websocket::stream_base::none(),
                                                   websocket::stream_base::none(), false});
    ws_.set_option(websocket::stream_base::decorator([version](websocket::response_type& res) {
      // Beast adds its own Server header when none is set.
      res.set(http::field::server, "iroh-relay");
      res.set(http::field::sec_websocket_protocol, relay::subprotocol_name(version));
      res.set(http::field::date, http_date());
      add_security_headers(res.base());
    }));
    ws_.read_message_max(relay::kMaxFrameSize);
    ws_.auto_fragment(false);
    ws_.binary(true);
    error_code ec;
    co_await ws_.async_accept(req, ec_token(ec));
    if (ec) {
      log::debug("websocket accept from ", peer_text(), " failed: ", ec.message());
      co_return false;
    }
    socket().set_option(tcp::no_delay(true), ec);
    // Plain TCP reads try a non-blocking read first and wait for readability without a buffer.
    if constexpr (!kTls) socket().non_blocking(true, ec);
    if (const auto& rx = settings_->limits.client_rx) {
      std::uint32_t burst = rx->max_burst_bytes ? rx->max_burst_bytes : rx->bytes_per_second / 10;
      RxTokenBucket bucket(rx->bytes_per_second, burst);
      if (bucket.valid()) rx_limit_.emplace(bucket);
    }
    co_return true;
  }

  // One binary message into message_ (text messages skipped). False on error / close.
  asio::awaitable<bool> read_message() {
    for (;;) {
      if (!co_await read_ws_message()) co_return false;
      if (auto resume = account_rx_now(message_.size())) co_await pause_until(*resume);
      if (socket_closed_) co_return false;
      if (message_binary_) co_return true;
    }
  }

  // Reads until buffer_ holds `need` bytes. False on EOF / error.
  asio::awaitable<bool> fill(std::size_t need) {
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
        // The pending read uses a few bytes inside the connection, so an idle client holds no
        // read buffer at all.
        n = co_await socket().async_read_some(asio::buffer(wait_bytes_), ec_token(ec));
        if (ec) co_return false;
        buffer_.commit(asio::buffer_copy(buffer_.prepare(n), asio::buffer(wait_bytes_, n)));
      } else {
        // The TLS stream buffers records itself; the pending read pins `want` bytes, so it
        // starts small and doubles only while reads come back full.
        std::size_t want = std::max(
            need - buffer_.size(),
            registered_ ? tls_read_chunk_ : std::min(tls_read_chunk_, kHandshakeReadBytes));
        if (want <= kIdleReadBytes && buffer_.capacity() > buffer_.size() + kKeepReadBufferBytes)
          buffer_.shrink_to_fit();
        std::size_t n =
            co_await ws_.next_layer().async_read_some(buffer_.prepare(want), ec_token(ec));
        if (ec) co_return false;
        buffer_.commit(n);
        tls_read_chunk_ = n == want ? std::min(want * 2, kBusyReadBytes) : kIdleReadBytes;
      }
    }
    co_return true;
  }

  bool ws_protocol_error(const char* what) {
    log::debug("connection from ", peer_text(), ": websocket protocol error: ", what);
    errored_ = true;
    return false;
  }

  std::uint8_t* buffer_data() { return static_cast<std::uint8_t*>(buffer_.data().data()); }

  // The next complete data message (binary or text, message_binary_) into message_, which stays
  // valid until the next call. Answers WebSocket pings; a Close is echoed and the writer closes
  // the connection after sending it. False on EOF, error or protocol violation (closes).
  asio::awaitable<bool> read_ws_message() {
    for (;;) {
      buffer_.consume(consumed_);
      consumed_ = 0;
      if (fragments_complete_) {
        fragments_ = {};
        fragments_complete_ = false;
      }
      ws::ClientHeader h;
      std::size_t need = 2;
      const char* error = nullptr;
      ws::Parse parsed;
      while ((parsed = ws::parse_client_header(buffer_data(), buffer_.size(), h, need, error)) ==
             ws::Parse::NeedMore) {
        if (!co_await fill(need)) co_return false;
      }
      if (parsed == ws::Parse::Error) co_return ws_protocol_error(error);
      const std::uint8_t opcode = h.opcode;
      const bool fin = h.fin;
      const std::uint64_t len = h.payload_len;
      const bool control = opcode & 0x8;
      if (!control) {
        if ((opcode == kContinuation) != in_fragments_)
          co_return ws_protocol_error("bad continuation");
        // kMaxHandshakeMessage until the client is registered (issue 19), then a relay frame.
        if (len > max_message_ - std::min(max_message_, fragments_.size()))
          co_return ws_protocol_error("message too big");
      }
      const std::size_t head = h.header_len;
      const std::size_t total = head + std::size_t(len);
      if (!co_await fill(total)) co_return false;
      std::uint8_t* frame = buffer_data();
      std::uint8_t* payload = frame + head;
      ws::unmask(payload, std::size_t(len), frame + head - 4);
      consumed_ = total;
      if (control) {
        if (opcode == kPong) continue;
        // A Close before the handshake completed ends the connection now (issue 19), rather
        // than at the handshake deadline: nobody sends the queued reply before registration.
        if (opcode == kClose && !registered_) co_return false;
        relay::Bytes reply(payload,
                           payload + std::min<std::size_t>(len, opcode == kClose ? 2 : 125));
        auto queued = enqueue_control(
            QueuedFrame{std::move(reply), opcode == kPing ? kPong : kClose}, kControlQueueCapacity);
        if (opcode == kClose && queued != Enqueue::Ok) co_return false;
        if (queued != Enqueue::Ok)
          state_.metrics.control_dropped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (opcode != kContinuation) message_binary_ = opcode == kBinary;
      if (fin && !in_fragments_) {
        message_ = {payload, std::size_t(len)};
        co_return true;
      }
      fragments_.insert(fragments_.end(), payload, payload + len);
      in_fragments_ = !fin;
      if (fin) {
        fragments_complete_ = true;
        message_ = {fragments_.data(), fragments_.size()};
        co_return true;
      }
    }
  }

  // §6.8: bytes as read from the socket, approximated as payload + WebSocket header. Returns
  // the time until which reading must pause, if any.
  std::optional<Clock::time_point> account_rx_now(std::size_t payload) {
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

  asio::awaitable<void> pause_until(Clock::time_point resume) {
    asio::steady_timer pause(ws_.get_executor());
    pause.expires_at(resume);
    error_code ec;
    co_await pause.async_wait(ec_token(ec));
  }

  relay::ByteSpan message_bytes() const { return message_; }

  asio::awaitable<std::optional<relay::EndpointId>> authenticate(const HttpRequest& req) {
    if constexpr (kTls) {
      auto header = req.find(relay::kAuthHeader);
      if (header != req.end()) {
        if (auto auth = relay::decode_auth_header(header->value())) {
          std::array<std::uint8_t, 32> ekm{};
          int ok = SSL_export_keying_material(
              ws_.next_layer().native_handle(), ekm.data(), ekm.size(),
              relay::kExporterLabel.data(), relay::kExporterLabel.size(),
              auth->public_key.bytes.data(), auth->public_key.bytes.size(), 1);
          if (ok == 1 && relay::verify_key_material(*auth, ekm)) co_return auth->public_key;
          log::debug("client auth header from ", peer_text(), " did not verify; using challenge");
        }
      }
    }
    relay::ServerChallenge challenge;
    randombytes_buf(challenge.challenge.data(), challenge.challenge.size());
    relay::Bytes challenge_frame = relay::encode(challenge);
    if (!co_await write_frame(challenge_frame, false)) co_return std::nullopt;
    if (!co_await read_message()) co_return std::nullopt;
    auto decoded = relay::decode_handshake(message_bytes());
    auto* msg = std::get_if<relay::HandshakeMessage>(&decoded);
    auto* auth = msg ? std::get_if<relay::ClientAuth>(msg) : nullptr;
    if (!auth) {
      log::debug("connection from ", peer_text(), ": expected ClientAuth");
      co_return std::nullopt;
    }
    if (!relay::verify_client_auth(*auth, challenge.challenge)) {
      log::debug("connection from ", peer_text(), ": signature invalid");
      state_.metrics.denied.fetch_add(1, std::memory_order_relaxed);
      relay::Bytes deny = relay::encode(relay::ServerDeniesAuth{"signature invalid"});
      co_await write_frame(deny, false);
      co_return std::nullopt;
    }
    co_return auth->public_key;
  }

  asio::awaitable<bool> write_frame(const relay::Bytes& frame, bool timed) {
    if (socket_closed_) co_return false;
    std::array<std::uint8_t, kMaxServerHeader> head{};
    std::size_t head_len = ws::encode_server_header(kBinary, frame.size(), head.data());
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head.data(), head_len),
                                              asio::buffer(frame)};
    if (timed) begin_write();
    error_code ec;
    co_await asio::async_write(ws_.next_layer(), buffers, ec_token(ec));
    if (timed) end_write();
    if (ec) {
      log::debug("write to ", peer_text(), " failed: ", ec.message());
      co_return false;
    }
    co_return true;
  }

  // The relay phase's reader.
  asio::awaitable<void> read_loop() {
    registered_ = true;
    max_message_ = relay::kMaxFrameSize;
    buffer_.max_size(std::numeric_limits<std::size_t>::max());
    std::size_t turn_frames = 0, turn_bytes = 0;
    for (;;) {
      // Not `if (!co_await ...) co_return;`: GCC 12 miscompiles that here (SIGILL on entry).
      bool got = co_await read_message();
      if (!got || !handle_frame(message_bytes())) break;
      turn_bytes += message_.size();
      if (throttled_ || budget_backoff_) {
        co_await throttle_pause();
        if (socket_closed_) break;
        turn_frames = turn_bytes = 0;
      } else if (++turn_frames >= kReadTurnFrames || turn_bytes >= kReadTurnBytes) {
        turn_frames = turn_bytes = 0;
        co_await asio::post(ws_.get_executor(), asio::use_awaitable);
      }
    }
  }

  // TCP back-pressure instead of reading and dropping at full speed (issue 13): stops reading
  // until a destination that was full has drained (resume_reading) or kThrottleMaxPause passed;
  // after limits.total_queue_bytes was hit, for kBudgetBackoff.
  asio::awaitable<void> throttle_pause() {
    state_.metrics.senders_throttled.fetch_add(1, std::memory_order_relaxed);
    const bool wait_for_drain = throttled_;
    throttled_ = budget_backoff_ = false;
    if (wait_for_drain && resume_signal_) {
      resume_signal_ = false;
      co_return;
    }
    if (!throttle_timer_)
      throttle_timer_ = std::make_unique<asio::steady_timer>(ws_.get_executor());
    throttle_timer_->expires_after(wait_for_drain ? Clock::duration(kThrottleMaxPause)
                                                  : Clock::duration(kBudgetBackoff));
    error_code ec;
    co_await throttle_timer_->async_wait(ec_token(ec));
    resume_signal_ = false;
  }

  // False if the client must be closed.
  bool handle_frame(relay::ByteSpan message) {
    auto now = Clock::now();
    last_rx_ = now;
    ping_interval_ = first_ping_interval_cached();
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
      if (outstanding_ping_ && pong->data == *outstanding_ping_) {
        auto rtt = now - ping_sent_at_;
        ping_timeout_ = std::clamp<Clock::duration>(3 * rtt, 500ms, 5s);
        outstanding_ping_.reset();
      }
    }
    return true;
  }

  Clock::duration first_ping_interval_cached() {
    if (p0_ == Clock::duration::zero()) p0_ = first_ping_interval();
    return p0_;
  }

  // False if the client must be closed (invalid destination key, §5.5).
  bool forward(const relay::Datagram& dg) {
    auto& m = state_.metrics;
    m.send_packets_recv.fetch_add(1, std::memory_order_relaxed);
    m.bytes_recv.fetch_add(dg.contents.size(), std::memory_order_relaxed);
    auto frame = relay::encode_server_datagram(endpoint_id(), dg.ecn, dg.segment_size, dg.contents);
    if (!frame) {
      m.dropped_unencodable.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    switch (state_.registry.forward(dg.peer, std::move(*frame), this)) {
      case ClientRegistry::Forward::Queued:
        if (!sent_to_.contains(dg.peer)) sent_to_.insert(dg.peer);
        break;
      case ClientRegistry::Forward::UnknownDestination:
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
      case ClientRegistry::Forward::QueueFullThrottle:
        if (!throttled_) {
          throttled_ = true;
          // A resume from an earlier wait must not end this one.
          resume_signal_ = false;
        }
        [[fallthrough]];
      case ClientRegistry::Forward::QueueFull:
        m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
        m.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
        break;
      case ClientRegistry::Forward::TotalQueueFull:
        budget_backoff_ = true;
        m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
        m.dropped_total_queue_full.fetch_add(1, std::memory_order_relaxed);
        break;
      case ClientRegistry::Forward::RecipientClosed:
        m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
        m.dropped_write_error.fetch_add(1, std::memory_order_relaxed);
        break;
    }
    return true;
  }

  // batch_ as one socket write: scatter-gather for TCP, one contiguous record for TLS.
  asio::awaitable<bool> write_batch() {
    if (socket_closed_) co_return false;
    batch_heads_.resize(batch_.size() * kMaxServerHeader);
    batch_buffers_.clear();
    batch_bytes_.clear();
    for (std::size_t i = 0; i < batch_.size(); ++i) {
      std::uint8_t* head = batch_heads_.data() + i * kMaxServerHeader;
      std::size_t head_len =
          ws::encode_server_header(batch_[i].opcode, batch_[i].bytes.size(), head);
      if constexpr (kTls) {
        batch_bytes_.insert(batch_bytes_.end(), head, head + head_len);
        batch_bytes_.insert(batch_bytes_.end(), batch_[i].bytes.begin(), batch_[i].bytes.end());
      } else {
        batch_buffers_.push_back(asio::buffer(head, head_len));
        batch_buffers_.push_back(asio::buffer(batch_[i].bytes));
      }
    }
    if constexpr (kTls) batch_buffers_.push_back(asio::buffer(batch_bytes_));
    begin_write();
    error_code ec;
    co_await asio::async_write(ws_.next_layer(), batch_buffers_, ec_token(ec));
    end_write();
    if (ec) {
      log::debug("write to ", peer_text(), " failed: ", ec.message());
      co_return false;
    }
    co_return true;
  }

  Clock::time_point next_ping_at() const {
    return std::max(last_rx_, ping_sent_at_) + ping_interval_;
  }

  asio::awaitable<void> write_loop(std::shared_ptr<Connection> self) {
    auto& m = state_.metrics;
    bool may_yield = false;
    for (;;) {
      if (socket_closed_) break;
      auto now = Clock::now();
      if (outstanding_ping_ && now >= ping_deadline_) {
        m.ping_timeouts.fetch_add(1, std::memory_order_relaxed);
        log::debug("client ", endpoint_id().to_hex(), ": ping timeout");
        break;
      }
      if (!outstanding_ping_ && now >= next_ping_at()) {
        relay::Ping ping;
        randombytes_buf(ping.data.data(), ping.data.size());
        outstanding_ping_ = ping.data;
        ping_sent_at_ = now;
        ping_deadline_ = now + ping_timeout_;
        ping_interval_ = 16s + std::chrono::seconds(random_u32(5));
        auto encoded = relay::encode_server_frame(ping, version());
        if (!encoded || !co_await write_frame(*encoded, true)) break;
        continue;
      }
      std::size_t datagram_count = 0;
      decltype(drain_waiters_) waiters;
      {
        std::lock_guard lock(queue_mutex_);
        if (closed_) break;
        // Control frames first: the priority lane stays ahead of queued datagrams.
        datagram_count = queue_.pop_batch(batch_, kMaxBatchFrames, kMaxBatchBytes);
        if (!drain_waiters_.empty() && queue_.below_resume_mark()) waiters.swap(drain_waiters_);
        if (batch_.empty() && !may_yield) writer_waiting_ = true;
      }
      resume_waiters(waiters);
      if (!batch_.empty()) {
        bool sent = co_await write_batch();
        bool close_sent = false;
        if (!sent) {
          m.send_packets_dropped.fetch_add(datagram_count, std::memory_order_relaxed);
          m.dropped_write_error.fetch_add(datagram_count, std::memory_order_relaxed);
        } else {
          for (const auto& item : batch_) {
            const auto& frame = item.bytes;
            if (item.opcode == kClose) close_sent = true;
            if (item.opcode != kBinary || frame.empty()) continue;
            if (frame[0] == std::uint8_t(relay::FrameType::RelayToClientDatagram) ||
                frame[0] == std::uint8_t(relay::FrameType::RelayToClientDatagramBatch)) {
              std::size_t header =
                  frame[0] == std::uint8_t(relay::FrameType::RelayToClientDatagramBatch) ? 36 : 34;
              m.send_packets_sent.fetch_add(1, std::memory_order_relaxed);
              m.bytes_sent.fetch_add(frame.size() - std::min(header, frame.size()),
                                     std::memory_order_relaxed);
            } else if (frame[0] == std::uint8_t(relay::FrameType::Pong)) {
              m.sent_pong.fetch_add(1, std::memory_order_relaxed);
            }
          }
        }
        batch_.clear();
        if (!sent || close_sent) break;
        may_yield = true;
        continue;
      }
      // Before sleeping on the timer (timer and wake-up cost syscalls), let other handlers run
      // once: senders usually enqueue more, and the next write carries a batch.
      if (may_yield) {
        may_yield = false;
        co_await asio::post(ws_.get_executor(), asio::use_awaitable);
        continue;
      }
      // Idle: batch storage is only needed while busy.
      if (batch_.capacity() != 0) {
        batch_ = {};
        batch_heads_ = {};
        batch_buffers_ = {};
        batch_bytes_ = {};
      }
      wake_.expires_at(outstanding_ping_ ? ping_deadline_ : next_ping_at());
      error_code ec;
      co_await wake_.async_wait(ec_token(ec));
      std::lock_guard lock(queue_mutex_);
      writer_waiting_ = false;
    }
    close_socket();
    (void)self;
  }

  std::shared_ptr<RelayServiceState> state_owner_;  // outlives every connection
  RelayServiceState& state_;
  std::shared_ptr<const RelaySettings> settings_;  // limits as of the accept
  std::shared_ptr<ssl::context> tls_context_;      // before ws_: outlives the SSL stream
  std::optional<asio::ip::address> counted_ip_;
  std::optional<asio::ip::address> pre_auth_ip_;  // holds a pre-auth reservation while set
  websocket::stream<Stream> ws_;
  beast::flat_buffer buffer_;
  // Reader state (strand): bytes of buffer_ that belong to the message returned last, the
  // reassembly of a fragmented message, and the current message.
  std::size_t consumed_ = 0;
  std::vector<std::uint8_t> fragments_;
  bool in_fragments_ = false;
  bool fragments_complete_ = false;
  bool message_binary_ = false;
  relay::ByteSpan message_;
  std::size_t tls_read_chunk_ = kIdleReadBytes;
  std::size_t max_message_ = kMaxHandshakeMessage;
  std::array<std::uint8_t, 16> wait_bytes_{};
  // Writer state (strand), released whenever the writer goes idle.
  std::vector<QueuedFrame> batch_;
  std::vector<std::uint8_t> batch_heads_;
  std::vector<asio::const_buffer> batch_buffers_;
  std::vector<std::uint8_t> batch_bytes_;
  asio::steady_timer watchdog_;
  asio::steady_timer wake_;
  // Allocated when the reader is first throttled: idle clients stay small.
  std::unique_ptr<asio::steady_timer> throttle_timer_;
  ListenerRole role_;
  tcp::endpoint peer_;
  tcp::endpoint local_;

  std::mutex queue_mutex_;
  SendQueue queue_;
  // Senders throttled on this queue, resumed once it drains to its resume mark.
  std::vector<std::pair<RelayClientHandle*, std::weak_ptr<RelayClientHandle>>> drain_waiters_;
  bool writer_waiting_ = false;
  bool closed_ = false;
  // Steady-clock ticks when the write in flight started, 0 when none (read by senders).
  std::atomic<Clock::rep> write_started_ns_{0};
  // Reader back-pressure state (strand).
  bool throttled_ = false;
  bool budget_backoff_ = false;
  bool resume_signal_ = false;
  // Write watchdog (strand): SIOCOUTQ at the last check and when it last moved.
  int write_outq_ = -1;
  Clock::time_point write_progress_at_{};

  bool socket_closed_ = false;
  bool errored_ = false;
  bool registered_ = false;
  bool writing_ = false;
  bool watchdog_armed_ = false;
  bool rate_limited_once_ = false;
  Clock::time_point write_started_{};
  EndpointIdSet sent_to_;
  Clock::time_point last_rx_{};
  Clock::time_point ping_sent_at_{};
  Clock::time_point ping_deadline_{};
  Clock::duration ping_interval_{};
  Clock::duration p0_{};
  Clock::duration ping_timeout_ = 5s;
  std::optional<std::array<std::uint8_t, 8>> outstanding_ping_;
  std::optional<RxTokenBucket> rx_limit_;
};

asio::awaitable<void> accept_loop(std::shared_ptr<RelayServiceState> state,
                                  RelayServiceState::Listener& listener) {
  auto& ioc = static_cast<asio::io_context&>(listener.acceptor.get_executor().context());
  for (;;) {
    tcp::socket socket(asio::make_strand(ioc));
    error_code ec;
    co_await listener.acceptor.async_accept(socket, ec_token(ec));
    if (state->stopping.load()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !listener.acceptor.is_open()) co_return;
      log::warn("accept failed: ", ec.message());
      // e.g. EMFILE: back off instead of spinning.
      asio::steady_timer backoff(listener.acceptor.get_executor(), 50ms);
      co_await backoff.async_wait(ec_token(ec));
      continue;
    }
    auto settings = state->settings();
    std::optional<asio::ip::address> counted_ip, pre_auth_ip;
    auto peer = socket.remote_endpoint(ec);
    if (ec) {
      // Gone before we looked.
      socket.close(ec);
      continue;
    }
    const auto ip = counted_address(peer);
    // Limits are checked cheapest first; a rejected connection is closed without a response.
    const char* rejected = nullptr;
    if (listener.role == ListenerRole::RelayService) {
      if (state->metrics.open_connections.load(std::memory_order_relaxed) >=
          std::int64_t(settings->limits.max_connections)) {
        rejected = "max_connections";
      } else if (!state->take_accept_token(settings->limits)) {
        rejected = "accept_conn_limit";
      }
    }
    if (!rejected) {
      rejected = state->take_pre_auth(ip, settings->limits);
      if (!rejected) pre_auth_ip = ip;
    }
    if (!rejected && listener.role == ListenerRole::RelayService &&
        settings->limits.max_connections_per_ip) {
      if (state->add_ip(ip, settings->limits)) {
        counted_ip = ip;
      } else {
        rejected = "max_connections_per_ip";
        state->release_pre_auth(ip);
      }
    }
    if (rejected) {
      log::debug("connection rejected (", rejected, ")");
      state->metrics.connections_rejected.fetch_add(1, std::memory_order_relaxed);
      socket.close(ec);
      continue;
    }
    if (listener.tls) {
      using S = ssl::stream<tcp::socket>;
      auto ctx = state->tls_context();
      auto& ctx_ref = *ctx;
      auto conn = std::make_shared<Connection<S>>(
          state, listener.role, std::move(settings), std::move(ctx), std::move(counted_ip),
          std::move(pre_auth_ip), std::move(socket), ctx_ref);
      asio::co_spawn(conn->executor(), conn->run(conn), asio::detached);
    } else {
      auto conn = std::make_shared<Connection<tcp::socket>>(
          state, listener.role, std::move(settings), nullptr, std::move(counted_ip),
          std::move(pre_auth_ip), std::move(socket));
      asio::co_spawn(conn->executor(), conn->run(conn), asio::detached);
    }
  }
}

void register_builtin_routes(RelayServiceState& state, bool plain_mode) {
  auto& r = state.relay_router;
  // /, /index.html, /healthz; the binary registers them again with the lookup store and the
  // shared metrics registry as further sources.
  StatusPageSources status;
  status.config = &state.config;
  status.relay = &state.metrics;
  add_status_routes(r, std::move(status));
  r.add(http::verb::get, "/ping",
        [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
          auto res = make_response(req, http::status::ok);
          res.set(http::field::access_control_allow_origin, "*");
          co_return res;
        });
  r.add(http::verb::get, "/robots.txt",
        [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
          co_return make_response(req, http::status::ok, "User-agent: *\nDisallow: /\n");
        });
  auto captive = [](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
    auto res = make_response(req, http::status::no_content);
    if (auto it = req.find("X-Iroh-Challenge"); it != req.end()) {
      if (auto value = captive_portal_response(it->value())) res.set("X-Iroh-Response", *value);
    }
    co_return res;
  };
  if (plain_mode) r.add(http::verb::get, "/generate_204", captive);
  state.captive_router.add(http::verb::get, "/generate_204", captive);
}

}  // namespace

RelayService::RelayService(const config::Config& config, RelayMetrics& metrics)
    : state_(std::make_shared<RelayServiceState>(config, metrics)) {
  bool tls_mode = config.tls && !config.dev && !config.tls->dangerous_http_only;
  if (tls_mode && config.enable_relay) {
    state_->set_tls_context(make_server_tls_context(config));
    state_->tls_mode = true;
  }
  register_builtin_routes(*state_, !tls_mode);
}

RelayService::~RelayService() {
  stop();
}

HttpRouter& RelayService::router() {
  return state_->relay_router;
}

HttpRouter& RelayService::plain_router() {
  return state_->tls_mode ? state_->captive_router : state_->relay_router;
}

bool RelayService::tls_mode() const {
  return state_->tls_mode;
}

void RelayService::apply(const config::Config& next) {
  // Builds everything first: a throw leaves the running settings untouched.
  auto access = std::make_shared<AccessControl>(next.access, next.source.string());
  state_->set_settings(std::make_shared<RelaySettings>(RelaySettings{next.limits, access}));
}

void RelayService::set_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx) {
  state_->set_tls_context(std::move(ctx));
}

void RelayService::drain(std::chrono::milliseconds reconnect_in,
                         std::chrono::milliseconds try_for) {
  stop_accepting();
  relay::Restarting restarting{std::uint32_t(reconnect_in.count()), std::uint32_t(try_for.count())};
  state_->connections.for_each([&](TrackedConnection& c) { c.drain(restarting); });
}

void RelayService::stop_accepting() {
  if (state_->stopping.exchange(true)) return;
  for (auto& l : state_->listeners) {
    asio::post(l->acceptor.get_executor(), [state = state_, l = l.get()] {
      error_code ec;
      l->acceptor.close(ec);
    });
  }
}

void RelayService::start(asio::io_context& ioc) {
  const auto& cfg = state_->config;
  if (!cfg.enable_relay) return;
  auto open = [&](const config::SocketAddr& addr, ListenerRole role, bool tls) {
    auto ep = resolve_bind_addr(addr);
    auto listener = std::make_unique<RelayServiceState::Listener>(
        RelayServiceState::Listener{tcp::acceptor(asio::make_strand(ioc)), role, tls});
    auto& a = listener->acceptor;
    a.open(ep.protocol());
    a.set_option(asio::socket_base::reuse_address(true));
    if (ep.address().is_v6()) {
      error_code ignored;
      a.set_option(asio::ip::v6_only(false), ignored);
    }
    a.bind(ep);
    a.listen(asio::socket_base::max_listen_connections);
    auto bound = a.local_endpoint();
    // Stable format, parsed by tests and scripts: "listening <http|https> on <ip:port>".
    log::info("listening ", tls ? "https" : "http", " on ", format_endpoint(bound));
    (tls ? state_->https_endpoint : state_->http_endpoint) = bound;
    asio::co_spawn(a.get_executor(), accept_loop(state_, *listener), asio::detached);
    state_->listeners.push_back(std::move(listener));
  };
  if (state_->tls_mode) {
    open(cfg.tls->https_bind_addr, ListenerRole::RelayService, true);
    open(cfg.http_bind_addr, ListenerRole::CaptivePortal, false);
  } else {
    open(cfg.http_bind_addr, ListenerRole::RelayService, false);
  }
}

void RelayService::stop() {
  stop_accepting();
  state_->connections.close_all();
}

std::optional<tcp::endpoint> RelayService::http_endpoint() const {
  return state_->http_endpoint;
}
std::optional<tcp::endpoint> RelayService::https_endpoint() const {
  return state_->https_endpoint;
}
RelayQueueDepth RelayService::queue_depth() const {
  return state_->registry.queue_depth();
}
std::size_t RelayService::client_count() const {
  return state_->registry.endpoint_count();
}
std::int64_t RelayService::open_connections() const {
  return state_->metrics.open_connections.load();
}

}  // namespace iroh::server
