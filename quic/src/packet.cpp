#include "iroh/quic/packet.hpp"

#include <openssl/rand.h>

#include <algorithm>

#include "iroh/relay_proto.hpp"

namespace iroh::quic {
namespace {

using relay::read_varint;
using relay::write_varint;

constexpr std::uint64_t kMaxVarint = (std::uint64_t{1} << 62) - 1;

// Sequential reader over a span; every read checks bounds.
class Reader {
 public:
  explicit Reader(ByteSpan in) : in_(in) {}

  bool empty() const { return pos_ >= in_.size(); }
  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return in_.size() - pos_; }

  std::optional<std::uint64_t> varint() {
    auto v = read_varint(in_.subspan(pos_));
    if (!v) return std::nullopt;
    pos_ += v->length;
    return v->value;
  }
  std::optional<std::uint8_t> u8() {
    if (remaining() < 1) return std::nullopt;
    return in_[pos_++];
  }
  std::optional<std::uint32_t> u32() {
    if (remaining() < 4) return std::nullopt;
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | in_[pos_++];
    return v;
  }
  std::optional<ByteSpan> bytes(std::uint64_t n) {
    if (n > remaining()) return std::nullopt;
    ByteSpan out = in_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return out;
  }
  template <std::size_t N>
  std::optional<std::array<std::uint8_t, N>> array() {
    auto b = bytes(N);
    if (!b) return std::nullopt;
    std::array<std::uint8_t, N> out{};
    std::copy(b->begin(), b->end(), out.begin());
    return out;
  }

 private:
  ByteSpan in_;
  std::size_t pos_ = 0;
};

void put_u32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void put_packet_number(Bytes& out, std::uint64_t pn, std::size_t pn_size) {
  for (std::size_t i = pn_size; i-- > 0;) out.push_back(static_cast<std::uint8_t>(pn >> (8 * i)));
}

std::size_t varint_size(std::uint64_t v) {
  if (v < 64) return 1;
  if (v < 16384) return 2;
  if (v < (1u << 30)) return 4;
  return 8;
}

}  // namespace

std::optional<PacketHeader> parse_packet_header(ByteSpan datagram, std::size_t short_dcid_size) {
  Reader r(datagram);
  auto first = r.u8();
  if (!first) return std::nullopt;
  PacketHeader h;
  if ((*first & 0x80) == 0) {
    if ((*first & 0x40) == 0 || short_dcid_size > kMaxConnectionIdSize) return std::nullopt;
    auto dcid = r.bytes(short_dcid_size);
    if (!dcid) return std::nullopt;
    h.type = PacketType::OneRtt;
    h.version = kVersion1;
    h.dcid.assign(dcid->begin(), dcid->end());
    h.pn_offset = r.pos();
    h.packet_size = datagram.size();
    return h;
  }
  auto version = r.u32();
  if (!version) return std::nullopt;
  h.version = *version;
  // Connection IDs of unknown versions may be up to 255 bytes (RFC 8999 §5.1).
  const std::size_t max_cid = *version == kVersion1 ? kMaxConnectionIdSize : 255;
  auto dcid_len = r.u8();
  if (!dcid_len || *dcid_len > max_cid) return std::nullopt;
  auto dcid = r.bytes(*dcid_len);
  if (!dcid) return std::nullopt;
  auto scid_len = r.u8();
  if (!scid_len || *scid_len > max_cid) return std::nullopt;
  auto scid = r.bytes(*scid_len);
  if (!scid) return std::nullopt;
  h.dcid.assign(dcid->begin(), dcid->end());
  h.scid.assign(scid->begin(), scid->end());
  h.packet_size = datagram.size();
  if (*version == 0) {
    h.type = PacketType::VersionNegotiation;
    return h;
  }
  if (*version != kVersion1) {
    h.type = PacketType::Initial;
    return h;
  }
  if ((*first & 0x40) == 0) return std::nullopt;
  switch ((*first >> 4) & 0x03) {
    case 0:
      h.type = PacketType::Initial;
      break;
    case 1:
      h.type = PacketType::ZeroRtt;
      break;
    case 2:
      h.type = PacketType::Handshake;
      break;
    default:
      h.type = PacketType::Retry;
      return h;
  }
  if (h.type == PacketType::Initial) {
    auto token_len = r.varint();
    if (!token_len) return std::nullopt;
    auto token = r.bytes(*token_len);
    if (!token) return std::nullopt;
    h.token.assign(token->begin(), token->end());
  }
  auto length = r.varint();
  if (!length || *length > r.remaining()) return std::nullopt;
  h.pn_offset = r.pos();
  h.packet_size = r.pos() + static_cast<std::size_t>(*length);
  return h;
}

