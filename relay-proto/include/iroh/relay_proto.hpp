// Wire codec of the iroh relay protocol (handshake + relay frames), spec relay.md §4-§5.
// Pure functions over byte spans: no I/O, no allocation beyond the returned buffers, never throws
// on bad input (errors are values).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace iroh::relay {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

// 32-byte Ed25519 public key (compressed Edwards-y) naming an endpoint.
struct EndpointId {
  std::array<std::uint8_t, 32> bytes{};

  std::string to_hex() const;  // 64 lowercase hex chars
  // Accepts 64 hex chars (any case) or 52 RFC 4648 base32 chars without padding (any case,
  // canonical trailing bits). Also rejects keys that are not valid points (is_valid_point).
  static std::optional<EndpointId> parse(std::string_view text);
  // True if the bytes decompress to an Ed25519 point, exactly like ed25519-dalek's
  // VerifyingKey::from_bytes (what iroh uses): bit 255 is the x sign, y >= p is reduced,
  // small-order and mixed-order points are accepted. libsodium's
  // crypto_core_ed25519_is_valid_point would reject small-order points, non-canonical y and every
  // point outside the prime-order subgroup, at the cost of a scalar multiplication; real iroh keys
  // (= [a]B) pass both. Costs one field exponentiation (a few microseconds), see KeyCheck.
  bool is_valid_point() const;

  friend bool operator==(const EndpointId&, const EndpointId&) = default;
  friend auto operator<=>(const EndpointId&, const EndpointId&) = default;
};

struct EndpointIdHash {
  std::size_t operator()(const EndpointId& id) const noexcept;
};

// Ed25519 secret key (32-byte seed) with its public key.
struct SecretKey {
  std::array<std::uint8_t, 32> seed{};
  EndpointId public_key() const;
  static SecretKey generate();
  static SecretKey from_seed(std::span<const std::uint8_t, 32> seed);
  std::array<std::uint8_t, 64> sign(ByteSpan message) const;
};

bool verify_signature(const EndpointId& key, ByteSpan message,
                      std::span<const std::uint8_t, 64> signature);

// ---- QUIC varint (RFC 9000 §16) ---------------------------------------------------------------
struct Varint {
  std::uint64_t value;
  std::size_t length;  // bytes consumed
};
std::optional<Varint> read_varint(ByteSpan in);
void write_varint(Bytes& out, std::uint64_t value);  // minimal encoding; value < 2^62

// ---- limits (§5.4) ------------------------------------------------------------------------------
inline constexpr std::size_t kMaxPacketSize = 65536;       // max payload after the type byte
inline constexpr std::size_t kMaxFrameSize = 1024 * 1024;  // max WebSocket message
inline constexpr std::size_t kMaxDatagramContents = 65502;
inline constexpr std::size_t kMaxBatchContents = 65500;

enum class ProtocolVersion : std::uint8_t { V1 = 1, V2 = 2 };
inline constexpr std::string_view kSubprotocolV1 = "iroh-relay-v1";
inline constexpr std::string_view kSubprotocolV2 = "iroh-relay-v2";
// Picks the highest supported version from a Sec-WebSocket-Protocol value (comma separated).
std::optional<ProtocolVersion> negotiate_subprotocol(std::string_view header_value);
std::string_view subprotocol_name(ProtocolVersion v);

enum class FrameType : std::uint8_t {
  ServerChallenge = 0,
  ClientAuth = 1,
  ServerConfirmsAuth = 2,
  ServerDeniesAuth = 3,
  ClientToRelayDatagram = 4,
  ClientToRelayDatagramBatch = 5,
  RelayToClientDatagram = 6,
  RelayToClientDatagramBatch = 7,
  EndpointGone = 8,
  Ping = 9,
  Pong = 10,
  Health = 11,
  Restarting = 12,
  Status = 13,
};

enum class DecodeError {
  Empty,           // no type byte
  Truncated,       // payload shorter than the fixed fields
  TooLarge,        // payload > kMaxPacketSize
  UnknownType,     // type not in the registry
  WrongDirection,  // valid type, but not allowed in this direction / phase / version
  BadLength,       // fixed-size payload with the wrong length (Ping, Pong, EndpointGone, ...)
  InvalidKey,      // key bytes are not an Ed25519 point
  EmptyDatagram,   // datagram without contents
  BadEncoding,     // malformed postcard / UTF-8 / base64
};
std::string_view to_string(DecodeError e);

template <class T>
using DecodeResult = std::variant<T, DecodeError>;

// ---- handshake (§4) -----------------------------------------------------------------------------
inline constexpr std::string_view kChallengeContext = "iroh-relay handshake v1 challenge signature";
inline constexpr std::string_view kExporterLabel = "iroh-relay handshake v1";
inline constexpr std::string_view kAuthHeader = "x-iroh-relay-client-auth-v1";

struct ServerChallenge {
  std::array<std::uint8_t, 16> challenge{};
};
struct ClientAuth {
  EndpointId public_key;
  std::array<std::uint8_t, 64> signature{};
};
struct ServerConfirmsAuth {};
struct ServerDeniesAuth {
  std::string reason;
};
using HandshakeMessage =
    std::variant<ServerChallenge, ClientAuth, ServerConfirmsAuth, ServerDeniesAuth>;

Bytes encode(const HandshakeMessage& msg);
// Accepts all four handshake types (the caller checks which one it expects); trailing bytes are
// ignored. ClientAuth with an invalid key -> InvalidKey, signature length prefix != 64 or
// non-UTF-8 deny reason -> BadEncoding, types 4..13 -> WrongDirection.
DecodeResult<HandshakeMessage> decode_handshake(ByteSpan message);

