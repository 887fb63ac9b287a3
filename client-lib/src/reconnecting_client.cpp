#include "iroh/reconnecting_client.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <random>

namespace iroh::client {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto kNever = asio::steady_timer::time_point::max();
}

class ReconnectingRelayClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::any_io_executor executor, std::string url, relay::SecretKey key,
       RelayClientOptions options, ReconnectOptions reconnect)
      : executor_(std::move(executor)),
        url_(std::move(url)),
        key_(key),
        id_(key.public_key()),
        options_(std::move(options)),
        reconnect_(reconnect),
        signal_(executor_, kNever),
        backoff_(executor_),
        rng_(std::random_device{}()) {
    reconnect_.initial_backoff = std::max(reconnect_.initial_backoff, std::chrono::milliseconds(1));
    reconnect_.max_backoff = std::max(reconnect_.max_backoff, reconnect_.initial_backoff);
    reconnect_.factor = std::max(reconnect_.factor, 1.0);
    reconnect_.jitter = std::clamp(reconnect_.jitter, 0.0, 1.0);
    // Fail fast on a bad URL, as RelayClient does.
    RelayClient probe(executor_, url_, key_, options_);
    probe.close();
  }

  void start() {
    if (started_ || closed_) return;
    started_ = true;
    asio::co_spawn(executor_, supervise(shared_from_this()), asio::detached);
  }

  bool send(const relay::EndpointId& dst, relay::ByteSpan contents, relay::Ecn ecn) {
    if (!current_ || !current_->is_connected()) {
      ++stats_.send_dropped_disconnected;
      return false;
    }
    return current_->send(dst, contents, ecn);
  }

  asio::awaitable<ClientEvent> receive() {
    auto self = shared_from_this();
    if (waiting_) throw std::logic_error("ReconnectingRelayClient::receive() is already waiting");
    for (;;) {
      if (!events_.empty()) {
        ClientEvent event = std::move(events_.front());
        events_.pop_front();
        co_return event;
      }
      if (finished_) throw RelayClientError(Errc::Closed, "relay client closed");
      waiting_ = true;
      error_code ec;
      signal_.expires_at(kNever);
      co_await signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      waiting_ = false;
      auto cancellation = co_await asio::this_coro::cancellation_state;
      if (cancellation.cancelled() != asio::cancellation_type::none) {
        throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
  }

  asio::awaitable<std::chrono::microseconds> ping() {
    auto client = current_;
    if (!client) throw RelayClientError(Errc::NotConnected, "no relay connection right now");
    co_return co_await client->ping();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (current_) current_->close();
    if (dialing_) dialing_->close();
    backoff_.cancel();
    if (!started_) finish();
  }

  bool is_connected() const { return current_ && current_->is_connected(); }
  asio::any_io_executor executor() const { return executor_; }
  const relay::EndpointId& endpoint_id() const { return id_; }
  const ReconnectingStats& stats() const { return stats_; }

 private:
  static asio::awaitable<void> supervise(std::shared_ptr<Impl> self) {
    std::uint64_t attempt = 0;
    auto delay = self->reconnect_.initial_backoff;
    while (!self->closed_) {
      ++attempt;
      auto client =
          std::make_shared<RelayClient>(self->executor_, self->url_, self->key_, self->options_);
      self->dialing_ = client;
      std::optional<RelayClientError> failure;
      try {
        co_await client->connect();
      } catch (const RelayClientError& e) {
        failure = e;
      } catch (const std::exception& e) {
        failure = RelayClientError(Errc::Io, e.what());
      }
      self->dialing_.reset();
      if (self->closed_) {
        client->close();
        break;
      }
      if (!failure) {
        self->current_ = client;
        ++self->stats_.connections;
        self->push(Connected{self->stats_.connections, attempt, client->protocol_version()});
        attempt = 0;
        delay = self->reconnect_.initial_backoff;
        co_await pump(self, *client, failure);
        self->current_.reset();
        if (self->closed_) break;
        // An established connection failed: the first redial is immediate.
        self->push(Disconnected{*failure, std::chrono::milliseconds(0), false});
        continue;
      }
      ++self->stats_.dial_failures;
      bool give_up = self->reconnect_.max_attempts != 0 && attempt >= self->reconnect_.max_attempts;
      auto wait = give_up ? std::chrono::milliseconds(0) : self->jittered(delay);
      self->push(Disconnected{*failure, wait, give_up});
      if (give_up) break;
      delay = std::min(std::chrono::milliseconds(static_cast<std::int64_t>(
                           static_cast<double>(delay.count()) * self->reconnect_.factor)),
                       self->reconnect_.max_backoff);
      error_code ec;
      self->backoff_.expires_after(wait);
      co_await self->backoff_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    self->finish();
  }

  // Forwards the connection's events until it ends; `failure` gets the reason.
  static asio::awaitable<void> pump(std::shared_ptr<Impl> self, RelayClient& client,
                                    std::optional<RelayClientError>& failure) {
    for (;;) {
      try {
        Received event = co_await client.receive();
        self->push(
            std::visit([](auto&& e) -> ClientEvent { return std::move(e); }, std::move(event)));
        continue;
      } catch (const RelayClientError& e) {
        failure = e;
      } catch (const std::exception& e) {
        failure = RelayClientError(Errc::Closed, e.what());
      }
      co_return;
    }
  }

  std::chrono::milliseconds jittered(std::chrono::milliseconds delay) {
    std::uniform_real_distribution<double> spread(1.0 - reconnect_.jitter, 1.0 + reconnect_.jitter);
    auto ms = static_cast<std::int64_t>(static_cast<double>(delay.count()) * spread(rng_));
    return std::chrono::milliseconds(std::max<std::int64_t>(ms, 1));
  }

  void push(ClientEvent event) {
    if (events_.size() >= options_.receive_queue_capacity) {
      ++stats_.events_dropped_queue_full;
      return;
    }
    events_.push_back(std::move(event));
    if (waiting_) signal_.cancel();
  }

  void finish() {
    finished_ = true;
    if (waiting_) signal_.cancel();
  }

  asio::any_io_executor executor_;
  std::string url_;
  relay::SecretKey key_;
  relay::EndpointId id_;
  RelayClientOptions options_;
  ReconnectOptions reconnect_;
  std::shared_ptr<RelayClient> current_;
  std::shared_ptr<RelayClient> dialing_;
  bool started_ = false;
  bool closed_ = false;
  bool finished_ = false;
  std::deque<ClientEvent> events_;
  bool waiting_ = false;
  asio::steady_timer signal_;
  asio::steady_timer backoff_;
  std::mt19937 rng_;
  ReconnectingStats stats_;
};

ReconnectingRelayClient::ReconnectingRelayClient(asio::any_io_executor executor,
                                                 std::string relay_url, relay::SecretKey secret_key,
                                                 RelayClientOptions options,
                                                 ReconnectOptions reconnect)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(relay_url), secret_key,
                                   std::move(options), reconnect)) {}

