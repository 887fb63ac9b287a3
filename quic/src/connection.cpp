#include "iroh/quic/connection.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <type_traits>

namespace iroh::quic {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr std::size_t kMaxAckRanges = 32;
constexpr std::uint64_t kMaxCryptoWindow = 64 * 1024;
constexpr std::size_t kMaxCryptoBuffered = 128 * 1024;
constexpr std::size_t kMaxPathResponses = 4;
// Connection IDs of ours a client may hold at once (it asks for active_connection_id_limit, at
// least 2), and how many we issue over a connection's life (replacements for retired ones).
constexpr std::size_t kMaxActiveConnectionIds = 4;
constexpr std::uint64_t kMaxIssuedConnectionIds = 64;
constexpr microseconds kMaxAckDelay = milliseconds(25);
constexpr microseconds kGranularity = milliseconds(1);

bool allowed_before_1rtt(const Frame& frame) {
  return std::holds_alternative<PaddingFrame>(frame) || std::holds_alternative<PingFrame>(frame) ||
         std::holds_alternative<AckFrame>(frame) || std::holds_alternative<CryptoFrame>(frame) ||
         std::holds_alternative<ConnectionCloseFrame>(frame);
}

}  // namespace

QadConnection::QadConnection(std::shared_ptr<ServerCredentials> credentials,
                             const PacketHeader& first_initial, const UdpEndpoint& peer,
                             Bytes local_cid, ConnectionLimits limits,
                             const StatelessResetKey& reset_key, Clock::time_point now)
    : limits_(limits),
      original_dcid_(first_initial.dcid),
      local_cid_(std::move(local_cid)),
      peer_cid_(first_initial.scid),
      peer_(peer),
      created_(now),
      last_activity_(now),
      idle_timeout_(limits.idle_timeout),
      reset_key_(reset_key) {
  const InitialKeys initial = derive_initial_keys(original_dcid_);
  space(EncryptionLevel::Initial).rx = initial.client;
  space(EncryptionLevel::Initial).tx = initial.server;

  TransportParameters params;
  params.original_destination_connection_id = original_dcid_;
  params.initial_source_connection_id = local_cid_;
  params.max_idle_timeout_ms = static_cast<std::uint64_t>(limits_.idle_timeout.count());
  params.address_discovery = AddressDiscoveryRole::SendOnly;
  issued_cids_.push_back(
      {0, local_cid_, stateless_reset_token(reset_key_, local_cid_), false, false});
  params.stateless_reset_token = issued_cids_.front().reset_token;

  TlsServerSession::Callbacks callbacks;
  callbacks.send_crypto = [this](EncryptionLevel level, ByteSpan data) {
    Space& s = space(level);
    s.crypto_tx_queue.emplace_back(s.crypto_tx.size(), data.size());
    s.crypto_tx.insert(s.crypto_tx.end(), data.begin(), data.end());
  };
  callbacks.install_secrets = [this](EncryptionLevel level, Aead aead, Hash hash,
                                     ByteSpan read_secret, ByteSpan write_secret) {
    Space& s = space(level);
    if (!read_secret.empty()) s.rx = derive_packet_keys(aead, hash, read_secret);
    if (!write_secret.empty()) s.tx = derive_packet_keys(aead, hash, write_secret);
  };
  tls_ = std::make_unique<TlsServerSession>(
      std::move(credentials), encode_transport_parameters(params), std::move(callbacks));
  if (!tls_->error_text().empty()) fail(TransportError::InternalError, tls_->error_text());
}

void QadConnection::on_datagram(ByteSpan datagram, const UdpEndpoint& from, Clock::time_point now) {
  if (state_ == State::Closed || pending_close_) return;
  bytes_received_ += datagram.size();
  ByteSpan rest = datagram;
  // Coalesced packets (RFC 9000 §12.2); at most a handful fit in one datagram.
  for (int i = 0; i < 8 && !rest.empty() && state_ != State::Closed && !pending_close_; ++i) {
    auto header = parse_packet_header(rest, local_cid_.size());
    if (!header || header->version != kVersion1 || header->packet_size == 0 ||
        header->packet_size > rest.size()) {
      break;
    }
    const ByteSpan packet = rest.first(header->packet_size);
    rest = rest.subspan(header->packet_size);
    process_packet(*header, packet, from, now);
  }
}

