// The sending side of QadConnection: what goes into the next datagram. build_datagram() runs
// the steps in order: the anti-amplification budget (RFC 9000 §8.1), a pending CONNECTION_CLOSE
// (§10.2.3), else one packet per usable space (plan_packets: ACK, HANDSHAKE_DONE,
// OBSERVED_ADDRESS, NEW_CONNECTION_ID, PATH_RESPONSE, CRYPTO, PING), sealed and coalesced into
// one datagram (§12.2) padded to 1200 bytes when it carries an ack-eliciting Initial (§14.1).
// The receiving side and the timers are in connection.cpp.

#include <algorithm>

#include "iroh/quic/connection.hpp"

namespace iroh::quic {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;

constexpr std::size_t kPacketNumberSize = 4;  // always 4 bytes: never ambiguous, always sampleable
constexpr std::size_t kNewConnectionIdFrameSize = 1 + 1 + 1 + 1 + 20 + 16;  // upper bound
constexpr std::uint64_t kApplicationErrorCode = 0x0c;  // RFC 9000 §20.1 APPLICATION_ERROR
constexpr EncryptionLevel kLevels[] = {EncryptionLevel::Initial, EncryptionLevel::Handshake,
                                       EncryptionLevel::Application};

PacketType packet_type_of(EncryptionLevel level) {
  return level == EncryptionLevel::Initial ? PacketType::Initial : PacketType::Handshake;
}

ObservedAddressFrame observed_address_of(const UdpEndpoint& endpoint, std::uint64_t sequence) {
  ObservedAddressFrame frame;
  frame.sequence = sequence;
  frame.port = endpoint.port();
  const auto& address = endpoint.address();
  if (address.is_v4()) {
    const auto bytes = address.to_v4().to_bytes();
    std::copy(bytes.begin(), bytes.end(), frame.ip.begin());
    return frame;
  }
  // IPv4 clients of a dual-stack socket arrive as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) and are
  // reported in the IPv4 form of the frame (spec §7.1): its last four bytes. Done here on the
  // bytes because this library sits below server/ and cannot use core/net.hpp.
  const auto bytes = address.to_v6().to_bytes();
  if (address.to_v6().is_v4_mapped()) {
    std::copy(bytes.end() - 4, bytes.end(), frame.ip.begin());
  } else {
    frame.ipv6 = true;
    std::copy(bytes.begin(), bytes.end(), frame.ip.begin());
  }
  return frame;
}

}  // namespace

Bytes QadConnection::build_payload(EncryptionLevel level, std::size_t room, SentPacket& record,
                                   Clock::time_point now) {
  Space& s = space(level);
  Bytes p;
  if (s.ack_pending && !s.received.empty()) {
    AckFrame ack;
    ack.ack_delay =
        static_cast<std::uint64_t>(duration_cast<microseconds>(now - s.largest_rx_time).count()) >>
        3;
    ack.ranges = s.received;
    encode_ack(p, ack);
    if (p.size() > room) {
      p.clear();
      ack.ranges.resize(1);
      encode_ack(p, ack);
    }
    if (p.size() > room) {
      p.clear();
    } else {
      s.ack_pending = false;
    }
  }
  auto fits = [&](std::size_t n) { return p.size() + n <= room; };
  if (level == EncryptionLevel::Application) {
    if (handshake_done_pending_ && fits(1)) {
      encode_handshake_done(p);
      record.handshake_done = true;
      record.ack_eliciting = true;
      handshake_done_pending_ = false;
    }
    if (observed_address_pending_ && observed_address_enabled_ && fits(4 + 8 + 16 + 2)) {
      encode_observed_address(p, observed_address_of(peer_, observed_address_sequence_++));
      record.observed_address = true;
      record.ack_eliciting = true;
      observed_address_pending_ = false;
    }
    for (auto& issued : issued_cids_) {
      if (!issued.send_pending || !fits(kNewConnectionIdFrameSize)) continue;
      encode_new_connection_id(p, {issued.sequence, 0, issued.id, issued.reset_token});
      record.new_connection_ids.push_back(issued.sequence);
      record.ack_eliciting = true;
      issued.send_pending = false;
    }
    while (!path_responses_.empty() && fits(9)) {
      encode_path_response(p, path_responses_.back());
      path_responses_.pop_back();
      record.ack_eliciting = true;
    }
  }
  while (!s.crypto_tx_queue.empty()) {
    auto [offset, length] = s.crypto_tx_queue.front();
    const std::size_t overhead = crypto_frame_overhead(offset, length);
    if (!fits(overhead + 1)) break;
    const std::size_t n = std::min(length, room - p.size() - overhead);
    encode_crypto(p, offset, ByteSpan(s.crypto_tx).subspan(offset, n));
    record.crypto.emplace_back(offset, n);
    record.ack_eliciting = true;
    if (n == length) {
      s.crypto_tx_queue.pop_front();
    } else {
      s.crypto_tx_queue.front() = {offset + n, length - n};
    }
  }
  if (s.probe_pending && fits(1)) {
    if (!record.ack_eliciting) encode_ping(p);
    record.ack_eliciting = true;
    s.probe_pending = false;
  }
  return p;
}

