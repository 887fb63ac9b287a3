// Varints, subprotocol negotiation, handshake messages (§4.1) and relay frames (§5).
#include "iroh/relay_proto.hpp"

#include <cstring>

namespace iroh::relay {
namespace {

constexpr std::size_t kKeySize = 32;

std::uint8_t type_byte(FrameType t) {
  return static_cast<std::uint8_t>(t);
}

void append(Bytes& out, ByteSpan bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

void append_u32be(Bytes& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 24));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

std::uint32_t read_u32be(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// Postcard's unsigned varint (LEB128, at most 10 bytes for a u64). Non-minimal encodings are
// accepted, overflow beyond 64 bits is not.
enum class LebStatus { Ok, Truncated, Overflow };
LebStatus read_leb128(ByteSpan in, std::uint64_t& value, std::size_t& length) {
  value = 0;
  for (std::size_t i = 0; i < in.size() && i < 10; ++i) {
    const std::uint64_t part = in[i] & 0x7f;
    if (i == 9 && (in[i] & 0xfe) != 0) return LebStatus::Overflow;
    value |= part << (7 * i);
    if ((in[i] & 0x80) == 0) {
      length = i + 1;
      return LebStatus::Ok;
    }
  }
  return in.size() >= 10 ? LebStatus::Overflow : LebStatus::Truncated;
}

void write_leb128(Bytes& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(value));
}

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), as Rust's String requires.
bool is_valid_utf8(ByteSpan s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::uint8_t b = s[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    std::uint8_t lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      n = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      if (b == 0xe0) lo = 0xa0;
      if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      if (b == 0xf0) lo = 0x90;
      if (b == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (std::size_t k = 2; k <= n; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

EndpointId key_at(const std::uint8_t* p) {
  EndpointId id;
  std::memcpy(id.bytes.data(), p, kKeySize);
  return id;
}

struct SplitFrame {
  std::uint64_t type;
  ByteSpan payload;
};

// Type varint + payload size limit, shared by both frame directions.
DecodeResult<SplitFrame> split_frame(ByteSpan message) {
  if (message.empty()) return DecodeError::Empty;
  const auto type = read_varint(message);
  if (!type) return DecodeError::Truncated;
  const ByteSpan payload = message.subspan(type->length);
  if (payload.size() > kMaxPacketSize) return DecodeError::TooLarge;
  return SplitFrame{type->value, payload};
}

// Payload of types 4-7. Cheap length checks come before the point decompression so that
// malformed frames cost nothing.
DecodeResult<Datagram> decode_datagram(ByteSpan payload, bool batch, KeyCheck key_check) {
  const std::size_t header = kKeySize + 1 + (batch ? 2 : 0);
  if (payload.size() < header) return DecodeError::Truncated;
  Datagram d;
  d.peer = key_at(payload.data());
  d.ecn = static_cast<Ecn>(payload[kKeySize] & 3);
  if (batch) d.segment_size = static_cast<std::uint16_t>(payload[33] << 8 | payload[34]);
  d.contents = payload.subspan(header);
  if (d.contents.empty()) return DecodeError::EmptyDatagram;
  if (key_check == KeyCheck::Verify && !d.peer.is_valid_point()) return DecodeError::InvalidKey;
  return d;
}

template <class T>
DecodeResult<T> decode_ping_data(ByteSpan payload) {
  if (payload.size() != 8) return DecodeError::BadLength;
  T frame;
  std::memcpy(frame.data.data(), payload.data(), 8);
  return frame;
}

// Lifts a DecodeResult<T> into a DecodeResult of a variant containing T.
template <class V, class T>
DecodeResult<V> lift(DecodeResult<T>&& r) {
  if (auto* e = std::get_if<DecodeError>(&r)) return *e;
  return V{std::move(std::get<T>(r))};
}

std::size_t datagram_frame_size(std::uint16_t segment_size, std::size_t contents_size) {
  if (contents_size == 0) return 0;
  const std::size_t total = 1 + kKeySize + 1 + (segment_size != 0 ? 2 : 0) + contents_size;
  return total > kMaxPacketSize ? 0 : total;
}

void write_datagram(std::uint8_t* out, std::uint8_t single_type, const EndpointId& peer, Ecn ecn,
                    std::uint16_t segment_size, ByteSpan contents) {
  const bool batch = segment_size != 0;
  *out++ = static_cast<std::uint8_t>(single_type + (batch ? 1 : 0));
  std::memcpy(out, peer.bytes.data(), kKeySize);
  out += kKeySize;
  *out++ = static_cast<std::uint8_t>(ecn) & 3;
  if (batch) {
    *out++ = static_cast<std::uint8_t>(segment_size >> 8);
    *out++ = static_cast<std::uint8_t>(segment_size);
  }
  std::memcpy(out, contents.data(), contents.size());
}

std::optional<Bytes> encode_datagram(std::uint8_t single_type, const EndpointId& peer, Ecn ecn,
                                     std::uint16_t segment_size, ByteSpan contents) {
  const std::size_t total = datagram_frame_size(segment_size, contents.size());
  if (total == 0) return std::nullopt;
  Bytes out(total);
  write_datagram(out.data(), single_type, peer, ecn, segment_size, contents);
  return out;
}

Bytes encode_fixed(FrameType type, ByteSpan payload) {
  Bytes out;
  out.reserve(1 + payload.size());
  out.push_back(type_byte(type));
  append(out, payload);
  return out;
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

// ---- varint -------------------------------------------------------------------------------------
std::optional<Varint> read_varint(ByteSpan in) {
  if (in.empty()) return std::nullopt;
  const std::size_t length = std::size_t{1} << (in[0] >> 6);
  if (in.size() < length) return std::nullopt;
  std::uint64_t value = in[0] & 0x3f;
  for (std::size_t i = 1; i < length; ++i) value = (value << 8) | in[i];
  return Varint{value, length};
}

void write_varint(Bytes& out, std::uint64_t value) {
  value &= (std::uint64_t{1} << 62) - 1;
  int length;
  std::uint8_t prefix;
  if (value < (1u << 6)) {
    length = 1, prefix = 0x00;
  } else if (value < (1u << 14)) {
    length = 2, prefix = 0x40;
  } else if (value < (1u << 30)) {
    length = 4, prefix = 0x80;
  } else {
    length = 8, prefix = 0xc0;
  }
  for (int i = length - 1; i >= 0; --i) {
    std::uint8_t b = static_cast<std::uint8_t>(value >> (8 * i));
    if (i == length - 1) b |= prefix;
    out.push_back(b);
  }
}

// ---- subprotocol --------------------------------------------------------------------------------
std::optional<ProtocolVersion> negotiate_subprotocol(std::string_view header_value) {
  std::optional<ProtocolVersion> best;
  while (true) {
    const auto comma = header_value.find(',');
    const std::string_view token = trim_spaces(header_value.substr(0, comma));
    std::optional<ProtocolVersion> v;
    if (token == kSubprotocolV2) v = ProtocolVersion::V2;
    if (token == kSubprotocolV1) v = ProtocolVersion::V1;
    if (v && (!best || *v > *best)) best = v;
    if (comma == std::string_view::npos) break;
    header_value.remove_prefix(comma + 1);
  }
  return best;
}

std::string_view subprotocol_name(ProtocolVersion v) {
  return v == ProtocolVersion::V1 ? kSubprotocolV1 : kSubprotocolV2;
}

std::string_view to_string(DecodeError e) {
  switch (e) {
    case DecodeError::Empty:
      return "empty message";
    case DecodeError::Truncated:
      return "truncated frame";
    case DecodeError::TooLarge:
      return "frame too large";
    case DecodeError::UnknownType:
      return "unknown frame type";
    case DecodeError::WrongDirection:
      return "frame type not allowed here";
    case DecodeError::BadLength:
      return "bad payload length";
    case DecodeError::InvalidKey:
      return "invalid endpoint key";
    case DecodeError::EmptyDatagram:
      return "empty datagram";
    case DecodeError::BadEncoding:
      return "malformed encoding";
  }
  return "unknown decode error";
}

// ---- handshake ----------------------------------------------------------------------------------
Bytes encode(const HandshakeMessage& msg) {
  Bytes out;
  std::visit(
      [&](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, ServerChallenge>) {
          out.push_back(type_byte(FrameType::ServerChallenge));
          append(out, m.challenge);
        } else if constexpr (std::is_same_v<M, ClientAuth>) {
          out.reserve(98);
          out.push_back(type_byte(FrameType::ClientAuth));
          append(out, m.public_key.bytes);
          write_leb128(out, m.signature.size());
          append(out, m.signature);
        } else if constexpr (std::is_same_v<M, ServerConfirmsAuth>) {
          out.push_back(type_byte(FrameType::ServerConfirmsAuth));
        } else {
          out.push_back(type_byte(FrameType::ServerDeniesAuth));
          write_leb128(out, m.reason.size());
          out.insert(out.end(), m.reason.begin(), m.reason.end());
        }
      },
      msg);
  return out;
}

DecodeResult<HandshakeMessage> decode_handshake(ByteSpan message) {
  if (message.empty()) return DecodeError::Empty;
  const auto type = read_varint(message);
  if (!type) return DecodeError::Truncated;
  ByteSpan payload = message.subspan(type->length);
  switch (type->value) {
    case 0: {
      if (payload.size() < 16) return DecodeError::Truncated;
      ServerChallenge c;
      std::memcpy(c.challenge.data(), payload.data(), 16);
      return c;
    }
    case 1: {
      if (payload.size() < kKeySize) return DecodeError::Truncated;
      ClientAuth auth;
      auth.public_key = key_at(payload.data());
      std::uint64_t sig_len;
      std::size_t leb_len;
      switch (read_leb128(payload.subspan(kKeySize), sig_len, leb_len)) {
        case LebStatus::Truncated:
          return DecodeError::Truncated;
        case LebStatus::Overflow:
          return DecodeError::BadEncoding;
        case LebStatus::Ok:
          break;
      }
      if (sig_len != 64) return DecodeError::BadEncoding;
      payload = payload.subspan(kKeySize + leb_len);
      if (payload.size() < 64) return DecodeError::Truncated;
      std::memcpy(auth.signature.data(), payload.data(), 64);
      if (!auth.public_key.is_valid_point()) return DecodeError::InvalidKey;
      return auth;
    }
    case 2:
      return ServerConfirmsAuth{};
    case 3: {
      std::uint64_t len;
      std::size_t leb_len;
      switch (read_leb128(payload, len, leb_len)) {
        case LebStatus::Truncated:
          return DecodeError::Truncated;
        case LebStatus::Overflow:
          return DecodeError::BadEncoding;
        case LebStatus::Ok:
          break;
      }
      payload = payload.subspan(leb_len);
      if (payload.size() < len) return DecodeError::Truncated;
      const ByteSpan reason = payload.first(static_cast<std::size_t>(len));
      if (!is_valid_utf8(reason)) return DecodeError::BadEncoding;
      return ServerDeniesAuth{std::string(reason.begin(), reason.end())};
    }
    default:
      return type->value <= 13 ? DecodeError::WrongDirection : DecodeError::UnknownType;
  }
}

// ---- relay frames -------------------------------------------------------------------------------
DecodeResult<ClientFrame> decode_client_frame(ByteSpan message) {
  return decode_client_frame(message, KeyCheck::Verify);
}

DecodeResult<ClientFrame> decode_client_frame(ByteSpan message, KeyCheck key_check) {
  auto split = split_frame(message);
  if (auto* e = std::get_if<DecodeError>(&split)) return *e;
  const auto [type, payload] = std::get<SplitFrame>(split);
  switch (type) {
    case 4:
    case 5:
      return lift<ClientFrame>(decode_datagram(payload, type == 5, key_check));
    case 9:
      return lift<ClientFrame>(decode_ping_data<Ping>(payload));
    case 10:
      return lift<ClientFrame>(decode_ping_data<Pong>(payload));
    default:
      return type <= 13 ? DecodeError::WrongDirection : DecodeError::UnknownType;
  }
}

DecodeResult<ServerFrame> decode_server_frame(ByteSpan message, ProtocolVersion version) {
  return decode_server_frame(message, version, KeyCheck::Verify);
}

DecodeResult<ServerFrame> decode_server_frame(ByteSpan message, ProtocolVersion version,
                                              KeyCheck key_check) {
  auto split = split_frame(message);
  if (auto* e = std::get_if<DecodeError>(&split)) return *e;
  const auto [type, payload] = std::get<SplitFrame>(split);
  switch (type) {
    case 6:
    case 7:
      return lift<ServerFrame>(decode_datagram(payload, type == 7, key_check));
    case 8: {
      if (payload.size() != kKeySize) return DecodeError::BadLength;
      EndpointGone gone{key_at(payload.data())};
      if (key_check == KeyCheck::Verify && !gone.endpoint.is_valid_point()) {
        return DecodeError::InvalidKey;
      }
      return gone;
    }
    case 9:
      return lift<ServerFrame>(decode_ping_data<Ping>(payload));
    case 10:
      return lift<ServerFrame>(decode_ping_data<Pong>(payload));
    case 11:
      if (version != ProtocolVersion::V1) return DecodeError::WrongDirection;
      if (!is_valid_utf8(payload)) return DecodeError::BadEncoding;
      return Health{std::string(payload.begin(), payload.end())};
    case 12:
      if (payload.size() != 8) return DecodeError::BadLength;
      return Restarting{read_u32be(payload.data()), read_u32be(payload.data() + 4)};
    case 13:
      if (version != ProtocolVersion::V2) return DecodeError::WrongDirection;
      if (payload.empty()) return DecodeError::Truncated;
      return Status{payload[0]};
    default:
      return type <= 13 ? DecodeError::WrongDirection : DecodeError::UnknownType;
  }
}

std::optional<Bytes> encode_client_datagram(const EndpointId& dst, Ecn ecn,
                                            std::uint16_t segment_size, ByteSpan contents) {
  return encode_datagram(type_byte(FrameType::ClientToRelayDatagram), dst, ecn, segment_size,
                         contents);
}

std::optional<Bytes> encode_server_datagram(const EndpointId& src, Ecn ecn,
                                            std::uint16_t segment_size, ByteSpan contents) {
  return encode_datagram(type_byte(FrameType::RelayToClientDatagram), src, ecn, segment_size,
                         contents);
}

std::size_t server_datagram_size(std::uint16_t segment_size, std::size_t contents_size) {
  return datagram_frame_size(segment_size, contents_size);
}

void write_server_datagram(std::uint8_t* out, const EndpointId& src, Ecn ecn,
                           std::uint16_t segment_size, ByteSpan contents) {
  write_datagram(out, type_byte(FrameType::RelayToClientDatagram), src, ecn, segment_size,
                 contents);
}

Bytes encode_client_frame(const Ping& p) {
  return encode_fixed(FrameType::Ping, p.data);
}
Bytes encode_client_frame(const Pong& p) {
  return encode_fixed(FrameType::Pong, p.data);
}

std::optional<Bytes> encode_server_frame(const ServerFrame& frame, ProtocolVersion version) {
  return std::visit(
      [&](const auto& f) -> std::optional<Bytes> {
        using F = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<F, Datagram>) {
          return encode_server_datagram(f.peer, f.ecn, f.segment_size, f.contents);
        } else if constexpr (std::is_same_v<F, EndpointGone>) {
          return encode_fixed(FrameType::EndpointGone, f.endpoint.bytes);
        } else if constexpr (std::is_same_v<F, Ping>) {
          return encode_fixed(FrameType::Ping, f.data);
        } else if constexpr (std::is_same_v<F, Pong>) {
          return encode_fixed(FrameType::Pong, f.data);
        } else if constexpr (std::is_same_v<F, Health>) {
          if (version != ProtocolVersion::V1 || 1 + f.text.size() > kMaxPacketSize) {
            return std::nullopt;
          }
          Bytes out;
          out.reserve(1 + f.text.size());
          out.push_back(type_byte(FrameType::Health));
          out.insert(out.end(), f.text.begin(), f.text.end());
          return out;
        } else if constexpr (std::is_same_v<F, Restarting>) {
          Bytes out;
          out.reserve(9);
          out.push_back(type_byte(FrameType::Restarting));
          append_u32be(out, f.reconnect_in_ms);
          append_u32be(out, f.try_for_ms);
          return out;
        } else {
          if (version != ProtocolVersion::V2) return std::nullopt;
          return Bytes{type_byte(FrameType::Status), f.code};
        }
      },
      frame);
}

}  // namespace iroh::relay