void QadConnection::process_packet(const PacketHeader& header, ByteSpan packet,
                                   const UdpEndpoint& from, Clock::time_point now) {
  EncryptionLevel level;
  switch (header.type) {
    case PacketType::Initial:
      level = EncryptionLevel::Initial;
      break;
    case PacketType::Handshake:
      level = EncryptionLevel::Handshake;
      break;
    case PacketType::OneRtt:
      level = EncryptionLevel::Application;
      break;
    default:
      return;  // 0-RTT is never accepted, Retry never comes from a client
  }
  if (header.type != PacketType::OneRtt && header.dcid != local_cid_ &&
      header.dcid != original_dcid_) {
    return;
  }
  Space& s = space(level);
  if (s.discarded || !s.rx) return;
  auto opened = open_packet(packet, header, *s.rx, s.largest_rx.value_or(0));
  if (!opened) return;
  if (!record_received(s, opened->packet_number, now)) return;
  last_activity_ = now;
  if (level == EncryptionLevel::Handshake) {
    // A Handshake packet proves the client owns its address (RFC 9000 §8.1), and the server
    // stops using Initial keys once it has one (RFC 9001 §4.9.1).
    address_validated_ = true;
    discard_space(EncryptionLevel::Initial);
  }
  auto parsed = parse_frames(opened->payload);
  if (auto* error = std::get_if<FrameError>(&parsed)) {
    fail(error->code, "malformed frame", error->frame_type);
    return;
  }
  const auto& frames = std::get<std::vector<Frame>>(parsed);
  const bool ack_eliciting = std::any_of(frames.begin(), frames.end(), is_ack_eliciting);
  process_frames(level, frames, now);
  if (state_ == State::Closed || pending_close_) return;
  if (ack_eliciting && !s.discarded) s.ack_pending = true;
  // Migration / NAT rebinding: follow the newest packet's address and report it again.
  if (level == EncryptionLevel::Application && from != peer_ &&
      s.largest_rx == opened->packet_number) {
    peer_ = from;
    if (observed_address_enabled_) observed_address_pending_ = true;
  }
}

void QadConnection::process_frames(EncryptionLevel level, const std::vector<Frame>& frames,
                                   Clock::time_point now) {
  for (const Frame& frame : frames) {
    if (state_ == State::Closed || pending_close_) return;
    if (level != EncryptionLevel::Application && !allowed_before_1rtt(frame)) {
      fail(TransportError::ProtocolViolation, "frame not allowed before 1-RTT");
      return;
    }
    std::visit(
        [&](const auto& f) {
          using T = std::decay_t<decltype(f)>;
          if constexpr (std::is_same_v<T, AckFrame>) {
            on_ack(level, f, now);
          } else if constexpr (std::is_same_v<T, CryptoFrame>) {
            on_crypto(level, f, now);
          } else if constexpr (std::is_same_v<T, ConnectionCloseFrame>) {
            peer_close_ = f;
            enter_closed(EndReason::PeerClosed);
          } else if constexpr (std::is_same_v<T, HandshakeDoneFrame>) {
            fail(TransportError::ProtocolViolation, "client sent HANDSHAKE_DONE", 0x1e);
          } else if constexpr (std::is_same_v<T, PathChallengeFrame>) {
            if (path_responses_.size() < kMaxPathResponses) path_responses_.push_back(f.data);
            if (observed_address_enabled_) observed_address_pending_ = true;
          } else if constexpr (std::is_same_v<T, StreamFrame>) {
            fail(TransportError::StreamLimitError, "QAD allows no streams");
          } else if constexpr (std::is_same_v<T, ObservedAddressFrame>) {
            fail(TransportError::ProtocolViolation, "server does not receive observed addresses",
                 f.ipv6 ? kObservedIpv6AddressFrame : kObservedIpv4AddressFrame);
          } else if constexpr (std::is_same_v<T, RetireConnectionIdFrame>) {
            on_retire_connection_id(f.sequence);
          }
          // PADDING, PING, NEW_CONNECTION_ID, PATH_RESPONSE and flow control frames need
          // nothing: the server never migrates, opens streams or sends data. (The client's
          // NEW_CONNECTION_ID could ask us to retire its first ID; clients of a QAD server have
          // no reason to, and we keep addressing the one they started with.)
        },
        frame);
  }
}

