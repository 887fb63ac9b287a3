// QUIC frames (RFC 9000 §19): parse_frames() reads every frame of a decrypted payload, one
// parse_* step per frame type, each reading the fields its section lists and nothing more; the
// encoders write the frames a QAD server sends. Pure: bad input gives a FrameError, the
// connection (connection.cpp) turns it into CONNECTION_CLOSE.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "byte_reader.hpp"
#include "iroh/quic/packet.hpp"

namespace iroh::quic {
namespace {

using detail::kMaxVarint;
using detail::Reader;
using detail::varint_size;
using relay::write_varint;

// Each step reads one frame after its type and appends it to `frames`; false = a field is
// missing or out of range, which is a FRAME_ENCODING_ERROR for that frame type (RFC 9000 §12.4).
using Frames = std::vector<Frame>;

// A stream count above 2^60 cannot be encoded as a stream ID (RFC 9000 §19.11, §19.14).
constexpr std::uint64_t kMaxStreams = std::uint64_t{1} << 60;

// PADDING (§19.1): a run of zero bytes is kept as one frame, so a padded packet costs one entry.
bool parse_padding(Reader& r, Frames& frames) {
  std::size_t length = 1;
  while (r.peek() == 0) {
    r.u8();
    ++length;
  }
  frames.emplace_back(PaddingFrame{length});
  return true;
}

// ACK and ACK_ECN (§19.3): ranges are rebuilt from the gaps (§19.3.1); one that would go below
// packet number 0 is an encoding error. ECN counts (§19.3.2) are read and not used.
bool parse_ack(Reader& r, std::uint64_t type, Frames& frames) {
  auto largest = r.varint();
  auto delay = r.varint();
  auto count = r.varint();
  auto first_range = r.varint();
  if (!largest || !delay || !count || !first_range || *first_range > *largest) return false;
  AckFrame ack;
  ack.ack_delay = *delay;
  ack.ranges.push_back({*largest - *first_range, *largest});
  // Bounded by the payload: every range takes at least two bytes.
  for (std::uint64_t i = 0; i < *count; ++i) {
    auto gap = r.varint();
    auto length = r.varint();
    if (!gap || !length) return false;
    const std::uint64_t previous_smallest = ack.ranges.back().smallest;
    if (previous_smallest < *gap + 2) return false;
    const std::uint64_t range_largest = previous_smallest - *gap - 2;
    if (*length > range_largest) return false;
    ack.ranges.push_back({range_largest - *length, range_largest});
  }
  if (type == 0x03) {
    for (int i = 0; i < 3; ++i) {
      if (!r.varint()) return false;
    }
  }
  frames.emplace_back(std::move(ack));
  return true;
}

// RESET_STREAM (§19.4: id, error code, final size) and STOP_SENDING (§19.5: id, error code).
bool parse_reset_or_stop(Reader& r, std::uint64_t type, Frames& frames) {
  auto id = r.varint();
  auto code = r.varint();
  if (!id || !code || (type == 0x04 && !r.varint())) return false;
  frames.emplace_back(StreamFrame{*id});
  return true;
}

// CRYPTO (§19.6): the end of the data must stay below 2^62.
bool parse_crypto(Reader& r, Frames& frames) {
  auto offset = r.varint();
  auto length = r.varint();
  if (!offset || !length || *offset + *length > kMaxVarint) return false;
  auto data = r.bytes(*length);
  if (!data) return false;
  frames.emplace_back(CryptoFrame{*offset, Bytes(data->begin(), data->end())});
  return true;
}

// STREAM (§19.8): type bits OFF (0x04) and LEN (0x02); without LEN the data runs to the end of
// the packet. Read only so that the stream error can name the stream.
bool parse_stream(Reader& r, std::uint64_t type, Frames& frames) {
  auto id = r.varint();
  if (!id) return false;
  if ((type & 0x04) && !r.varint()) return false;
  if (type & 0x02) {
    auto length = r.varint();
    if (!length || !r.bytes(*length)) return false;
  } else {
    r.bytes(r.remaining());
  }
  frames.emplace_back(StreamFrame{*id});
  return true;
}

// MAX_DATA (§19.9) and DATA_BLOCKED (§19.12): one integer, ignored.
bool parse_connection_flow_control(Reader& r, std::uint64_t type, Frames& frames) {
  if (!r.varint()) return false;
  frames.emplace_back(IgnoredFrame{type});
  return true;
}

// MAX_STREAM_DATA (§19.10) and STREAM_DATA_BLOCKED (§19.13): a stream ID and an integer.
bool parse_stream_flow_control(Reader& r, Frames& frames) {
  auto id = r.varint();
  if (!id || !r.varint()) return false;
  frames.emplace_back(StreamFrame{*id});
  return true;
}

// MAX_STREAMS (§19.11) and STREAMS_BLOCKED (§19.14): a stream count, at most 2^60.
bool parse_stream_limit(Reader& r, std::uint64_t type, Frames& frames) {
  auto max = r.varint();
  if (!max || *max > kMaxStreams) return false;
  frames.emplace_back(IgnoredFrame{type});
  return true;
}

// NEW_CONNECTION_ID (§19.15): Retire Prior To may not exceed the sequence number, and the
// connection ID is 1 to 20 bytes.
bool parse_new_connection_id(Reader& r, Frames& frames) {
  auto seq = r.varint();
  auto retire = r.varint();
  auto len = r.u8();
  if (!seq || !retire || !len || *retire > *seq || *len < 1 || *len > kMaxConnectionIdSize) {
    return false;
  }
  auto cid = r.bytes(*len);
  auto token = r.array<16>();
  if (!cid || !token) return false;
  NewConnectionIdFrame f;
  f.sequence = *seq;
  f.retire_prior_to = *retire;
  f.connection_id.assign(cid->begin(), cid->end());
  f.reset_token = *token;
  frames.emplace_back(std::move(f));
  return true;
}

// RETIRE_CONNECTION_ID (§19.16).
bool parse_retire_connection_id(Reader& r, Frames& frames) {
  auto seq = r.varint();
  if (!seq) return false;
  frames.emplace_back(RetireConnectionIdFrame{*seq});
  return true;
}

// PATH_CHALLENGE (§19.17) and PATH_RESPONSE (§19.18): 8 bytes of data.
bool parse_path_frame(Reader& r, std::uint64_t type, Frames& frames) {
  auto data = r.array<8>();
  if (!data) return false;
  if (type == 0x1a) {
    frames.emplace_back(PathChallengeFrame{*data});
  } else {
    frames.emplace_back(PathResponseFrame{*data});
  }
  return true;
}

// CONNECTION_CLOSE (§19.19): 0x1c carries the frame type that caused a transport error, 0x1d
// (application) does not.
bool parse_connection_close(Reader& r, std::uint64_t type, Frames& frames) {
  ConnectionCloseFrame f;
  f.application = type == 0x1d;
  auto code = r.varint();
  if (!code) return false;
  f.error_code = *code;
  if (!f.application) {
    auto frame_type = r.varint();
    if (!frame_type) return false;
    f.frame_type = *frame_type;
  }
  auto len = r.varint();
  if (!len) return false;
  auto reason = r.bytes(*len);
  if (!reason) return false;
  f.reason.assign(reason->begin(), reason->end());
  frames.emplace_back(std::move(f));
  return true;
}

// OBSERVED_ADDRESS (spec relay.md §7.1, draft-ietf-quic-address-discovery): sequence, 4 or 16
// address bytes by frame type, port. Parsed whole so that a malformed one is an encoding error.
bool parse_observed_address(Reader& r, std::uint64_t type, Frames& frames) {
  ObservedAddressFrame f;
  f.ipv6 = type == kObservedIpv6AddressFrame;
  auto seq = r.varint();
  auto ip = r.bytes(f.ipv6 ? 16 : 4);
  auto port = r.array<2>();
  if (!seq || !ip || !port) return false;
  f.sequence = *seq;
  std::copy(ip->begin(), ip->end(), f.ip.begin());
  f.port = static_cast<std::uint16_t>(((*port)[0] << 8) | (*port)[1]);
  frames.emplace_back(f);
  return true;
}

// One frame of type `type` (the frame types of RFC 9000 §19 / table 3, plus the address
// discovery ones); false for an unknown type too (§12.4: FRAME_ENCODING_ERROR).
bool parse_frame(Reader& r, std::uint64_t type, Frames& frames) {
  switch (type) {
    case 0x00:
      return parse_padding(r, frames);
    case 0x01:  // PING (§19.2)
      frames.emplace_back(PingFrame{});
      return true;
    case 0x02:
    case 0x03:
      return parse_ack(r, type, frames);
    case 0x04:
    case 0x05:
      return parse_reset_or_stop(r, type, frames);
    case 0x06:
      return parse_crypto(r, frames);
    case 0x08:
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x0e:
    case 0x0f:
      return parse_stream(r, type, frames);
    case 0x10:
    case 0x14:
      return parse_connection_flow_control(r, type, frames);
    case 0x11:
    case 0x15:
      return parse_stream_flow_control(r, frames);
    case 0x12:
    case 0x13:
    case 0x16:
    case 0x17:
      return parse_stream_limit(r, type, frames);
    case 0x18:
      return parse_new_connection_id(r, frames);
    case 0x19:
      return parse_retire_connection_id(r, frames);
    case 0x1a:
    case 0x1b:
      return parse_path_frame(r, type, frames);
    case 0x1c:
    case 0x1d:
      return parse_connection_close(r, type, frames);
    case 0x1e:  // HANDSHAKE_DONE (§19.20)
      frames.emplace_back(HandshakeDoneFrame{});
      return true;
    case kObservedIpv4AddressFrame:
    case kObservedIpv6AddressFrame:
      return parse_observed_address(r, type, frames);
    default:
      return false;
  }
}

}  // namespace

std::variant<std::vector<Frame>, FrameError> parse_frames(ByteSpan payload) {
  // A packet without frames is a PROTOCOL_VIOLATION (RFC 9000 §12.4).
  if (payload.empty()) return FrameError{TransportError::ProtocolViolation, 0};
  std::vector<Frame> frames;
  Reader r(payload);
  // Bounded: every frame consumes at least its type byte.
  while (!r.empty()) {
    auto type = r.varint();
    if (!type) return FrameError{TransportError::FrameEncodingError, 0};
    // Only servers send NEW_TOKEN (§19.7): from a client it is a PROTOCOL_VIOLATION.
    if (*type == 0x07) return FrameError{TransportError::ProtocolViolation, *type};
    if (!parse_frame(r, *type, frames))
      return FrameError{TransportError::FrameEncodingError, *type};
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

}  // namespace iroh::quic