ReconnectingRelayClient::~ReconnectingRelayClient() {
  if (impl_) impl_->close();
}

void ReconnectingRelayClient::start() {
  impl_->start();
}

bool ReconnectingRelayClient::send(const relay::EndpointId& dst, relay::ByteSpan contents,
                                   relay::Ecn ecn) {
  return impl_->send(dst, contents, ecn);
}

asio::awaitable<ClientEvent> ReconnectingRelayClient::receive() {
  auto impl = impl_;
  co_return co_await impl->receive();
}

namespace {
asio::awaitable<void> deliver(std::shared_ptr<ReconnectingRelayClient::Impl> impl,
                              std::function<void(ClientEvent)> on_event) {
  for (;;) {
    try {
      ClientEvent event = co_await impl->receive();
      on_event(std::move(event));
      continue;
    } catch (const std::exception&) {
    }
    co_return;
  }
}
}  // namespace

void ReconnectingRelayClient::start_receiving(std::function<void(ClientEvent)> on_event) {
  auto executor = impl_->executor();
  asio::co_spawn(executor, deliver(impl_, std::move(on_event)), asio::detached);
}

asio::awaitable<std::chrono::microseconds> ReconnectingRelayClient::ping() {
  auto impl = impl_;
  co_return co_await impl->ping();
}

void ReconnectingRelayClient::close() {
  impl_->close();
}
bool ReconnectingRelayClient::is_connected() const {
  return impl_->is_connected();
}
const relay::EndpointId& ReconnectingRelayClient::endpoint_id() const {
  return impl_->endpoint_id();
}
const ReconnectingStats& ReconnectingRelayClient::stats() const {
  return impl_->stats();
}

}  // namespace iroh::client
