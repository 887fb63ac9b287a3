// One QAD connection: a server-side QUIC v1 state machine that completes the TLS handshake,
// acknowledges what the client sends, reports the client's address in OBSERVED_ADDRESS frames and
// otherwise waits for the client to close. No I/O: datagrams go in and out as bytes and time is
// passed in, so the service owns sockets and timers.
#pragma once

#include <array>
#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "iroh/quic/packet.hpp"
#include "iroh/quic/tls.hpp"

namespace iroh::quic {

using Clock = std::chrono::steady_clock;
using UdpEndpoint = boost::asio::ip::udp::endpoint;

struct ConnectionLimits {
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds handshake_timeout{10000};
  std::size_t max_datagram_size = 1200;
  int max_probe_timeouts = 8;  // consecutive PTOs before the peer is given up on
};

// Datagram to send to `to`.
struct OutgoingDatagram {
  UdpEndpoint to;
  Bytes data;
};

class QadConnection {
 public:
  enum class State { Handshaking, Established, Closed };
  // How the connection ended, for the service's counters.
  enum class EndReason {
    None,
    PeerClosed,
    LocalClose,
    IdleTimeout,
    HandshakeTimeout,
    ProtocolError
  };

  // `first_initial` is the header of the client's first Initial packet. Stateless reset tokens
  // of this connection's IDs derive from `reset_key`.
  QadConnection(std::shared_ptr<ServerCredentials> credentials, const PacketHeader& first_initial,
                const UdpEndpoint& peer, Bytes local_cid, ConnectionLimits limits,
                const StatelessResetKey& reset_key, Clock::time_point now);

  // Processes one UDP datagram that was routed to this connection.
  void on_datagram(ByteSpan datagram, const UdpEndpoint& from, Clock::time_point now);
  // Datagrams that may be sent now (anti-amplification and congestion-free pacing applied).
  std::vector<OutgoingDatagram> take_datagrams(Clock::time_point now);
  // When on_timeout must be called next.
  Clock::time_point next_timeout() const;
  void on_timeout(Clock::time_point now);
  // Closes with an application error (spec §7.1: code 1 "finished" on shutdown).
  void close(std::uint64_t application_code, std::string reason);

  State state() const { return state_; }
  bool ever_established() const { return established_; }
  EndReason end_reason() const { return end_reason_; }
  // Peer's CONNECTION_CLOSE, if it sent one.
  const std::optional<ConnectionCloseFrame>& peer_close() const { return peer_close_; }
  const Bytes& local_cid() const { return local_cid_; }
  const Bytes& original_dcid() const { return original_dcid_; }
  const UdpEndpoint& peer() const { return peer_; }
  bool sends_observed_address() const { return observed_address_enabled_; }
  std::uint64_t bytes_received() const { return bytes_received_; }
  std::uint64_t bytes_sent() const { return bytes_sent_; }
  std::string error_text() const { return error_text_; }
  Clock::time_point created_at() const { return created_; }
  // When the TLS handshake completed (meaningful once ever_established()).
  Clock::time_point established_at() const { return established_at_; }
  // Connection IDs issued (NEW_CONNECTION_ID) or retired by the client since the last call: the
  // service routes and un-routes them.
  struct ConnectionIdChanges {
    std::vector<Bytes> issued;
    std::vector<Bytes> retired;
  };
  ConnectionIdChanges take_connection_id_changes() { return std::exchange(cid_changes_, {}); }
  // Every connection ID of ours the client may still use (for the service's routing table).
  std::vector<Bytes> active_connection_ids() const;
  // OBSERVED_ADDRESS frames put into packets since the last call (for the service's metrics).
  std::uint64_t take_observed_addresses_sent() {
    const std::uint64_t sent = observed_address_sequence_ - observed_addresses_counted_;
    observed_addresses_counted_ = observed_address_sequence_;
    return sent;
  }
  // False until a packet has been authenticated: a datagram of garbage creates no connection.
  bool has_received_packet() const {
    for (const auto& s : spaces_) {
      if (s.largest_rx) return true;
    }
    return false;
  }

