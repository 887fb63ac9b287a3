#include "iroh/relay_client.hpp"

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <list>
#include <type_traits>

#include "transport.hpp"

namespace iroh::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

using PlainWs = websocket::stream<tcp::socket>;
using TlsWs = websocket::stream<asio::ssl::stream<tcp::socket>>;

using RelayUrl = detail::ParsedUrl;

std::string join_subprotocols(const std::vector<relay::ProtocolVersion>& versions) {
  std::string out;
  for (auto v : versions) {
    if (!out.empty()) out += ", ";
    out += relay::subprotocol_name(v);
  }
  return out;
}

relay::ByteSpan as_span(const beast::flat_buffer& buffer) {
  auto data = buffer.cdata();
  return {static_cast<const std::uint8_t*>(data.data()), data.size()};
}

constexpr auto kNever = asio::steady_timer::time_point::max();
// A graceful close that has not finished by then is cut at the TCP level.
constexpr std::chrono::seconds kCloseGrace{3};
// Bounds the bytes a misbehaving server can make us buffer for control frames (Pongs).
constexpr std::size_t kControlQueueCapacity = 64;

}  // namespace

class RelayClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::any_io_executor executor, std::string_view relay_url, relay::SecretKey secret_key,
       RelayClientOptions options)
      : executor_(std::move(executor)),
        url_(detail::parse_url(relay_url)),
        secret_key_(secret_key),
        endpoint_id_(secret_key.public_key()),
        options_(std::move(options)),
        write_signal_(executor_, kNever),
        receive_signal_(executor_, kNever),
        space_signal_(executor_, kNever),
        deadline_(executor_) {
    if (options_.protocols.empty()) {
      options_.protocols = {relay::ProtocolVersion::V2, relay::ProtocolVersion::V1};
    }
    if (url_.tls) {
      tls_context_ = options_.tls_context
                         ? options_.tls_context
                         : detail::make_tls_context(options_.ca_file, options_.verify_tls);
    }
  }

  enum class State { Idle, Connecting, Open, Closing, Closed };

  asio::awaitable<void> connect() {
    if (state_ != State::Idle) {
      throw RelayClientError(Errc::Closed, "connect() may be called only once");
    }
    state_ = State::Connecting;
    auto self = shared_from_this();
    deadline_.expires_after(options_.connect_timeout);
    deadline_.async_wait([self](error_code ec) {
      if (ec || self->state_ != State::Connecting) return;
      self->timed_out_ = true;
      self->abort_transport();
    });
    try {
      if (url_.tls) {
        auto& ws = stream_.emplace<TlsWs>(executor_, *tls_context_);
        co_await connect_on(ws);
      } else {
        auto& ws = stream_.emplace<PlainWs>(executor_);
        co_await connect_on(ws);
      }
    } catch (const RelayClientError& e) {
      throw connect_failed(e);
    } catch (const boost::system::system_error& e) {
      throw connect_failed(RelayClientError(Errc::Io, e.code().message(), e.code()));
    }
    deadline_.cancel();
    if (state_ != State::Connecting) {
      // close() ran while the last handshake step was completing.
      throw RelayClientError(Errc::Closed, "closed during connect");
    }
    state_ = State::Open;
    if (auto* ws = std::get_if<PlainWs>(&stream_)) {
      start_loops(*ws);
    } else {
      start_loops(std::get<TlsWs>(stream_));
    }
  }

  bool send(const relay::EndpointId& dst, std::uint16_t segment_size, relay::ByteSpan contents,
            relay::Ecn ecn) {
    if (state_ != State::Open) {
      ++stats_.send_dropped_closed;
      return false;
    }
    if (data_queue_.size() >= options_.send_queue_capacity) {
      ++stats_.send_dropped_queue_full;
      return false;
    }
    auto frame = relay::encode_client_datagram(dst, ecn, segment_size, contents);
    if (!frame) {
      ++stats_.send_dropped_invalid;
      return false;
    }
    data_queue_.push_back(std::move(*frame));
    ++stats_.datagrams_queued;
    wake_writer();
    return true;
  }

  std::size_t send_queue_space() const {
    if (state_ != State::Open) return 0;
    auto used = data_queue_.size();
    return used >= options_.send_queue_capacity ? 0 : options_.send_queue_capacity - used;
  }

  asio::awaitable<void> wait_send_space(std::size_t free_slots) {
    auto self = shared_from_this();
    if (space_waiting_) throw std::logic_error("RelayClient::wait_send_space() is already waiting");
    space_wanted_ = std::clamp<std::size_t>(free_slots, 1, options_.send_queue_capacity);
    for (;;) {
      if (state_ == State::Idle || state_ == State::Connecting) {
        throw RelayClientError(Errc::NotConnected, {});
      }
      if (state_ != State::Open) throw end_error();
      if (send_queue_space() >= space_wanted_) co_return;
      space_waiting_ = true;
      error_code ec;
      space_signal_.expires_at(kNever);
      co_await space_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      space_waiting_ = false;
      auto cancellation = co_await asio::this_coro::cancellation_state;
      if (cancellation.cancelled() != asio::cancellation_type::none) {
        throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
  }

  asio::awaitable<Received> receive() {
    auto self = shared_from_this();
    if (receive_waiting_) throw std::logic_error("RelayClient::receive() is already waiting");
    for (;;) {
      if (!receive_queue_.empty()) {
        Received event = std::move(receive_queue_.front());
        receive_queue_.pop_front();
        co_return event;
      }
      if (state_ == State::Idle || state_ == State::Connecting) {
        throw RelayClientError(Errc::NotConnected, {});
      }
      if (state_ == State::Closed) throw end_error();
      receive_waiting_ = true;
      error_code ec;
      receive_signal_.expires_at(kNever);
      co_await receive_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      receive_waiting_ = false;
      // Our own wake-ups cancel the signal timer too; only a cancelled caller stops the wait.
      auto cancellation = co_await asio::this_coro::cancellation_state;
      if (cancellation.cancelled() != asio::cancellation_type::none) {
        throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
  }

  asio::awaitable<std::chrono::microseconds> ping() {
    auto self = shared_from_this();
    if (state_ == State::Idle || state_ == State::Connecting) {
      throw RelayClientError(Errc::NotConnected, {});
    }
    if (state_ != State::Open) throw end_error();
    PendingPing pending{{}, asio::steady_timer(executor_, options_.ping_timeout), std::nullopt};
    RAND_bytes(pending.data.data(), static_cast<int>(pending.data.size()));
    auto started = std::chrono::steady_clock::now();
    auto slot = pending_pings_.insert(pending_pings_.end(), &pending);
    struct Unlink {
      std::list<PendingPing*>& list;
      std::list<PendingPing*>::iterator slot;
      ~Unlink() { list.erase(slot); }
    } unlink{pending_pings_, slot};
    push_control(relay::encode_client_frame(relay::Ping{pending.data}));
    error_code ec;
    co_await pending.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (pending.pong_at) {
      co_return std::chrono::duration_cast<std::chrono::microseconds>(*pending.pong_at - started);
    }
    if (state_ == State::Closed || state_ == State::Closing) throw end_error();
    throw RelayClientError(
        Errc::PingTimeout,
        "no Pong within " + std::to_string(options_.ping_timeout.count()) + " ms");
  }

  void close() {
    switch (state_) {
      case State::Idle:
        state_ = State::Closed;
        end_ = RelayClientError(Errc::Closed, "closed by the application");
        return;
      case State::Connecting:
        fail(RelayClientError(Errc::Closed, "closed by the application"));
        return;
      case State::Open:
        break;
      case State::Closing:
      case State::Closed:
        return;
    }
    state_ = State::Closing;
    end_ = RelayClientError(Errc::Closed, "closed by the application");
    auto self = shared_from_this();
    deadline_.expires_after(kCloseGrace);
    deadline_.async_wait([self](error_code ec) {
      if (ec || self->state_ == State::Closed) return;
      self->fail(RelayClientError(Errc::Closed, "closed by the application"));
    });
    wake_writer();
    // Pending ping()s end now rather than after their timeout.
    for (auto* p : pending_pings_) p->timer.cancel();
    receive_signal_.cancel();
    space_signal_.cancel();
  }

  const relay::EndpointId& endpoint_id() const { return endpoint_id_; }
  relay::ProtocolVersion protocol_version() const { return version_; }
  bool is_connected() const { return state_ == State::Open; }
  bool authenticated_by_header() const { return authenticated_by_header_; }
  const RelayClientStats& stats() const { return stats_; }
  asio::any_io_executor get_executor() const { return executor_; }

 private:
  struct PendingPing {
    std::array<std::uint8_t, 8> data;
    asio::steady_timer timer;
    std::optional<std::chrono::steady_clock::time_point> pong_at;
  };

  template <class Ws>
  static constexpr bool kIsTls = std::is_same_v<Ws, TlsWs>;

  template <class Ws>
  asio::awaitable<void> connect_on(Ws& ws) {
    auto self = shared_from_this();
    resolver_.emplace(executor_);
    auto endpoints = co_await resolver_->async_resolve(url_.host, std::to_string(url_.port),
                                                       asio::use_awaitable);
    auto& socket = beast::get_lowest_layer(ws);
    co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
    resolver_.reset();
    socket.set_option(tcp::no_delay(true));

    std::string auth_header;
    if constexpr (kIsTls<Ws>) {
      SSL* ssl = ws.next_layer().native_handle();
      detail::prepare_tls(ssl, url_);
      error_code ec;
      co_await ws.next_layer().async_handshake(asio::ssl::stream_base::client,
                                               asio::redirect_error(asio::use_awaitable, ec));
      if (ec) throw RelayClientError(Errc::Tls, detail::describe_tls_failure(ssl, ec), ec);
      if (options_.key_material_auth) {
        std::array<std::uint8_t, 32> ekm{};
        if (SSL_export_keying_material(ssl, ekm.data(), ekm.size(), relay::kExporterLabel.data(),
                                       relay::kExporterLabel.size(), endpoint_id_.bytes.data(),
                                       endpoint_id_.bytes.size(), 1) == 1) {
          auth_header = relay::encode_auth_header(relay::sign_key_material(secret_key_, ekm));
        }
      }
    }

    ws.binary(true);
    ws.auto_fragment(false);
    ws.read_message_max(relay::kMaxFrameSize);
    ws.set_option(websocket::stream_base::decorator(
        [protocols = join_subprotocols(options_.protocols), token = options_.auth_token,
         auth_header](websocket::request_type& req) {
          req.set(http::field::sec_websocket_protocol, protocols);
          if (token) req.set(http::field::authorization, "Bearer " + *token);
          if (!auth_header.empty()) req.set(relay::kAuthHeader, auth_header);
        }));
    websocket::response_type response;
    error_code ec;
    co_await ws.async_handshake(response, url_.host_header, "/relay",
                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec == websocket::error::upgrade_declined) {
      std::string reason = "HTTP " + std::to_string(response.result_int());
      if (!response.body().empty()) reason += ": " + response.body().substr(0, 200);
      throw RelayClientError(Errc::Upgrade, reason, ec);
    }
    if (ec) throw RelayClientError(Errc::Io, ec.message(), ec);
    auto chosen = response[http::field::sec_websocket_protocol];
    auto offered = std::find_if(options_.protocols.begin(), options_.protocols.end(),
                                [&](auto v) { return relay::subprotocol_name(v) == chosen; });
    if (offered == options_.protocols.end()) {
      throw RelayClientError(Errc::Upgrade,
                             "server chose subprotocol '" + std::string(chosen) + "'");
    }
    version_ = *offered;
    co_await handshake(ws, !auth_header.empty());
  }

  // §4.2 client side: ServerConfirmsAuth directly (header accepted), or challenge first.
  template <class Ws>
  asio::awaitable<void> handshake(Ws& ws, bool sent_header) {
    beast::flat_buffer buffer;
    bool answered_challenge = false;
    for (;;) {
      buffer.clear();
      co_await ws.async_read(buffer, asio::use_awaitable);
      if (!ws.got_binary()) continue;
      auto decoded = relay::decode_handshake(as_span(buffer));
      if (auto* err = std::get_if<relay::DecodeError>(&decoded)) {
        throw RelayClientError(Errc::Protocol,
                               "bad handshake message: " + std::string(relay::to_string(*err)));
      }
      auto& msg = std::get<relay::HandshakeMessage>(decoded);
      if (auto* challenge = std::get_if<relay::ServerChallenge>(&msg)) {
        if (answered_challenge) throw RelayClientError(Errc::Protocol, "second ServerChallenge");
        answered_challenge = true;
        auto reply = relay::encode(relay::sign_challenge(secret_key_, challenge->challenge));
        co_await ws.async_write(asio::buffer(reply), asio::use_awaitable);
        continue;
      }
      if (std::holds_alternative<relay::ServerConfirmsAuth>(msg)) {
        authenticated_by_header_ = sent_header && !answered_challenge;
        co_return;
      }
      if (auto* denied = std::get_if<relay::ServerDeniesAuth>(&msg)) {
        throw RelayClientError(Errc::AuthDenied, denied->reason);
      }
      throw RelayClientError(Errc::Protocol, "unexpected handshake message");
    }
  }

  template <class Ws>
  void start_loops(Ws& ws) {
    asio::co_spawn(executor_, read_loop(shared_from_this(), ws), asio::detached);
    asio::co_spawn(executor_, write_loop(shared_from_this(), ws), asio::detached);
  }

  // `self` keeps the client alive while the loops run, even after ~RelayClient.
  template <class Ws>
  static asio::awaitable<void> read_loop(std::shared_ptr<Impl> self, Ws& ws) {
    beast::flat_buffer buffer;
    for (;;) {
      error_code ec;
      buffer.clear();
      co_await ws.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (self->state_ == State::Closing) {
          self->fail(self->end_error());
        } else {
          self->fail(RelayClientError(Errc::Closed, "connection lost: " + ec.message(), ec));
        }
        co_return;
      }
      if (self->state_ == State::Closed) co_return;
      if (!ws.got_binary()) continue;
      auto decoded =
          relay::decode_server_frame(as_span(buffer), self->version_, relay::KeyCheck::Skip);
      if (std::holds_alternative<relay::ServerFrame>(decoded) &&
          !self->key_is_valid(std::get<relay::ServerFrame>(decoded))) {
        decoded = relay::DecodeError::InvalidKey;
      }
      if (auto* err = std::get_if<relay::DecodeError>(&decoded)) {
        self->fail(RelayClientError(
            Errc::Protocol, "bad frame from relay: " + std::string(relay::to_string(*err))));
        co_return;
      }
      std::visit([&](auto& frame) { self->on_frame(frame); },
                 std::get<relay::ServerFrame>(decoded));
    }
  }

  template <class Ws>
  static asio::awaitable<void> write_loop(std::shared_ptr<Impl> self, Ws& ws) {
    for (;;) {
      if (self->state_ == State::Closed) co_return;
      relay::Bytes message;
      bool is_datagram = false;
      if (!self->control_queue_.empty()) {
        message = std::move(self->control_queue_.front());
        self->control_queue_.pop_front();
      } else if (!self->data_queue_.empty()) {
        message = std::move(self->data_queue_.front());
        self->data_queue_.pop_front();
        is_datagram = true;
        if (self->space_waiting_ && self->send_queue_space() >= self->space_wanted_) {
          self->space_signal_.cancel();
        }
      } else if (self->state_ == State::Closing) {
        error_code ec;
        co_await ws.async_close(websocket::close_code::normal,
                                asio::redirect_error(asio::use_awaitable, ec));
        self->fail(self->end_error());
        co_return;
      } else {
        error_code ec;
        self->writer_waiting_ = true;
        self->write_signal_.expires_at(kNever);
        co_await self->write_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        self->writer_waiting_ = false;
        continue;
      }
      error_code ec;
      co_await ws.async_write(asio::buffer(message), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        self->fail(RelayClientError(Errc::Closed, "write failed: " + ec.message(), ec));
        co_return;
      }
      if (is_datagram) ++self->stats_.datagrams_written;
    }
  }

  bool key_is_valid(const relay::ServerFrame& frame) {
    const relay::EndpointId* key = nullptr;
    if (auto* d = std::get_if<relay::Datagram>(&frame)) key = &d->peer;
    if (auto* g = std::get_if<relay::EndpointGone>(&frame)) key = &g->endpoint;
    if (!key) return true;
    for (const auto& known : valid_keys_) {
      if (known == *key) return true;
    }
    if (!key->is_valid_point()) return false;
    valid_keys_[valid_keys_next_] = *key;
    valid_keys_next_ = (valid_keys_next_ + 1) % valid_keys_.size();
    return true;
  }

  void on_frame(const relay::Datagram& d) {
    ++stats_.datagrams_received;
    push_event(ReceivedDatagram{d.peer, d.ecn, d.segment_size,
                                relay::Bytes(d.contents.begin(), d.contents.end())});
  }
  void on_frame(const relay::Ping& p) {
    ++stats_.pings_answered;
    push_control(relay::encode_client_frame(relay::Pong{p.data}));
  }
  void on_frame(const relay::Pong& p) {
    for (auto* pending : pending_pings_) {
      if (!pending->pong_at && pending->data == p.data) {
        pending->pong_at = std::chrono::steady_clock::now();
        pending->timer.cancel();
        return;
      }
    }
    push_event(p);
  }
  template <class Event>
  void on_frame(const Event& e) {
    push_event(e);
  }

  void push_event(Received event) {
    if (receive_queue_.size() >= options_.receive_queue_capacity) {
      ++stats_.receive_dropped_queue_full;
      return;
    }
    receive_queue_.push_back(std::move(event));
    if (receive_waiting_) receive_signal_.cancel();
  }

  void push_control(relay::Bytes frame) {
    if (control_queue_.size() >= kControlQueueCapacity) return;
    control_queue_.push_back(std::move(frame));
    wake_writer();
  }

  void wake_writer() {
    if (writer_waiting_) write_signal_.cancel();
  }

  RelayClientError end_error() const { return end_ ? *end_ : RelayClientError(Errc::Closed, {}); }

  void abort_transport() {
    if (resolver_) resolver_->cancel();
    error_code ignored;
    std::visit(
        [&](auto& ws) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(ws)>, std::monostate>) {
            beast::get_lowest_layer(ws).close(ignored);
          }
        },
        stream_);
  }

  // Ends the connection: wakes every waiter; the first error is the one receive() reports.
  void fail(const RelayClientError& error) {
    if (state_ == State::Closed) return;
    state_ = State::Closed;
    if (!end_) end_ = error;
    abort_transport();
    deadline_.cancel();
    write_signal_.cancel();
    receive_signal_.cancel();
    space_signal_.cancel();
    for (auto* p : pending_pings_) p->timer.cancel();
    data_queue_.clear();
    control_queue_.clear();
  }

  // The error connect() reports: a timeout or close() explains an aborted operation better
  // than the aborted operation itself.
  RelayClientError connect_failed(const RelayClientError& error) {
    if (timed_out_) {
      fail(RelayClientError(
          Errc::Timeout,
          "no connection within " + std::to_string(options_.connect_timeout.count()) + " ms"));
    } else {
      fail(error);
    }
    return end_error();
  }

  asio::any_io_executor executor_;
  RelayUrl url_;
  relay::SecretKey secret_key_;
  relay::EndpointId endpoint_id_;
  RelayClientOptions options_;
  std::shared_ptr<asio::ssl::context> tls_context_;
  std::variant<std::monostate, PlainWs, TlsWs> stream_;
  std::optional<tcp::resolver> resolver_;
  State state_ = State::Idle;
  relay::ProtocolVersion version_ = relay::ProtocolVersion::V2;
  bool authenticated_by_header_ = false;
  bool timed_out_ = false;
  std::optional<RelayClientError> end_;

  std::deque<relay::Bytes> control_queue_;  // Pong/Ping: written before any datagram
  std::deque<relay::Bytes> data_queue_;
  bool writer_waiting_ = false;
  asio::steady_timer write_signal_;  // cancelled to wake the writer

  std::deque<Received> receive_queue_;
  bool receive_waiting_ = false;
  asio::steady_timer receive_signal_;  // cancelled to wake receive()

  bool space_waiting_ = false;
  std::size_t space_wanted_ = 1;
  asio::steady_timer space_signal_;  // cancelled to wake wait_send_space()

  // Keys seen recently in frames from the relay: a datagram stream from the same peer skips the
  // point decompression after the first frame.
  std::array<relay::EndpointId, 4> valid_keys_{};
  std::size_t valid_keys_next_ = 0;

  asio::steady_timer deadline_;  // connect timeout, then close grace period
  std::list<PendingPing*> pending_pings_;
  RelayClientStats stats_;
};