std::uint64_t decode_packet_number(std::uint64_t largest_received, std::uint64_t truncated,
                                   std::size_t pn_bits) {
  const std::uint64_t expected = largest_received + 1;
  const std::uint64_t window = std::uint64_t{1} << pn_bits;
  const std::uint64_t half = window / 2;
  const std::uint64_t mask = window - 1;
  const std::uint64_t candidate = (expected & ~mask) | truncated;
  if (candidate + half <= expected && candidate < (std::uint64_t{1} << 62) - window) {
    return candidate + window;
  }
  if (candidate > expected + half && candidate >= window) return candidate - window;
  return candidate;
}

std::optional<OpenedPacket> open_packet(ByteSpan packet, const PacketHeader& header,
                                        const PacketKeys& keys, std::uint64_t largest_received) {
  const std::size_t sample_offset = header.pn_offset + 4;
  if (header.pn_offset == 0 || packet.size() < sample_offset + kHeaderProtectionSampleSize) {
    return std::nullopt;
  }
  auto mask = header_protection_mask(keys, packet.subspan(sample_offset, 16));
  if (!mask) return std::nullopt;
  const bool long_header = (packet[0] & 0x80) != 0;
  const std::uint8_t first = packet[0] ^ ((*mask)[0] & (long_header ? 0x0f : 0x1f));
  const std::size_t pn_size = (first & 0x03) + 1;
  OpenedPacket out;
  out.header.assign(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(header.pn_offset));
  out.header[0] = first;
  std::uint64_t truncated = 0;
  for (std::size_t i = 0; i < pn_size; ++i) {
    const std::uint8_t b = packet[header.pn_offset + i] ^ (*mask)[1 + i];
    out.header.push_back(b);
    truncated = (truncated << 8) | b;
  }
  out.packet_number = decode_packet_number(largest_received, truncated, pn_size * 8);
  auto payload =
      aead_open(keys, out.packet_number, out.header, packet.subspan(header.pn_offset + pn_size));
  if (!payload) return std::nullopt;
  // Reserved bits are checked only after authentication (RFC 9000 §17.2), as a forged header
  // must not be able to close the connection.
  const std::uint8_t reserved = long_header ? (first & 0x0c) : (first & 0x18);
  if (reserved != 0) return std::nullopt;
  out.payload = std::move(*payload);
  out.key_phase = !long_header && (first & 0x04) != 0;
  return out;
}

Bytes build_long_header(PacketType type, std::uint32_t version, ByteSpan dcid, ByteSpan scid,
                        ByteSpan token, std::uint64_t packet_number, std::size_t pn_size,
                        std::size_t payload_size) {
  std::uint8_t type_bits = 0;
  switch (type) {
    case PacketType::ZeroRtt:
      type_bits = 1;
      break;
    case PacketType::Handshake:
      type_bits = 2;
      break;
    case PacketType::Retry:
      type_bits = 3;
      break;
    default:
      break;
  }
  pn_size = std::clamp<std::size_t>(pn_size, 1, 4);
  Bytes out;
  out.push_back(static_cast<std::uint8_t>(0xc0 | (type_bits << 4) | (pn_size - 1)));
  put_u32(out, version);
  out.push_back(static_cast<std::uint8_t>(dcid.size()));
  out.insert(out.end(), dcid.begin(), dcid.end());
  out.push_back(static_cast<std::uint8_t>(scid.size()));
  out.insert(out.end(), scid.begin(), scid.end());
  if (type == PacketType::Initial) {
    write_varint(out, token.size());
    out.insert(out.end(), token.begin(), token.end());
  }
  write_varint(out, pn_size + payload_size + kAeadTagSize);
  put_packet_number(out, packet_number, pn_size);
  return out;
}

