// QUIC transport parameters (RFC 9000 §18): decode_transport_parameters() reads the client's,
// one step per kind of value (connection ID, token, flag, integer with its bounds, §18.2);
// encode_transport_parameters() writes ours. Pure: a malformed or out-of-range value makes the
// whole set invalid, which the connection answers with TRANSPORT_PARAMETER_ERROR (§7.4).
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "byte_reader.hpp"
#include "iroh/quic/packet.hpp"

namespace iroh::quic {
namespace {

using detail::Reader;
using detail::varint_size;
using relay::read_varint;
using relay::write_varint;

// Parameter IDs (RFC 9000 §18.2); kAddressDiscoveryParameter is in packet.hpp.
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

// An integer parameter's value is one varint filling the whole value (§18).
std::optional<std::uint64_t> single_varint(ByteSpan value) {
  auto v = read_varint(value);
  if (!v || v->length != value.size()) return std::nullopt;
  return v->value;
}

// A connection ID parameter: at most 20 bytes (§17.2).
std::optional<Bytes> connection_id_value(ByteSpan value) {
  if (value.size() > kMaxConnectionIdSize) return std::nullopt;
  return Bytes(value.begin(), value.end());
}

// Stores integer parameter `id`; false = outside the range §18.2 allows (or, for address
// discovery, not one of the three roles of spec relay.md §7.1).
bool apply_integer(TransportParameters& p, std::uint64_t id, std::uint64_t v) {
  switch (id) {
    case kMaxIdleTimeout:
      p.max_idle_timeout_ms = v;
      return true;
    case kMaxUdpPayloadSize:
      if (v < 1200) return false;
      p.max_udp_payload_size = v;
      return true;
    case kInitialMaxData:
      p.initial_max_data = v;
      return true;
    case kInitialMaxStreamDataBidiLocal:
      p.initial_max_stream_data_bidi_local = v;
      return true;
    case kInitialMaxStreamDataBidiRemote:
      p.initial_max_stream_data_bidi_remote = v;
      return true;
    case kInitialMaxStreamDataUni:
      p.initial_max_stream_data_uni = v;
      return true;
    case kInitialMaxStreamsBidi:
      if (v > (std::uint64_t{1} << 60)) return false;
      p.initial_max_streams_bidi = v;
      return true;
    case kInitialMaxStreamsUni:
      if (v > (std::uint64_t{1} << 60)) return false;
      p.initial_max_streams_uni = v;
      return true;
    case kAckDelayExponent:
      if (v > 20) return false;
      p.ack_delay_exponent = v;
      return true;
    case kMaxAckDelay:
      if (v >= (1u << 14)) return false;
      p.max_ack_delay_ms = v;
      return true;
    case kActiveConnectionIdLimit:
      if (v < 2) return false;
      p.active_connection_id_limit = v;
      return true;
    case kAddressDiscoveryParameter:
      if (v > 2) return false;
      p.address_discovery = static_cast<AddressDiscoveryRole>(v);
      return true;
    default:
      return true;
  }
}

// Stores parameter `id`; false = a malformed value. Unknown parameters and the server-only
// preferred_address are ignored (§18.1, §18.2).
bool apply_parameter(TransportParameters& p, std::uint64_t id, ByteSpan value) {
  switch (id) {
    case kOriginalDcid:
      return static_cast<bool>(p.original_destination_connection_id = connection_id_value(value));
    case kInitialScid:
      return static_cast<bool>(p.initial_source_connection_id = connection_id_value(value));
    case kRetryScid:
      return static_cast<bool>(p.retry_source_connection_id = connection_id_value(value));
    case kStatelessResetToken: {
      if (value.size() != 16) return false;
      std::array<std::uint8_t, 16> token{};
      std::copy(value.begin(), value.end(), token.begin());
      p.stateless_reset_token = token;
      return true;
    }
    case kDisableActiveMigration:  // a flag: zero-length value
      if (!value.empty()) return false;
      p.disable_active_migration = true;
      return true;
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
    case kAddressDiscoveryParameter: {
      auto number = single_varint(value);
      return number && apply_integer(p, id, *number);
    }
    default:
      return true;
  }
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
    // A parameter sent twice invalidates the set (§7.4). Bounded: every parameter takes at
    // least 2 bytes of input.
    if (std::find(seen.begin(), seen.end(), *id) != seen.end()) return std::nullopt;
    seen.push_back(*id);
    if (!apply_parameter(p, *id, *value)) return std::nullopt;
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