bool QadConnection::record_received(Space& s, std::uint64_t pn, Clock::time_point now) {
  for (const auto& range : s.received) {
    if (pn >= range.smallest && pn <= range.largest) return false;
  }
  s.received.push_back({pn, pn});
  std::sort(s.received.begin(), s.received.end(),
            [](const AckRange& a, const AckRange& b) { return a.largest > b.largest; });
  std::vector<AckRange> merged;
  for (const auto& range : s.received) {
    if (!merged.empty() && merged.back().smallest <= range.largest + 1) {
      merged.back().smallest = std::min(merged.back().smallest, range.smallest);
    } else {
      merged.push_back(range);
    }
  }
  if (merged.size() > kMaxAckRanges) merged.resize(kMaxAckRanges);
  s.received = std::move(merged);
  if (!s.largest_rx || pn > *s.largest_rx) {
    s.largest_rx = pn;
    s.largest_rx_time = now;
  }
  return true;
}

void QadConnection::on_ack(EncryptionLevel level, const AckFrame& ack, Clock::time_point now) {
  Space& s = space(level);
  if (s.discarded || ack.ranges.empty()) return;
  const std::uint64_t largest = ack.ranges[0].largest;
  if (largest >= s.next_pn) {
    fail(TransportError::ProtocolViolation, "ACK of an unsent packet", 0x02);
    return;
  }
  bool newly_acked = false;
  for (const auto& range : ack.ranges) {
    auto it = s.in_flight.lower_bound(range.smallest);
    while (it != s.in_flight.end() && it->first <= range.largest) {
      if (it->first == largest && it->second.ack_eliciting) {
        // RTT sample (RFC 9002 §5.3).
        auto sample = duration_cast<microseconds>(now - it->second.time);
        const auto ack_delay = ack.ack_delay > (static_cast<std::uint64_t>(kMaxAckDelay.count()) >>
                                                peer_ack_delay_exponent_)
                                   ? kMaxAckDelay
                                   : microseconds(ack.ack_delay << peer_ack_delay_exponent_);
        if (!have_rtt_sample_) {
          smoothed_rtt_ = sample;
          rtt_var_ = sample / 2;
          have_rtt_sample_ = true;
        } else {
          if (sample > ack_delay) sample -= ack_delay;
          const auto deviation =
              smoothed_rtt_ > sample ? smoothed_rtt_ - sample : sample - smoothed_rtt_;
          rtt_var_ = (rtt_var_ * 3 + deviation) / 4;
          smoothed_rtt_ = (smoothed_rtt_ * 7 + sample) / 8;
        }
      }
      it = s.in_flight.erase(it);
      newly_acked = true;
    }
  }
  if (newly_acked) pto_count_ = 0;
  // Packet threshold loss detection (RFC 9002 §6.1.1).
  for (auto it = s.in_flight.begin(); it != s.in_flight.end() && it->first + 3 <= largest;) {
    declare_lost(s, it->second);
    it = s.in_flight.erase(it);
  }
}

void QadConnection::on_retire_connection_id(std::uint64_t sequence) {
  if (sequence >= issued_cids_.size()) {
    fail(TransportError::ProtocolViolation, "RETIRE_CONNECTION_ID of an ID never issued", 0x19);
    return;
  }
  IssuedConnectionId& issued = issued_cids_[sequence];
  if (issued.retired) return;
  issued.retired = true;
  issued.send_pending = false;
  cid_changes_.retired.push_back(issued.id);
  issue_connection_id();  // keep the client supplied
}

void QadConnection::issue_connection_id() {
  const auto active = std::count_if(issued_cids_.begin(), issued_cids_.end(),
                                    [](const IssuedConnectionId& c) { return !c.retired; });
  if (static_cast<std::size_t>(active) >= active_cid_limit_ ||
      issued_cids_.size() >= kMaxIssuedConnectionIds) {
    return;
  }
  IssuedConnectionId issued;
  issued.sequence = issued_cids_.size();
  issued.id.resize(local_cid_.size());
  RAND_bytes(issued.id.data(), static_cast<int>(issued.id.size()));
  issued.reset_token = stateless_reset_token(reset_key_, issued.id);
  issued.send_pending = true;
  cid_changes_.issued.push_back(issued.id);
  issued_cids_.push_back(std::move(issued));
}

