// Relay client for iroh endpoints: one WebSocket connection to a relay (spec relay.md §3-§6).
//
// Threading: a RelayClient and its background coroutines run on the executor given at
// construction. Call its members only from that executor; if the io_context runs on several
// threads, pass a strand. Many clients may share one thread: an idle client costs two suspended
// coroutines, a socket and a few small buffers.
//
// Errors: connect(), receive() and ping() throw RelayClientError (see Errc). send() never throws
// and never blocks: a frame that cannot be queued is dropped and counted in stats(). The other
// transports of this library (http_client.hpp, lookup.hpp) report transport failures with the
// same RelayClientError kinds (InvalidUrl, Io, Tls, Timeout).
//
// A RelayClient is one connection. ReconnectingRelayClient (reconnecting_client.hpp) keeps one
// up with backoff; SealedChannel (sealed.hpp) encrypts payloads end to end.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "iroh/relay_proto.hpp"

namespace boost::asio::ssl {
class context;
}

namespace iroh::client {

enum class Errc {
  InvalidUrl = 1,  // relay URL could not be parsed or has no host
  Io,              // DNS, TCP or WebSocket transport error (cause() has the details)
  Tls,             // TLS handshake or certificate verification failed
  Timeout,         // connect() did not finish within RelayClientOptions::connect_timeout
  Upgrade,         // HTTP upgrade refused, or the server picked a subprotocol we did not offer
  AuthDenied,      // ServerDeniesAuth; reason() carries the server's text
  Protocol,        // the server sent something the protocol does not allow
  PingTimeout,     // no matching Pong within RelayClientOptions::ping_timeout
  Closed,          // the connection is closed (by close(), the peer, or an earlier error)
  NotConnected,    // receive()/ping() before connect() succeeded
};
std::string_view to_string(Errc e);

class RelayClientError : public std::runtime_error {
 public:
  RelayClientError(Errc kind, std::string reason, boost::system::error_code cause = {});
  Errc kind() const { return kind_; }
  // Human-readable detail: the server's deny reason for AuthDenied, the HTTP status and body for
  // Upgrade, the decode error for Protocol, the transport message for Io/Tls.
  const std::string& reason() const { return reason_; }
  // The transport error behind Io/Tls/Closed, if any.
  boost::system::error_code cause() const { return cause_; }

 private:
  Errc kind_;
  std::string reason_;
  boost::system::error_code cause_;
};

struct RelayClientOptions {
  // https: trust this PEM bundle instead of the system roots.
  std::optional<std::filesystem::path> ca_file;
  // https: verify the certificate chain and that it names the URL's host. Off = accept anything.
  bool verify_tls = true;
  // https: use this context as is (ca_file / verify_tls are then ignored). Lets thousands of
  // clients share one loaded trust store.
  std::shared_ptr<boost::asio::ssl::context> tls_context;
  // Offered in this order in Sec-WebSocket-Protocol; the server picks the highest it supports.
  std::vector<relay::ProtocolVersion> protocols{relay::ProtocolVersion::V2,
                                                relay::ProtocolVersion::V1};
  // Covers DNS + TCP + TLS + upgrade + relay handshake (iroh's CONNECT_TIMEOUT).
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds ping_timeout{5000};
  // Outgoing datagram frames waiting for the socket; beyond this send() drops.
  std::size_t send_queue_capacity = 512;
  // Received events waiting for receive(); beyond this the reader drops them.
  std::size_t receive_queue_capacity = 1024;
  // Sent as `Authorization: Bearer <token>` (relay access mode shared_token).
  std::optional<std::string> auth_token;
  // https: send x-iroh-relay-client-auth-v1 to skip the challenge round-trip (§4.3).
  bool key_material_auth = true;
};

// A datagram (or GSO-style batch when segment_size != 0) from `src`.
struct ReceivedDatagram {
  relay::EndpointId src;
  relay::Ecn ecn = relay::Ecn::NotEct;
  std::uint16_t segment_size = 0;
  relay::Bytes contents;
};

// Pong is delivered only when it matches no ping() in flight.
using Received = std::variant<ReceivedDatagram, relay::EndpointGone, relay::Status, relay::Health,
                              relay::Restarting, relay::Pong>;

struct RelayClientStats {
  std::uint64_t datagrams_queued = 0;         // accepted by send()/send_batch()
  std::uint64_t datagrams_written = 0;        // handed to the socket
  std::uint64_t send_dropped_queue_full = 0;  // send queue at capacity
  std::uint64_t send_dropped_invalid = 0;     // empty or too large for one frame (§5.4)
  std::uint64_t send_dropped_closed = 0;      // not connected / closing
  std::uint64_t datagrams_received = 0;
  std::uint64_t receive_dropped_queue_full = 0;  // events dropped: receive() not keeping up
  std::uint64_t pings_answered = 0;              // server Pings answered with Pong
};

class RelayClient {
 public:
  // `relay_url`: http://host[:port], https://host[:port] (ws:// and wss:// also accepted). Its
  // path and query are ignored: the client always talks to /relay (§1). Throws
  // RelayClientError(InvalidUrl).
  RelayClient(boost::asio::any_io_executor executor, std::string_view relay_url,
              relay::SecretKey secret_key, RelayClientOptions options = {});
  // Starts a graceful close if still open; background work finishes on the executor.
  ~RelayClient();
  RelayClient(const RelayClient&) = delete;
  RelayClient& operator=(const RelayClient&) = delete;
  RelayClient(RelayClient&&) noexcept;
  RelayClient& operator=(RelayClient&&) noexcept;

