// QUIC packets (RFC 9000 §17): header parsing and building, packet protection (RFC 9001 §5),
// Version Negotiation and Stateless Reset. Frames are in frames.cpp, transport parameters in
// transport_parameters.cpp; the reading they share is byte_reader.hpp.
#include "iroh/quic/packet.hpp"

#include <openssl/rand.h>

#include <algorithm>

#include "byte_reader.hpp"
#include "iroh/relay_proto.hpp"

namespace iroh::quic {
namespace {

using detail::Reader;
using relay::write_varint;

void put_u32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void put_packet_number(Bytes& out, std::uint64_t pn, std::size_t pn_size) {
  for (std::size_t i = pn_size; i-- > 0;) out.push_back(static_cast<std::uint8_t>(pn >> (8 * i)));
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

Bytes build_stateless_reset(std::span<const std::uint8_t, 16> token, std::size_t size) {
  Bytes out(std::max<std::size_t>(size, 21));
  RAND_bytes(out.data(), static_cast<int>(out.size() - token.size()));
  out[0] = static_cast<std::uint8_t>(0x40 | (out[0] & 0x3f));  // short header form, fixed bit
  std::copy(token.begin(), token.end(), out.end() - static_cast<std::ptrdiff_t>(token.size()));
  return out;
}

}  // namespace iroh::quic