 private:
  struct SentPacket {
    Clock::time_point time;
    bool ack_eliciting = false;
    std::vector<std::pair<std::uint64_t, std::size_t>> crypto;  // offset, length
    bool handshake_done = false;
    bool observed_address = false;
    std::vector<std::uint64_t> new_connection_ids;  // sequence numbers
  };
  // A connection ID of ours: sequence 0 is local_cid_ (its token is in the transport parameters),
  // the others went out in NEW_CONNECTION_ID frames.
  struct IssuedConnectionId {
    std::uint64_t sequence = 0;
    Bytes id;
    std::array<std::uint8_t, 16> reset_token{};
    bool retired = false;
    bool send_pending = false;
  };
  struct Space {
    std::optional<PacketKeys> rx;
    std::optional<PacketKeys> tx;
    bool discarded = false;
    std::uint64_t next_pn = 0;
    std::optional<std::uint64_t> largest_rx;
    Clock::time_point largest_rx_time{};
    std::vector<AckRange> received;  // descending, disjoint
    bool ack_pending = false;
    std::uint64_t crypto_rx_offset = 0;
    std::map<std::uint64_t, Bytes> crypto_rx_buffered;
    Bytes crypto_tx;
    std::deque<std::pair<std::uint64_t, std::size_t>> crypto_tx_queue;
    std::map<std::uint64_t, SentPacket> in_flight;
    bool probe_pending = false;
  };

  void process_packet(const PacketHeader& header, ByteSpan packet, const UdpEndpoint& from,
                      Clock::time_point now);
  void process_frames(EncryptionLevel level, const std::vector<Frame>& frames,
                      Clock::time_point now);
  void on_ack(EncryptionLevel level, const AckFrame& ack, Clock::time_point now);
  void on_crypto(EncryptionLevel level, const CryptoFrame& frame, Clock::time_point now);
  void on_handshake_complete(Clock::time_point now);
  void on_retire_connection_id(std::uint64_t sequence);
  void issue_connection_id();
  void declare_lost(Space& space, const SentPacket& packet);
  void discard_space(EncryptionLevel level);
  void fail(TransportError code, std::string text, std::uint64_t frame_type = 0);
  void enter_closed(EndReason reason);
  bool record_received(Space& space, std::uint64_t pn, Clock::time_point now);
  std::chrono::microseconds probe_timeout(EncryptionLevel level) const;
  std::optional<Clock::time_point> probe_deadline() const;
  // The sending side (connection_send.cpp), in the order build_datagram() runs it.
  struct PlannedPacket {
    EncryptionLevel level;
    std::uint64_t pn;
    Bytes payload;
    SentPacket record;
  };
  std::size_t send_budget() const;
  bool level_usable(EncryptionLevel level) const;
  std::size_t packet_overhead(EncryptionLevel level) const;
  std::optional<Bytes> seal_packet(EncryptionLevel level, std::uint64_t pn, ByteSpan payload) const;
  std::optional<Bytes> build_close_datagram(std::size_t budget);
  Bytes build_payload(EncryptionLevel level, std::size_t room, SentPacket& record,
                      Clock::time_point now);
  std::vector<PlannedPacket> plan_packets(std::size_t budget, Clock::time_point now);
  std::optional<Bytes> seal_datagram(std::vector<PlannedPacket>& plan);
  std::optional<Bytes> build_datagram(Clock::time_point now);

  Space& space(EncryptionLevel level) { return spaces_[static_cast<int>(level)]; }
  const Space& space(EncryptionLevel level) const { return spaces_[static_cast<int>(level)]; }

  ConnectionLimits limits_;
  std::array<Space, 3> spaces_;
  std::unique_ptr<TlsServerSession> tls_;
  Bytes original_dcid_;
  Bytes local_cid_;
  Bytes peer_cid_;
  UdpEndpoint peer_;
  State state_ = State::Handshaking;
  bool established_ = false;
  EndReason end_reason_ = EndReason::None;
  std::optional<ConnectionCloseFrame> peer_close_;
  std::optional<ConnectionCloseFrame> pending_close_;  // to send once, then Closed
  bool address_validated_ = false;
  std::uint64_t bytes_received_ = 0;
  std::uint64_t bytes_sent_ = 0;
  Clock::time_point created_;
  Clock::time_point established_at_{};
  Clock::time_point last_activity_;
  std::chrono::milliseconds idle_timeout_;
  // RTT estimation (RFC 9002 §5), microseconds.
  std::chrono::microseconds smoothed_rtt_{333000};
  std::chrono::microseconds rtt_var_{166500};
  bool have_rtt_sample_ = false;
  unsigned peer_ack_delay_exponent_ = 3;
  std::size_t crypto_buffered_bytes_ = 0;
  int pto_count_ = 0;
  // Application-space frames waiting to be sent.
  bool handshake_done_pending_ = false;
  bool observed_address_enabled_ = false;
  bool observed_address_pending_ = false;
  std::uint64_t observed_address_sequence_ = 0;
  std::uint64_t observed_addresses_counted_ = 0;
  std::vector<std::array<std::uint8_t, 8>> path_responses_;
  StatelessResetKey reset_key_;
  std::vector<IssuedConnectionId> issued_cids_;
  std::size_t active_cid_limit_ = 1;  // how many of ours the client wants at once
  ConnectionIdChanges cid_changes_;
  std::string error_text_;
};

}  // namespace iroh::quic