  // TCP (+TLS), WebSocket upgrade to /relay, relay handshake. Call once. On success the
  // client reads and writes in the background until close() or an error.
  boost::asio::awaitable<void> connect();

  // Queues a datagram for `dst`; false = dropped (counted in stats()).
  bool send(const relay::EndpointId& dst, relay::ByteSpan contents,
            relay::Ecn ecn = relay::Ecn::NotEct);
  // Queues `contents` as consecutive datagrams of `segment_size` bytes (the last may be shorter),
  // delivered as one frame. segment_size 0 = a single datagram.
  bool send_batch(const relay::EndpointId& dst, std::uint16_t segment_size,
                  relay::ByteSpan contents, relay::Ecn ecn = relay::Ecn::NotEct);

  // Free slots in the send queue (0 = the next send() drops).
  std::size_t send_queue_space() const;
  // For producers that prefer back-pressure to drops: completes once the send queue has at
  // least `free_slots` free slots (clamped to the capacity). Throws like receive() once the
  // connection has ended. One waiter at a time.
  boost::asio::awaitable<void> wait_send_space(std::size_t free_slots = 1);

  // Next event from the relay. Server Pings are answered without surfacing here. Queued events
  // are still delivered after the connection ends; then it throws (Closed, or the error that
  // ended the connection). One receive() at a time. Per-operation cancellation (e.g. racing a
  // timer with awaitable operators) ends it with boost::system::system_error(operation_aborted)
  // and loses no event.
  boost::asio::awaitable<Received> receive();

  // Callback form of receive(): calls `on_event` on the client's executor for every event until
  // the connection ends, then `on_end` (if set) once with the error that ended it (Closed after
  // close()). Use either this or receive(), not both.
  void start_receiving(std::function<void(Received)> on_event,
                       std::function<void(const RelayClientError&)> on_end = {});

  // Round-trip time of a relay-level Ping (throws PingTimeout after options.ping_timeout).
  boost::asio::awaitable<std::chrono::microseconds> ping();

  // Graceful close: frames already queued are written, then a WebSocket Close; pending
  // receive()/ping() end with Errc::Closed. Returns at once; idempotent.
  void close();

  const relay::EndpointId& endpoint_id() const;
  // The negotiated version; meaningful after connect().
  relay::ProtocolVersion protocol_version() const;
  bool is_connected() const;
  // True if the server accepted the x-iroh-relay-client-auth-v1 header (no challenge was sent).
  bool authenticated_by_header() const;
  const RelayClientStats& stats() const;
  boost::asio::any_io_executor get_executor() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace iroh::client