std::vector<Bytes> QadConnection::active_connection_ids() const {
  std::vector<Bytes> ids;
  for (const auto& issued : issued_cids_) {
    if (!issued.retired) ids.push_back(issued.id);
  }
  return ids;
}

void QadConnection::declare_lost(Space& s, const SentPacket& packet) {
  for (std::uint64_t sequence : packet.new_connection_ids) {
    if (!issued_cids_[sequence].retired) issued_cids_[sequence].send_pending = true;
  }
  for (const auto& range : packet.crypto) s.crypto_tx_queue.push_back(range);
  if (packet.handshake_done) handshake_done_pending_ = true;
  // OBSERVED_ADDRESS is retransmitted as a fresh frame with a new sequence number.
  if (packet.observed_address && observed_address_enabled_) observed_address_pending_ = true;
}

void QadConnection::on_crypto(EncryptionLevel level, const CryptoFrame& frame,
                              Clock::time_point now) {
  Space& s = space(level);
  const std::uint64_t end = frame.offset + frame.data.size();
  if (end <= s.crypto_rx_offset) return;
  if (end - s.crypto_rx_offset > kMaxCryptoWindow) {
    fail(TransportError::CryptoBufferExceeded, "CRYPTO data too far ahead", 0x06);
    return;
  }
  const std::uint64_t start = std::max(frame.offset, s.crypto_rx_offset);
  Bytes data(frame.data.begin() + static_cast<std::ptrdiff_t>(start - frame.offset),
             frame.data.end());
  Bytes& slot = s.crypto_rx_buffered[start];
  if (slot.size() < data.size()) {
    crypto_buffered_bytes_ += data.size() - slot.size();
    slot = std::move(data);
  }
  if (crypto_buffered_bytes_ > kMaxCryptoBuffered) {
    fail(TransportError::CryptoBufferExceeded, "too much buffered CRYPTO data", 0x06);
    return;
  }
  while (!s.crypto_rx_buffered.empty()) {
    auto it = s.crypto_rx_buffered.begin();
    if (it->first > s.crypto_rx_offset) break;
    Bytes chunk = std::move(it->second);
    const std::uint64_t chunk_offset = it->first;
    crypto_buffered_bytes_ -= chunk.size();
    s.crypto_rx_buffered.erase(it);
    const std::uint64_t chunk_end = chunk_offset + chunk.size();
    if (chunk_end <= s.crypto_rx_offset) continue;
    const ByteSpan fresh = ByteSpan(chunk).subspan(s.crypto_rx_offset - chunk_offset);
    s.crypto_rx_offset = chunk_end;
    if (!tls_->provide_data(level, fresh)) {
      fail(static_cast<TransportError>(static_cast<std::uint64_t>(TransportError::CryptoErrorBase) +
                                       tls_->alert()),
           "TLS: " + tls_->error_text(), 0x06);
      return;
    }
  }
  if (!established_ && tls_->handshake_complete()) on_handshake_complete(now);
}

void QadConnection::on_handshake_complete(Clock::time_point now) {
  established_ = true;
  established_at_ = now;
  state_ = State::Established;
  address_validated_ = true;
  const auto& raw = tls_->peer_transport_parameters();
  auto params = raw ? decode_transport_parameters(*raw) : std::nullopt;
  if (!params) {
    fail(TransportError::TransportParameterError, "malformed transport parameters");
    return;
  }
  // Parameters only a server may send, and the CID authentication (RFC 9000 §7.3, §18.2).
  if (params->original_destination_connection_id || params->retry_source_connection_id ||
      params->stateless_reset_token || params->initial_source_connection_id != peer_cid_) {
    fail(TransportError::TransportParameterError, "invalid client transport parameters");
    return;
  }
  if (params->max_idle_timeout_ms && *params->max_idle_timeout_ms > 0) {
    idle_timeout_ = std::min(idle_timeout_, milliseconds(*params->max_idle_timeout_ms));
  }
  peer_ack_delay_exponent_ = static_cast<unsigned>(params->ack_delay_exponent);
  observed_address_enabled_ = params->address_discovery == AddressDiscoveryRole::ReceiveOnly ||
                              params->address_discovery == AddressDiscoveryRole::Both;
  observed_address_pending_ = observed_address_enabled_;
  handshake_done_pending_ = true;
  // The client's active_connection_id_limit (at least 2) says how many IDs it will hold.
  active_cid_limit_ = static_cast<std::size_t>(
      std::min<std::uint64_t>(params->active_connection_id_limit, kMaxActiveConnectionIds));
  for (std::size_t i = issued_cids_.size(); i < active_cid_limit_; ++i) issue_connection_id();
  // The server's handshake is confirmed on completion (RFC 9001 §4.1.2); HANDSHAKE_DONE tells
  // the client, which implicitly acknowledges its Handshake packets.
  discard_space(EncryptionLevel::Handshake);
}

