// A relay connection that stays up: wraps RelayClient and, when the connection fails or the relay
// goes away, dials again with capped exponential backoff and jitter (relay.md §11 step 6: after
// a connection that had been established the first retry is immediate; failed dials back off
// from `initial_backoff`, doubling up to `max_backoff`).
//
// Events: the relay's events (datagrams, EndpointGone, Status, Health, Restarting, unsolicited
// Pong) plus Connected / Disconnected, through receive() or a callback (start_receiving).
// Sending while disconnected drops the datagram and counts it (iroh drops old datagrams while
// disconnected too; the upper layer, e.g. QUIC, retransmits).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include "iroh/relay_client.hpp"

namespace iroh::client {

struct ReconnectOptions {
  std::chrono::milliseconds initial_backoff{10};
  std::chrono::milliseconds max_backoff{16000};
  double factor = 2.0;
  // Each delay is multiplied by a uniform random factor in [1 - jitter, 1 + jitter].
  double jitter = 0.5;
  // 0 = retry forever.
  std::uint64_t max_attempts = 0;
};

// The connection is up (again). `attempt` counts dials since the last established connection.
struct Connected {
  std::uint64_t connection = 0;  // 1 for the first connection, 2 after the first reconnect, ...
  std::uint64_t attempt = 0;
  relay::ProtocolVersion version = relay::ProtocolVersion::V2;
};
// The connection went down or a dial failed; the next dial starts after `retry_in`
// (`gave_up`: max_attempts reached or close() called; no further dials).
struct Disconnected {
  RelayClientError error;
  std::chrono::milliseconds retry_in{0};
  bool gave_up = false;
};

using ClientEvent =
    std::variant<ReceivedDatagram, relay::EndpointGone, relay::Status, relay::Health,
                 relay::Restarting, relay::Pong, Connected, Disconnected>;

struct ReconnectingStats {
  std::uint64_t connections = 0;                // established connections so far
  std::uint64_t dial_failures = 0;              // dials that did not reach ServerConfirmsAuth
  std::uint64_t send_dropped_disconnected = 0;  // send() while no connection was up
  std::uint64_t events_dropped_queue_full = 0;  // receive() not keeping up
};

class ReconnectingRelayClient {
 public:
  ReconnectingRelayClient(boost::asio::any_io_executor executor, std::string relay_url,
                          relay::SecretKey secret_key, RelayClientOptions options = {},
                          ReconnectOptions reconnect = {});
  ~ReconnectingRelayClient();  // close()
  ReconnectingRelayClient(const ReconnectingRelayClient&) = delete;
  ReconnectingRelayClient& operator=(const ReconnectingRelayClient&) = delete;

  // Starts dialing in the background; idempotent.
  void start();
  // False = dropped (disconnected: counted in stats(); otherwise see current client's stats).
  bool send(const relay::EndpointId& dst, relay::ByteSpan contents,
            relay::Ecn ecn = relay::Ecn::NotEct);
  // Next event; throws RelayClientError(Closed) once closed and drained. One waiter at a time.
  boost::asio::awaitable<ClientEvent> receive();
  // Callback form: `on_event` for every event until close(). Use either this or receive().
  void start_receiving(std::function<void(ClientEvent)> on_event);
  // RTT over the current connection; throws NotConnected while disconnected.
  boost::asio::awaitable<std::chrono::microseconds> ping();
  void close();

  bool is_connected() const;
  const relay::EndpointId& endpoint_id() const;
  const ReconnectingStats& stats() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace iroh::client
