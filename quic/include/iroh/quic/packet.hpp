// QUIC v1 wire codec (RFC 9000 §17, §19) for the QAD server: packet headers, packet protection
// applied to whole packets, the frames a QAD server meets, transport parameters and the address
// discovery extension (draft-ietf-quic-address-discovery). Pure functions over byte spans: bad
// input gives an empty optional / error value, never an exception or a crash.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "iroh/quic/crypto.hpp"

namespace iroh::quic {

inline constexpr std::uint32_t kVersion1 = 0x00000001;
inline constexpr std::size_t kMaxConnectionIdSize = 20;
inline constexpr std::size_t kMinInitialDatagramSize = 1200;

// Address discovery extension (spec relay.md §7.1).
inline constexpr std::uint64_t kAddressDiscoveryParameter = 0x9f81a176;
inline constexpr std::uint64_t kObservedIpv4AddressFrame = 0x9f81a6;
inline constexpr std::uint64_t kObservedIpv6AddressFrame = 0x9f81a7;
enum class AddressDiscoveryRole : std::uint64_t { SendOnly = 0, ReceiveOnly = 1, Both = 2 };

// RFC 9000 §20.1 transport error codes used here.
enum class TransportError : std::uint64_t {
  NoError = 0x0,
  InternalError = 0x1,
  ConnectionRefused = 0x2,
  FlowControlError = 0x3,
  StreamLimitError = 0x4,
  StreamStateError = 0x5,
  FrameEncodingError = 0x7,
  TransportParameterError = 0x8,
  ProtocolViolation = 0xa,
  CryptoBufferExceeded = 0xd,
  CryptoErrorBase = 0x100,  // + TLS alert
};

enum class PacketType { Initial, ZeroRtt, Handshake, Retry, OneRtt, VersionNegotiation };

// The parts of a packet header readable before header protection is removed.
struct PacketHeader {
  PacketType type = PacketType::OneRtt;
  std::uint32_t version = 0;
  Bytes dcid;
  Bytes scid;
  Bytes token;                  // Initial only
  std::size_t pn_offset = 0;    // where the protected packet number starts
  std::size_t packet_size = 0;  // bytes of this packet in the datagram (long headers: by Length)
};

// Parses the header of the packet at the start of `datagram`. Short headers carry no DCID length,
// so the caller says how long its own connection IDs are. nullopt on malformed or truncated input.
// Unknown versions parse as far as the version-independent fields (type left as Initial,
// pn_offset/packet_size 0 except packet_size = whole datagram).
std::optional<PacketHeader> parse_packet_header(ByteSpan datagram, std::size_t short_dcid_size);

struct OpenedPacket {
  std::uint64_t packet_number = 0;
  Bytes header;   // unprotected header, the AEAD associated data
  Bytes payload;  // decrypted frames
  bool key_phase = false;
};

// Full packet number from the truncated one (RFC 9000 Appendix A.3).
std::uint64_t decode_packet_number(std::uint64_t largest_received, std::uint64_t truncated,
                                   std::size_t pn_bits);

// Removes header and payload protection of `packet` (exactly header.packet_size bytes).
// largest_received = largest packet number received so far in the space (0 if none).
std::optional<OpenedPacket> open_packet(ByteSpan packet, const PacketHeader& header,
                                        const PacketKeys& keys, std::uint64_t largest_received);

// Unprotected long header with a `pn_size`-byte packet number; the Length field covers the
// packet number, `payload_size` and the AEAD tag.
Bytes build_long_header(PacketType type, std::uint32_t version, ByteSpan dcid, ByteSpan scid,
                        ByteSpan token, std::uint64_t packet_number, std::size_t pn_size,
                        std::size_t payload_size);
Bytes build_short_header(ByteSpan dcid, std::uint64_t packet_number, std::size_t pn_size,
                         bool key_phase);

// Encrypts `payload` and applies header protection. `header` ends with the packet number of
// `pn_size` bytes. nullopt if the payload is too short to sample (needs pn_size + payload >= 4).
std::optional<Bytes> protect_packet(ByteSpan header, std::size_t pn_size,
                                    std::uint64_t packet_number, ByteSpan payload,
                                    const PacketKeys& keys);

// Version Negotiation (RFC 9000 §17.2.1): echoes the client's connection IDs swapped.
Bytes build_version_negotiation(ByteSpan client_dcid, ByteSpan client_scid,
                                std::span<const std::uint32_t> versions, std::uint8_t unused_bits);

// ---- frames --------------------------------------------------------------------------------

struct PaddingFrame {
  std::size_t length = 1;
};
struct PingFrame {};
struct AckRange {
  std::uint64_t smallest = 0;
  std::uint64_t largest = 0;
};
struct AckFrame {
  std::uint64_t ack_delay = 0;
  std::vector<AckRange> ranges;  // descending, ranges[0].largest = largest acknowledged
};
struct CryptoFrame {
  std::uint64_t offset = 0;
  Bytes data;
};
struct ConnectionCloseFrame {
  bool application = false;  // 0x1d
  std::uint64_t error_code = 0;
  std::uint64_t frame_type = 0;  // 0x1c only
  std::string reason;
};
struct HandshakeDoneFrame {};
struct NewConnectionIdFrame {
  std::uint64_t sequence = 0;
  std::uint64_t retire_prior_to = 0;
  Bytes connection_id;
  std::array<std::uint8_t, 16> reset_token{};
};
struct RetireConnectionIdFrame {
  std::uint64_t sequence = 0;
};
struct PathChallengeFrame {
  std::array<std::uint8_t, 8> data{};
};
struct PathResponseFrame {
  std::array<std::uint8_t, 8> data{};
};
// Frames a QAD server only has to parse and ignore (flow control, NEW_TOKEN, ...).
struct IgnoredFrame {
  std::uint64_t type = 0;
};
// STREAM frames: a QAD server allows no streams; parsed so the error can be precise.
struct StreamFrame {
  std::uint64_t stream_id = 0;
};
struct ObservedAddressFrame {
  std::uint64_t sequence = 0;
  bool ipv6 = false;
  std::array<std::uint8_t, 16> ip{};  // IPv4 in the first 4 bytes
  std::uint16_t port = 0;
};

using Frame = std::variant<PaddingFrame, PingFrame, AckFrame, CryptoFrame, ConnectionCloseFrame,
                           HandshakeDoneFrame, NewConnectionIdFrame, RetireConnectionIdFrame,
                           PathChallengeFrame, PathResponseFrame, IgnoredFrame, StreamFrame,
                           ObservedAddressFrame>;

struct FrameError {
  TransportError code = TransportError::FrameEncodingError;
  std::uint64_t frame_type = 0;
};

// All frames of a decrypted payload, or the first error. An empty payload is a
// PROTOCOL_VIOLATION (RFC 9000 §12.4).
std::variant<std::vector<Frame>, FrameError> parse_frames(ByteSpan payload);

bool is_ack_eliciting(const Frame& frame);

void encode_padding(Bytes& out, std::size_t length);
void encode_ping(Bytes& out);
void encode_ack(Bytes& out, const AckFrame& ack);
void encode_crypto(Bytes& out, std::uint64_t offset, ByteSpan data);
void encode_connection_close(Bytes& out, const ConnectionCloseFrame& close);
void encode_handshake_done(Bytes& out);
void encode_path_response(Bytes& out, std::span<const std::uint8_t, 8> data);
void encode_observed_address(Bytes& out, const ObservedAddressFrame& frame);
void encode_new_connection_id(Bytes& out, const NewConnectionIdFrame& frame);
void encode_retire_connection_id(Bytes& out, std::uint64_t sequence);
// A Stateless Reset (RFC 9000 §10.3): `size` bytes (at least 21) that look like a short-header
// packet and end with `token`.
Bytes build_stateless_reset(std::span<const std::uint8_t, 16> token, std::size_t size);
// Bytes a CRYPTO frame header takes for this offset and length.
std::size_t crypto_frame_overhead(std::uint64_t offset, std::size_t length);

// ---- transport parameters (RFC 9000 §18) ---------------------------------------------------

struct TransportParameters {
  std::optional<Bytes> original_destination_connection_id;
  std::optional<std::uint64_t> max_idle_timeout_ms;
  std::optional<std::array<std::uint8_t, 16>> stateless_reset_token;
  std::uint64_t max_udp_payload_size = 65527;
  std::uint64_t initial_max_data = 0;
  std::uint64_t initial_max_stream_data_bidi_local = 0;
  std::uint64_t initial_max_stream_data_bidi_remote = 0;
  std::uint64_t initial_max_stream_data_uni = 0;
  std::uint64_t initial_max_streams_bidi = 0;
  std::uint64_t initial_max_streams_uni = 0;
  std::uint64_t ack_delay_exponent = 3;
  std::uint64_t max_ack_delay_ms = 25;
  bool disable_active_migration = false;
  std::uint64_t active_connection_id_limit = 2;
  std::optional<Bytes> initial_source_connection_id;
  std::optional<Bytes> retry_source_connection_id;
  std::optional<AddressDiscoveryRole> address_discovery;
};

// nullopt on malformed input or invalid values (RFC 9000 §18.2: duplicate ids, out-of-range
// values, bad lengths). Unknown parameters are skipped.
std::optional<TransportParameters> decode_transport_parameters(ByteSpan in);
// Writes every parameter that differs from its default, plus the connection IDs.
Bytes encode_transport_parameters(const TransportParameters& params);

}  // namespace iroh::quic