Bytes build_short_header(ByteSpan dcid, std::uint64_t packet_number, std::size_t pn_size,
                         bool key_phase) {
  pn_size = std::clamp<std::size_t>(pn_size, 1, 4);
  Bytes out;
  out.push_back(static_cast<std::uint8_t>(0x40 | (key_phase ? 0x04 : 0) | (pn_size - 1)));
  out.insert(out.end(), dcid.begin(), dcid.end());
  put_packet_number(out, packet_number, pn_size);
  return out;
}

std::optional<Bytes> protect_packet(ByteSpan header, std::size_t pn_size,
                                    std::uint64_t packet_number, ByteSpan payload,
                                    const PacketKeys& keys) {
  if (header.size() < pn_size + 1 || pn_size < 1 || pn_size > 4) return std::nullopt;
  const std::size_t pn_offset = header.size() - pn_size;
  auto sealed = aead_seal(keys, packet_number, header, payload);
  if (!sealed) return std::nullopt;
  Bytes packet(header.begin(), header.end());
  packet.insert(packet.end(), sealed->begin(), sealed->end());
  if (packet.size() < pn_offset + 4 + kHeaderProtectionSampleSize) return std::nullopt;
  auto mask = header_protection_mask(keys, ByteSpan(packet).subspan(pn_offset + 4, 16));
  if (!mask) return std::nullopt;
  packet[0] ^= (*mask)[0] & ((packet[0] & 0x80) ? 0x0f : 0x1f);
  for (std::size_t i = 0; i < pn_size; ++i) packet[pn_offset + i] ^= (*mask)[1 + i];
  return packet;
}

Bytes build_version_negotiation(ByteSpan client_dcid, ByteSpan client_scid,
                                std::span<const std::uint32_t> versions, std::uint8_t unused_bits) {
  Bytes out;
  out.push_back(static_cast<std::uint8_t>(0x80 | (unused_bits & 0x7f)));
  put_u32(out, 0);
  out.push_back(static_cast<std::uint8_t>(client_scid.size()));
  out.insert(out.end(), client_scid.begin(), client_scid.end());
  out.push_back(static_cast<std::uint8_t>(client_dcid.size()));
  out.insert(out.end(), client_dcid.begin(), client_dcid.end());
  for (auto v : versions) put_u32(out, v);
  return out;
}

// ---- frames --------------------------------------------------------------------------------