// BLAKE3 derive_key(kChallengeContext, challenge): the 32 bytes the client signs.
std::array<std::uint8_t, 32> challenge_message(std::span<const std::uint8_t, 16> challenge);
ClientAuth sign_challenge(const SecretKey& key, std::span<const std::uint8_t, 16> challenge);
bool verify_client_auth(const ClientAuth& auth, std::span<const std::uint8_t, 16> challenge);

// Keying-material header (§4.3). `ekm` = TLS exporter(kExporterLabel, context=public key, 32).
struct KeyMaterialAuth {
  EndpointId public_key;
  std::array<std::uint8_t, 64> signature{};
  std::array<std::uint8_t, 16> suffix{};  // ekm[16..32]
};
std::string encode_auth_header(const KeyMaterialAuth& auth);  // base64url, no padding
// Strict: exactly 151 base64url chars, no padding, canonical trailing bits, length prefix 64,
// valid key point. Anything else -> nullopt.
std::optional<KeyMaterialAuth> decode_auth_header(std::string_view header_value);
KeyMaterialAuth sign_key_material(const SecretKey& key, std::span<const std::uint8_t, 32> ekm);
// Checks suffix == ekm[16..32] and the signature over ekm[0..16].
bool verify_key_material(const KeyMaterialAuth& auth, std::span<const std::uint8_t, 32> ekm);

// ---- relay frames (§5) --------------------------------------------------------------------------
enum class Ecn : std::uint8_t { NotEct = 0, Ect1 = 1, Ect0 = 2, Ce = 3 };

// A datagram in either direction. `peer` is dst for client->relay and src for relay->client.
// segment_size == 0 means a single datagram (types 4/6); otherwise a batch (types 5/7).
// `contents` views the input buffer for decoded frames: keep the buffer alive while using it.
struct Datagram {
  EndpointId peer;
  Ecn ecn = Ecn::NotEct;
  std::uint16_t segment_size = 0;
  ByteSpan contents;
};
struct EndpointGone {
  EndpointId endpoint;
};
struct Ping {
  std::array<std::uint8_t, 8> data{};
};
struct Pong {
  std::array<std::uint8_t, 8> data{};
};
struct Health {
  std::string text;
};
struct Restarting {
  std::uint32_t reconnect_in_ms = 0;
  std::uint32_t try_for_ms = 0;
};
enum class StatusCode : std::uint8_t { Healthy = 0, SameEndpointIdConnected = 1, RateLimited = 2 };
struct Status {
  std::uint8_t code = 0;
};

// What a client may send after the handshake (types 4, 5, 9, 10).
using ClientFrame = std::variant<Datagram, Ping, Pong>;
// What a server may send (6, 7, 8, 9, 10, 11 (v1), 12, 13 (v2)).
using ServerFrame = std::variant<Datagram, EndpointGone, Ping, Pong, Health, Restarting, Status>;

// Decoding rules (§5.5), checked in this order: Empty (no type), Truncated (incomplete type
// varint), TooLarge (payload after the type > kMaxPacketSize), WrongDirection / UnknownType, then
// per type: datagrams need 32 key bytes + ecn (+ 2 segment_size bytes for batches) else
// Truncated, no contents -> EmptyDatagram, then InvalidKey. A batch with segment_size 0 decodes as
// a single datagram (segment_size 0). Ping/Pong/Restarting/EndpointGone need their exact length
// (BadLength); Status needs >= 1 byte (Truncated); Health must be UTF-8 (BadEncoding). Health is
// WrongDirection on v2 and Status on v1.
DecodeResult<ClientFrame> decode_client_frame(ByteSpan message);
DecodeResult<ServerFrame> decode_server_frame(ByteSpan message, ProtocolVersion version);

// Skip lets the caller validate datagram / EndpointGone keys itself, e.g. through the key cache
// of §6.10 (call EndpointId::is_valid_point on a cache miss). Skip never yields InvalidKey.
enum class KeyCheck { Verify, Skip };
DecodeResult<ClientFrame> decode_client_frame(ByteSpan message, KeyCheck key_check);
DecodeResult<ServerFrame> decode_server_frame(ByteSpan message, ProtocolVersion version,
                                              KeyCheck key_check);

// Encoders. encode_* return an empty optional (or false) when the frame would exceed
// kMaxPacketSize in total or a datagram has no contents (§5.4).
std::optional<Bytes> encode_client_datagram(const EndpointId& dst, Ecn ecn,
                                            std::uint16_t segment_size, ByteSpan contents);
std::optional<Bytes> encode_server_datagram(const EndpointId& src, Ecn ecn,
                                            std::uint16_t segment_size, ByteSpan contents);
// The same server datagram frame written in place (issue 13: the relay encodes it straight into
// the recipient's send queue, no buffer of its own). server_datagram_size is its length, 0 where
// encode_server_datagram returns nothing; write_server_datagram needs that many bytes at `out`.
std::size_t server_datagram_size(std::uint16_t segment_size, std::size_t contents_size);
void write_server_datagram(std::uint8_t* out, const EndpointId& src, Ecn ecn,
                           std::uint16_t segment_size, ByteSpan contents);
Bytes encode_client_frame(const Ping& p);
Bytes encode_client_frame(const Pong& p);
// For a v1 connection Status is not encodable (returns nullopt), nor Health on v2.
std::optional<Bytes> encode_server_frame(const ServerFrame& frame, ProtocolVersion version);

}  // namespace iroh::relay