std::size_t QadConnection::send_budget() const {
  const std::size_t budget = limits_.max_datagram_size;
  if (address_validated_) return budget;
  // Anti-amplification: at most 3x what the unvalidated address sent (RFC 9000 §8.1).
  const std::uint64_t allowed = 3 * bytes_received_;
  if (bytes_sent_ >= allowed) return 0;
  return static_cast<std::size_t>(std::min<std::uint64_t>(budget, allowed - bytes_sent_));
}

bool QadConnection::level_usable(EncryptionLevel level) const {
  const Space& s = space(level);
  return s.tx && !s.discarded && (level != EncryptionLevel::Application || established_);
}

std::optional<Bytes> QadConnection::seal_packet(EncryptionLevel level, std::uint64_t pn,
                                                ByteSpan payload) const {
  const Space& s = space(level);
  const Bytes header =
      level == EncryptionLevel::Application
          ? build_short_header(peer_cid_, pn, kPacketNumberSize, false)
          : build_long_header(packet_type_of(level), kVersion1, peer_cid_, local_cid_, {}, pn,
                              kPacketNumberSize, payload.size());
  return protect_packet(header, kPacketNumberSize, pn, payload, *s.tx);
}

std::size_t QadConnection::packet_overhead(EncryptionLevel level) const {
  // Short header (RFC 9000 §17.3.1): flags, DCID, packet number; long header (§17.2): flags,
  // version, two CID lengths and CIDs, an empty token's length for Initial (§17.2.2), a 2-byte
  // length; then the AEAD tag.
  if (level == EncryptionLevel::Application) {
    return 1 + peer_cid_.size() + kPacketNumberSize + kAeadTagSize;
  }
  return 1 + 4 + 2 + peer_cid_.size() + local_cid_.size() +
         (level == EncryptionLevel::Initial ? 1 : 0) + 2 + kPacketNumberSize + kAeadTagSize;
}

std::optional<Bytes> QadConnection::build_close_datagram(std::size_t budget) {
  Bytes datagram;
  for (auto level : kLevels) {
    if (!level_usable(level)) continue;
    ConnectionCloseFrame close = *pending_close_;
    if (level != EncryptionLevel::Application && close.application) {
      // Application closes before 1-RTT are sent as APPLICATION_ERROR (RFC 9000 §10.2.3).
      close = ConnectionCloseFrame{false, kApplicationErrorCode, 0, {}};
    }
    Bytes payload;
    encode_connection_close(payload, close);
    auto packet = seal_packet(level, space(level).next_pn++, payload);
    if (!packet || datagram.size() + packet->size() > budget) break;
    datagram.insert(datagram.end(), packet->begin(), packet->end());
  }
  // Sent once (§10.2.1 would allow repeating it; a QAD connection has nothing left to say).
  pending_close_.reset();
  enter_closed(end_reason_);
  if (datagram.empty()) return std::nullopt;
  bytes_sent_ += datagram.size();
  return datagram;
}