std::variant<std::vector<Frame>, FrameError> parse_frames(ByteSpan payload) {
  std::vector<Frame> frames;
  if (payload.empty()) return FrameError{TransportError::ProtocolViolation, 0};
  Reader r(payload);
  while (!r.empty()) {
    auto type_opt = r.varint();
    if (!type_opt) return FrameError{TransportError::FrameEncodingError, 0};
    const std::uint64_t type = *type_opt;
    const FrameError bad{TransportError::FrameEncodingError, type};
    if (type == 0x00) {
      std::size_t length = 1;
      while (!r.empty() && payload[r.pos()] == 0) {
        r.u8();
        ++length;
      }
      frames.emplace_back(PaddingFrame{length});
    } else if (type == 0x01) {
      frames.emplace_back(PingFrame{});
    } else if (type == 0x02 || type == 0x03) {
      auto largest = r.varint();
      auto delay = r.varint();
      auto count = r.varint();
      auto first_range = r.varint();
      if (!largest || !delay || !count || !first_range || *first_range > *largest) return bad;
      AckFrame ack;
      ack.ack_delay = *delay;
      ack.ranges.push_back({*largest - *first_range, *largest});
      for (std::uint64_t i = 0; i < *count; ++i) {
        auto gap = r.varint();
        auto length = r.varint();
        if (!gap || !length) return bad;
        const std::uint64_t previous_smallest = ack.ranges.back().smallest;
        if (previous_smallest < *gap + 2) return bad;
        const std::uint64_t range_largest = previous_smallest - *gap - 2;
        if (*length > range_largest) return bad;
        ack.ranges.push_back({range_largest - *length, range_largest});
      }
      if (type == 0x03) {
        for (int i = 0; i < 3; ++i) {
          if (!r.varint()) return bad;
        }
      }
      frames.emplace_back(std::move(ack));
    } else if (type == 0x04 || type == 0x05) {  // RESET_STREAM, STOP_SENDING
      auto id = r.varint();
      auto code = r.varint();
      if (!id || !code || (type == 0x04 && !r.varint())) return bad;
      frames.emplace_back(StreamFrame{*id});
    } else if (type == 0x06) {
      auto offset = r.varint();
      auto length = r.varint();
      if (!offset || !length) return bad;
      if (*offset + *length > kMaxVarint)
        return FrameError{TransportError::FrameEncodingError, type};
      auto data = r.bytes(*length);
      if (!data) return bad;
      frames.emplace_back(CryptoFrame{*offset, Bytes(data->begin(), data->end())});
    } else if (type == 0x07) {
      return FrameError{TransportError::ProtocolViolation, type};  // clients never send NEW_TOKEN
    } else if (type >= 0x08 && type <= 0x0f) {
      auto id = r.varint();
      if (!id) return bad;
      if ((type & 0x04) && !r.varint()) return bad;
      if (type & 0x02) {
        auto length = r.varint();
        if (!length || !r.bytes(*length)) return bad;
      } else {
        r.bytes(r.remaining());
      }
      frames.emplace_back(StreamFrame{*id});
    } else if (type == 0x10 || type == 0x14) {  // MAX_DATA, DATA_BLOCKED
      if (!r.varint()) return bad;
      frames.emplace_back(IgnoredFrame{type});
    } else if (type == 0x11 || type == 0x15) {  // MAX_STREAM_DATA, STREAM_DATA_BLOCKED
      auto id = r.varint();
      if (!id || !r.varint()) return bad;
      frames.emplace_back(StreamFrame{*id});
    } else if (type >= 0x12 && type <= 0x13) {  // MAX_STREAMS
      auto max = r.varint();
      if (!max || *max > (std::uint64_t{1} << 60)) return bad;
      frames.emplace_back(IgnoredFrame{type});
    } else if (type >= 0x16 && type <= 0x17) {  // STREAMS_BLOCKED
      auto max = r.varint();
      if (!max || *max > (std::uint64_t{1} << 60)) return bad;
      frames.emplace_back(IgnoredFrame{type});
    } else if (type == 0x18) {
      NewConnectionIdFrame f;
      auto seq = r.varint();
      auto retire = r.varint();
      auto len = r.u8();
      if (!seq || !retire || !len || *retire > *seq || *len < 1 || *len > kMaxConnectionIdSize) {
        return bad;
      }
      auto cid = r.bytes(*len);
      auto token = r.array<16>();
      if (!cid || !token) return bad;
      f.sequence = *seq;
      f.retire_prior_to = *retire;
      f.connection_id.assign(cid->begin(), cid->end());
      f.reset_token = *token;
      frames.emplace_back(std::move(f));
    } else if (type == 0x19) {
      auto seq = r.varint();
      if (!seq) return bad;
      frames.emplace_back(RetireConnectionIdFrame{*seq});
    } else if (type == 0x1a || type == 0x1b) {
      auto data = r.array<8>();
      if (!data) return bad;
      if (type == 0x1a) {
        frames.emplace_back(PathChallengeFrame{*data});
      } else {
        frames.emplace_back(PathResponseFrame{*data});
      }
    } else if (type == 0x1c || type == 0x1d) {
      ConnectionCloseFrame f;
      f.application = type == 0x1d;
      auto code = r.varint();
      if (!code) return bad;
      f.error_code = *code;
      if (!f.application) {
        auto frame_type = r.varint();
        if (!frame_type) return bad;
        f.frame_type = *frame_type;
      }
      auto len = r.varint();
      if (!len) return bad;
      auto reason = r.bytes(*len);
      if (!reason) return bad;
      f.reason.assign(reason->begin(), reason->end());
      frames.emplace_back(std::move(f));
    } else if (type == 0x1e) {
      frames.emplace_back(HandshakeDoneFrame{});
    } else if (type == kObservedIpv4AddressFrame || type == kObservedIpv6AddressFrame) {
      ObservedAddressFrame f;
      f.ipv6 = type == kObservedIpv6AddressFrame;
      auto seq = r.varint();
      auto ip = r.bytes(f.ipv6 ? 16 : 4);
      auto port = r.array<2>();
      if (!seq || !ip || !port) return bad;
      f.sequence = *seq;
      std::copy(ip->begin(), ip->end(), f.ip.begin());
      f.port = static_cast<std::uint16_t>(((*port)[0] << 8) | (*port)[1]);
      frames.emplace_back(f);
    } else {
      return bad;
    }
  }
  return frames;
}