RelayClient::RelayClient(asio::any_io_executor executor, std::string_view relay_url,
                         relay::SecretKey secret_key, RelayClientOptions options)
    : impl_(
          std::make_shared<Impl>(std::move(executor), relay_url, secret_key, std::move(options))) {}

RelayClient::~RelayClient() {
  if (impl_) impl_->close();
}

RelayClient::RelayClient(RelayClient&&) noexcept = default;

RelayClient& RelayClient::operator=(RelayClient&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

asio::awaitable<void> RelayClient::connect() {
  auto impl = impl_;
  co_await impl->connect();
}

bool RelayClient::send(const relay::EndpointId& dst, relay::ByteSpan contents, relay::Ecn ecn) {
  return impl_->send(dst, 0, contents, ecn);
}

bool RelayClient::send_batch(const relay::EndpointId& dst, std::uint16_t segment_size,
                             relay::ByteSpan contents, relay::Ecn ecn) {
  return impl_->send(dst, segment_size, contents, ecn);
}

asio::awaitable<Received> RelayClient::receive() {
  auto impl = impl_;
  co_return co_await impl->receive();
}

asio::awaitable<std::chrono::microseconds> RelayClient::ping() {
  auto impl = impl_;
  co_return co_await impl->ping();
}

std::size_t RelayClient::send_queue_space() const {
  return impl_->send_queue_space();
}

asio::awaitable<void> RelayClient::wait_send_space(std::size_t free_slots) {
  auto impl = impl_;
  co_await impl->wait_send_space(free_slots);
}

namespace {
asio::awaitable<void> receive_into(std::shared_ptr<RelayClient::Impl> impl,
                                   std::function<void(Received)> on_event,
                                   std::function<void(const RelayClientError&)> on_end) {
  for (;;) {
    std::optional<RelayClientError> end;
    try {
      Received event = co_await impl->receive();
      on_event(std::move(event));
      continue;
    } catch (const RelayClientError& e) {
      end = e;
    } catch (const std::exception& e) {
      end = RelayClientError(Errc::Closed, e.what());
    }
    if (on_end) on_end(*end);
    co_return;
  }
}
}  // namespace

void RelayClient::start_receiving(std::function<void(Received)> on_event,
                                  std::function<void(const RelayClientError&)> on_end) {
  asio::co_spawn(impl_->get_executor(), receive_into(impl_, std::move(on_event), std::move(on_end)),
                 asio::detached);
}

void RelayClient::close() {
  impl_->close();
}

const relay::EndpointId& RelayClient::endpoint_id() const {
  return impl_->endpoint_id();
}
relay::ProtocolVersion RelayClient::protocol_version() const {
  return impl_->protocol_version();
}
bool RelayClient::is_connected() const {
  return impl_->is_connected();
}
bool RelayClient::authenticated_by_header() const {
  return impl_->authenticated_by_header();
}
const RelayClientStats& RelayClient::stats() const {
  return impl_->stats();
}
asio::any_io_executor RelayClient::get_executor() const {
  return impl_->get_executor();
}

}  // namespace iroh::client