void QadConnection::discard_space(EncryptionLevel level) {
  Space& s = space(level);
  if (s.discarded) return;
  s.discarded = true;
  s.rx.reset();
  s.tx.reset();
  s.in_flight.clear();
  s.crypto_tx_queue.clear();
  for (const auto& [offset, data] : s.crypto_rx_buffered) crypto_buffered_bytes_ -= data.size();
  s.crypto_rx_buffered.clear();
  s.ack_pending = false;
  s.probe_pending = false;
}

void QadConnection::fail(TransportError code, std::string text, std::uint64_t frame_type) {
  if (state_ == State::Closed || pending_close_) return;
  error_text_ = std::move(text);
  ConnectionCloseFrame close;
  close.error_code = static_cast<std::uint64_t>(code);
  close.frame_type = frame_type;
  pending_close_ = close;
  end_reason_ = EndReason::ProtocolError;
}

void QadConnection::close(std::uint64_t application_code, std::string reason) {
  if (state_ == State::Closed || pending_close_) return;
  ConnectionCloseFrame close;
  close.application = true;
  close.error_code = application_code;
  close.reason = std::move(reason);
  pending_close_ = close;
  end_reason_ = EndReason::LocalClose;
}

void QadConnection::enter_closed(EndReason reason) {
  state_ = State::Closed;
  if (end_reason_ == EndReason::None) end_reason_ = reason;
}

microseconds QadConnection::probe_timeout(EncryptionLevel level) const {
  auto pto = smoothed_rtt_ + std::max(rtt_var_ * 4, kGranularity);
  if (level == EncryptionLevel::Application) pto += kMaxAckDelay;
  return pto * (1 << std::min(pto_count_, 16));
}

std::optional<Clock::time_point> QadConnection::probe_deadline() const {
  std::optional<Clock::time_point> deadline;
  for (int i = 0; i < 3; ++i) {
    const Space& s = spaces_[i];
    if (s.discarded) continue;
    std::optional<Clock::time_point> last_sent;
    for (const auto& [pn, packet] : s.in_flight) {
      if (packet.ack_eliciting && (!last_sent || packet.time > *last_sent)) last_sent = packet.time;
    }
    if (!last_sent) continue;
    const auto candidate = *last_sent + probe_timeout(static_cast<EncryptionLevel>(i));
    if (!deadline || candidate < *deadline) deadline = candidate;
  }
  return deadline;
}

Clock::time_point QadConnection::next_timeout() const {
  Clock::time_point deadline = last_activity_ + idle_timeout_;
  if (!established_) deadline = std::min(deadline, created_ + limits_.handshake_timeout);
  if (auto pto = probe_deadline()) deadline = std::min(deadline, *pto);
  return deadline;
}

void QadConnection::on_timeout(Clock::time_point now) {
  if (state_ == State::Closed) return;
  if (now >= last_activity_ + idle_timeout_) {
    enter_closed(EndReason::IdleTimeout);  // silent close (RFC 9000 §10.1)
    return;
  }
  if (!established_ && now >= created_ + limits_.handshake_timeout) {
    enter_closed(EndReason::HandshakeTimeout);
    return;
  }
  auto pto = probe_deadline();
  if (!pto || now < *pto) return;
  if (++pto_count_ > limits_.max_probe_timeouts) {
    enter_closed(EndReason::IdleTimeout);
    return;
  }
  // Everything unacknowledged is sent again, or a PING if there is nothing to repeat.
  for (auto& s : spaces_) {
    if (s.discarded || s.in_flight.empty()) continue;
    bool had_ack_eliciting = false;
    for (const auto& [pn, packet] : s.in_flight) {
      had_ack_eliciting |= packet.ack_eliciting;
      declare_lost(s, packet);
    }
    s.in_flight.clear();
    s.probe_pending = had_ack_eliciting;
  }
}

}  // namespace iroh::quic