bool is_ack_eliciting(const Frame& frame) {
  return !std::holds_alternative<PaddingFrame>(frame) && !std::holds_alternative<AckFrame>(frame) &&
         !std::holds_alternative<ConnectionCloseFrame>(frame);
}

void encode_padding(Bytes& out, std::size_t length) {
  out.insert(out.end(), length, 0);
}
void encode_ping(Bytes& out) {
  out.push_back(0x01);
}

void encode_ack(Bytes& out, const AckFrame& ack) {
  if (ack.ranges.empty()) return;
  out.push_back(0x02);
  write_varint(out, ack.ranges[0].largest);
  write_varint(out, ack.ack_delay);
  write_varint(out, ack.ranges.size() - 1);
  write_varint(out, ack.ranges[0].largest - ack.ranges[0].smallest);
  for (std::size_t i = 1; i < ack.ranges.size(); ++i) {
    write_varint(out, ack.ranges[i - 1].smallest - ack.ranges[i].largest - 2);
    write_varint(out, ack.ranges[i].largest - ack.ranges[i].smallest);
  }
}

void encode_crypto(Bytes& out, std::uint64_t offset, ByteSpan data) {
  out.push_back(0x06);
  write_varint(out, offset);
  write_varint(out, data.size());
  out.insert(out.end(), data.begin(), data.end());
}

std::size_t crypto_frame_overhead(std::uint64_t offset, std::size_t length) {
  return 1 + varint_size(offset) + varint_size(length);
}

void encode_connection_close(Bytes& out, const ConnectionCloseFrame& close) {
  out.push_back(close.application ? 0x1d : 0x1c);
  write_varint(out, close.error_code);
  if (!close.application) write_varint(out, close.frame_type);
  write_varint(out, close.reason.size());
  out.insert(out.end(), close.reason.begin(), close.reason.end());
}

void encode_handshake_done(Bytes& out) {
  out.push_back(0x1e);
}

void encode_path_response(Bytes& out, std::span<const std::uint8_t, 8> data) {
  out.push_back(0x1b);
  out.insert(out.end(), data.begin(), data.end());
}

void encode_observed_address(Bytes& out, const ObservedAddressFrame& frame) {
  write_varint(out, frame.ipv6 ? kObservedIpv6AddressFrame : kObservedIpv4AddressFrame);
  write_varint(out, frame.sequence);
  out.insert(out.end(), frame.ip.begin(), frame.ip.begin() + (frame.ipv6 ? 16 : 4));
  out.push_back(static_cast<std::uint8_t>(frame.port >> 8));
  out.push_back(static_cast<std::uint8_t>(frame.port));
}

void encode_new_connection_id(Bytes& out, const NewConnectionIdFrame& frame) {
  out.push_back(0x18);
  write_varint(out, frame.sequence);
  write_varint(out, frame.retire_prior_to);
  out.push_back(static_cast<std::uint8_t>(frame.connection_id.size()));
  out.insert(out.end(), frame.connection_id.begin(), frame.connection_id.end());
  out.insert(out.end(), frame.reset_token.begin(), frame.reset_token.end());
}

void encode_retire_connection_id(Bytes& out, std::uint64_t sequence) {
  out.push_back(0x19);
  write_varint(out, sequence);
}