std::vector<QadConnection::PlannedPacket> QadConnection::plan_packets(std::size_t budget,
                                                                      Clock::time_point now) {
  std::vector<PlannedPacket> plan;
  std::size_t used = 0;
  for (auto level : kLevels) {
    if (!level_usable(level)) continue;
    const std::size_t overhead = packet_overhead(level);
    if (used + overhead + 8 > budget) break;
    PlannedPacket planned{level, 0, {}, {}};
    planned.record.time = now;
    planned.payload = build_payload(level, budget - used - overhead, planned.record, now);
    if (planned.payload.empty()) continue;
    used += overhead + planned.payload.size();
    planned.pn = space(level).next_pn++;
    plan.push_back(std::move(planned));
  }
  return plan;
}

std::optional<Bytes> QadConnection::seal_datagram(std::vector<PlannedPacket>& plan) {
  const bool ack_eliciting_initial =
      std::any_of(plan.begin(), plan.end(), [](const PlannedPacket& p) {
        return p.level == EncryptionLevel::Initial && p.record.ack_eliciting;
      });
  std::vector<Bytes> packets;
  std::size_t total = 0;
  for (const auto& planned : plan) {
    auto packet = seal_packet(planned.level, planned.pn, planned.payload);
    if (!packet) return std::nullopt;
    total += packet->size();
    packets.push_back(std::move(*packet));
  }
  // A datagram carrying an ack-eliciting Initial is padded to 1200 bytes (RFC 9000 §14.1): PADDING
  // frames in the last packet, sealed again.
  if (ack_eliciting_initial && total < kMinInitialDatagramSize) {
    PlannedPacket& last = plan.back();
    encode_padding(last.payload, kMinInitialDatagramSize - total);
    auto packet = seal_packet(last.level, last.pn, last.payload);
    if (!packet) return std::nullopt;
    total += packet->size() - packets.back().size();
    packets.back() = std::move(*packet);
  }
  Bytes datagram;
  datagram.reserve(total);
  for (const auto& packet : packets) datagram.insert(datagram.end(), packet.begin(), packet.end());
  return datagram;
}

std::optional<Bytes> QadConnection::build_datagram(Clock::time_point now) {
  const std::size_t budget = send_budget();
  if (budget == 0) {
    if (pending_close_) {
      pending_close_.reset();  // no budget left to say goodbye: close silently
      enter_closed(end_reason_);
    }
    return std::nullopt;
  }
  if (pending_close_) return build_close_datagram(budget);

  // An ack-eliciting Initial must go in a 1200-byte datagram (RFC 9000 §14.1); wait for budget.
  const Space& initial = space(EncryptionLevel::Initial);
  if (level_usable(EncryptionLevel::Initial) &&
      (!initial.crypto_tx_queue.empty() || initial.probe_pending) &&
      budget < kMinInitialDatagramSize) {
    return std::nullopt;
  }

  std::vector<PlannedPacket> plan = plan_packets(budget, now);
  if (plan.empty()) return std::nullopt;
  auto datagram = seal_datagram(plan);
  if (!datagram) return std::nullopt;
  // Only ack-eliciting packets are tracked for loss and probes (RFC 9002 §2, §6.2).
  for (auto& planned : plan) {
    if (planned.record.ack_eliciting) {
      space(planned.level).in_flight.emplace(planned.pn, std::move(planned.record));
    }
  }
  bytes_sent_ += datagram->size();
  return datagram;
}

std::vector<OutgoingDatagram> QadConnection::take_datagrams(Clock::time_point now) {
  std::vector<OutgoingDatagram> out;
  // Bounded: a flight is a few datagrams; the rest waits for ACKs or the next timer.
  for (int i = 0; i < 16 && state_ != State::Closed; ++i) {
    auto datagram = build_datagram(now);
    if (!datagram) break;
    out.push_back({peer_, std::move(*datagram)});
  }
  return out;
}

}  // namespace iroh::quic