Bytes build_stateless_reset(std::span<const std::uint8_t, 16> token, std::size_t size) {
  Bytes out(std::max<std::size_t>(size, 21));
  RAND_bytes(out.data(), static_cast<int>(out.size() - token.size()));
  out[0] = static_cast<std::uint8_t>(0x40 | (out[0] & 0x3f));  // short header form, fixed bit
  std::copy(token.begin(), token.end(), out.end() - static_cast<std::ptrdiff_t>(token.size()));
  return out;
}

// ---- transport parameters ------------------------------------------------------------------

namespace {

enum : std::uint64_t {
  kOriginalDcid = 0x00,
  kMaxIdleTimeout = 0x01,
  kStatelessResetToken = 0x02,
  kMaxUdpPayloadSize = 0x03,
  kInitialMaxData = 0x04,
  kInitialMaxStreamDataBidiLocal = 0x05,
  kInitialMaxStreamDataBidiRemote = 0x06,
  kInitialMaxStreamDataUni = 0x07,
  kInitialMaxStreamsBidi = 0x08,
  kInitialMaxStreamsUni = 0x09,
  kAckDelayExponent = 0x0a,
  kMaxAckDelay = 0x0b,
  kDisableActiveMigration = 0x0c,
  kActiveConnectionIdLimit = 0x0e,
  kInitialScid = 0x0f,
  kRetryScid = 0x10,
};

std::optional<std::uint64_t> single_varint(ByteSpan value) {
  auto v = read_varint(value);
  if (!v || v->length != value.size()) return std::nullopt;
  return v->value;
}

void put_varint_param(Bytes& out, std::uint64_t id, std::uint64_t value) {
  write_varint(out, id);
  write_varint(out, varint_size(value));
  write_varint(out, value);
}

void put_bytes_param(Bytes& out, std::uint64_t id, ByteSpan value) {
  write_varint(out, id);
  write_varint(out, value.size());
  out.insert(out.end(), value.begin(), value.end());
}

}  // namespace

std::optional<TransportParameters> decode_transport_parameters(ByteSpan in) {
  TransportParameters p;
  std::vector<std::uint64_t> seen;
  Reader r(in);
  while (!r.empty()) {
    auto id = r.varint();
    auto len = r.varint();
    if (!id || !len) return std::nullopt;
    auto value = r.bytes(*len);
    if (!value) return std::nullopt;
    if (std::find(seen.begin(), seen.end(), *id) != seen.end()) return std::nullopt;
    // Bounded: every parameter takes at least 2 bytes of input.
    seen.push_back(*id);
    auto cid = [&]() -> std::optional<Bytes> {
      if (value->size() > kMaxConnectionIdSize) return std::nullopt;
      return Bytes(value->begin(), value->end());
    };
    std::optional<std::uint64_t> number;
    switch (*id) {
      case kOriginalDcid:
        if (!(p.original_destination_connection_id = cid())) return std::nullopt;
        continue;
      case kInitialScid:
        if (!(p.initial_source_connection_id = cid())) return std::nullopt;
        continue;
      case kRetryScid:
        if (!(p.retry_source_connection_id = cid())) return std::nullopt;
        continue;
      case kStatelessResetToken: {
        if (value->size() != 16) return std::nullopt;
        std::array<std::uint8_t, 16> token{};
        std::copy(value->begin(), value->end(), token.begin());
        p.stateless_reset_token = token;
        continue;
      }
      case kDisableActiveMigration:
        if (!value->empty()) return std::nullopt;
        p.disable_active_migration = true;
        continue;
      case kMaxIdleTimeout:
      case kMaxUdpPayloadSize:
      case kInitialMaxData:
      case kInitialMaxStreamDataBidiLocal:
      case kInitialMaxStreamDataBidiRemote:
      case kInitialMaxStreamDataUni:
      case kInitialMaxStreamsBidi:
      case kInitialMaxStreamsUni:
      case kAckDelayExponent:
      case kMaxAckDelay:
      case kActiveConnectionIdLimit:
      case kAddressDiscoveryParameter:
        number = single_varint(*value);
        if (!number) return std::nullopt;
        break;
      default:
        continue;  // unknown or server-only (preferred_address): ignored
    }
    const std::uint64_t v = *number;
    switch (*id) {
      case kMaxIdleTimeout:
        p.max_idle_timeout_ms = v;
        break;
      case kMaxUdpPayloadSize:
        if (v < 1200) return std::nullopt;
        p.max_udp_payload_size = v;
        break;
      case kInitialMaxData:
        p.initial_max_data = v;
        break;
      case kInitialMaxStreamDataBidiLocal:
        p.initial_max_stream_data_bidi_local = v;
        break;
      case kInitialMaxStreamDataBidiRemote:
        p.initial_max_stream_data_bidi_remote = v;
        break;
      case kInitialMaxStreamDataUni:
        p.initial_max_stream_data_uni = v;
        break;
      case kInitialMaxStreamsBidi:
        if (v > (std::uint64_t{1} << 60)) return std::nullopt;
        p.initial_max_streams_bidi = v;
        break;
      case kInitialMaxStreamsUni:
        if (v > (std::uint64_t{1} << 60)) return std::nullopt;
        p.initial_max_streams_uni = v;
        break;
      case kAckDelayExponent:
        if (v > 20) return std::nullopt;
        p.ack_delay_exponent = v;
        break;
      case kMaxAckDelay:
        if (v >= (1u << 14)) return std::nullopt;
        p.max_ack_delay_ms = v;
        break;
      case kActiveConnectionIdLimit:
        if (v < 2) return std::nullopt;
        p.active_connection_id_limit = v;
        break;
      case kAddressDiscoveryParameter:
        if (v > 2) return std::nullopt;
        p.address_discovery = static_cast<AddressDiscoveryRole>(v);
        break;
      default:
        break;
    }
  }
  return p;
}

Bytes encode_transport_parameters(const TransportParameters& p) {
  Bytes out;
  const TransportParameters defaults;
  if (p.original_destination_connection_id) {
    put_bytes_param(out, kOriginalDcid, *p.original_destination_connection_id);
  }
  if (p.max_idle_timeout_ms) put_varint_param(out, kMaxIdleTimeout, *p.max_idle_timeout_ms);
  if (p.stateless_reset_token) put_bytes_param(out, kStatelessResetToken, *p.stateless_reset_token);
  if (p.max_udp_payload_size != defaults.max_udp_payload_size) {
    put_varint_param(out, kMaxUdpPayloadSize, p.max_udp_payload_size);
  }
  const std::pair<std::uint64_t, std::uint64_t> numbers[] = {
      {kInitialMaxData, p.initial_max_data},
      {kInitialMaxStreamDataBidiLocal, p.initial_max_stream_data_bidi_local},
      {kInitialMaxStreamDataBidiRemote, p.initial_max_stream_data_bidi_remote},
      {kInitialMaxStreamDataUni, p.initial_max_stream_data_uni},
      {kInitialMaxStreamsBidi, p.initial_max_streams_bidi},
      {kInitialMaxStreamsUni, p.initial_max_streams_uni},
  };
  for (const auto& [id, value] : numbers) {
    if (value != 0) put_varint_param(out, id, value);
  }
  if (p.ack_delay_exponent != defaults.ack_delay_exponent) {
    put_varint_param(out, kAckDelayExponent, p.ack_delay_exponent);
  }
  if (p.max_ack_delay_ms != defaults.max_ack_delay_ms) {
    put_varint_param(out, kMaxAckDelay, p.max_ack_delay_ms);
  }
  if (p.disable_active_migration) put_bytes_param(out, kDisableActiveMigration, {});
  if (p.active_connection_id_limit != defaults.active_connection_id_limit) {
    put_varint_param(out, kActiveConnectionIdLimit, p.active_connection_id_limit);
  }
  if (p.initial_source_connection_id) {
    put_bytes_param(out, kInitialScid, *p.initial_source_connection_id);
  }
  if (p.retry_source_connection_id) put_bytes_param(out, kRetryScid, *p.retry_source_connection_id);
  if (p.address_discovery) {
    put_varint_param(out, kAddressDiscoveryParameter,
                     static_cast<std::uint64_t>(*p.address_discovery));
  }
  return out;
}

}  // namespace iroh::quic
