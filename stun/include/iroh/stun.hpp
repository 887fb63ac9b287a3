// STUN (RFC 8489, with RFC 3489 compatibility) as pure functions over byte spans: no I/O, no
// exceptions on bad input. The server side is one call, handle_datagram(), which writes the reply
// into a caller-owned buffer without allocating, so the UDP service can run it per datagram.
// The decode/encode helpers below it exist for tests, clients and the load generator.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace iroh::stun {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

inline constexpr std::uint32_t kMagicCookie = 0x2112A442;
inline constexpr std::size_t kHeaderSize = 20;
inline constexpr std::uint32_t kFingerprintXor = 0x5354554E;  // "STUN"

// Message type = method bits interleaved with the two class bits (RFC 8489 §5).
enum class MessageClass : std::uint8_t {
  Request = 0,
  Indication = 1,
  SuccessResponse = 2,
  ErrorResponse = 3,
};
inline constexpr std::uint16_t kMethodBinding = 0x001;
inline constexpr std::uint16_t kBindingRequest = 0x0001;
inline constexpr std::uint16_t kBindingSuccess = 0x0101;
inline constexpr std::uint16_t kBindingError = 0x0111;

std::uint16_t message_type(std::uint16_t method, MessageClass cls);
std::uint16_t method_of(std::uint16_t type);
MessageClass class_of(std::uint16_t type);

namespace attr {
// Comprehension-required (< 0x8000).
inline constexpr std::uint16_t kMappedAddress = 0x0001;
inline constexpr std::uint16_t kResponseAddress = 0x0002;  // RFC 3489; never honoured
inline constexpr std::uint16_t kChangeRequest = 0x0003;    // RFC 3489 / RFC 5780
inline constexpr std::uint16_t kUsername = 0x0006;
inline constexpr std::uint16_t kMessageIntegrity = 0x0008;
inline constexpr std::uint16_t kErrorCode = 0x0009;
inline constexpr std::uint16_t kUnknownAttributes = 0x000A;
inline constexpr std::uint16_t kRealm = 0x0014;
inline constexpr std::uint16_t kNonce = 0x0015;
inline constexpr std::uint16_t kMessageIntegritySha256 = 0x001C;
inline constexpr std::uint16_t kPasswordAlgorithm = 0x001D;
inline constexpr std::uint16_t kUserhash = 0x001E;
inline constexpr std::uint16_t kXorMappedAddress = 0x0020;
inline constexpr std::uint16_t kPriority = 0x0024;      // RFC 8445 (ICE)
inline constexpr std::uint16_t kUseCandidate = 0x0025;  // RFC 8445 (ICE)
// Comprehension-optional (>= 0x8000).
inline constexpr std::uint16_t kPasswordAlgorithms = 0x8002;
inline constexpr std::uint16_t kAlternateDomain = 0x8003;
inline constexpr std::uint16_t kSoftware = 0x8022;
inline constexpr std::uint16_t kAlternateServer = 0x8023;
inline constexpr std::uint16_t kFingerprint = 0x8028;
inline constexpr std::uint16_t kIceControlled = 0x8029;
inline constexpr std::uint16_t kIceControlling = 0x802A;
}  // namespace attr

// CHANGE-REQUEST flag bits (RFC 5780 §7.2).
inline constexpr std::uint32_t kChangeIp = 0x04;
inline constexpr std::uint32_t kChangePort = 0x02;

// A transport address. IPv4 uses the first 4 bytes of `address`.
struct Endpoint {
  enum class Family : std::uint8_t { V4 = 1, V6 = 2 };
  Family family = Family::V4;
  std::array<std::uint8_t, 16> address{};
  std::uint16_t port = 0;

  static Endpoint v4(std::array<std::uint8_t, 4> addr, std::uint16_t port);
  static Endpoint v6(std::array<std::uint8_t, 16> addr, std::uint16_t port);
  // ::ffff:a.b.c.d (what a dual-stack socket reports for IPv4 peers) -> a.b.c.d; else unchanged.
  Endpoint unmapped() const;
  std::size_t address_size() const { return family == Family::V4 ? 4 : 16; }

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// ---- server side ------------------------------------------------------------------------------

struct ResponseOptions {
  // SOFTWARE value (UTF-8, truncated to 127 bytes); empty = no SOFTWARE attribute.
  std::string_view software;
  // Add FINGERPRINT to RFC 8489 responses.
  bool fingerprint = true;
};

enum class Action : std::uint8_t {
  Reply,   // send out[0, size) back to the source
  Ignore,  // not a STUN request at all (foreign bytes, indication, response)
  Drop,    // a STUN request that gets no answer (bad FINGERPRINT, unanswerable CHANGE-REQUEST)
};

enum class Reason : std::uint8_t {
  Ok,                        // Reply: Binding success response
  NotStun,                   // Ignore: header checks failed
  Indication,                // Ignore
  Response,                  // Ignore: success or error response sent to us
  LegacyUnknownMethod,       // Ignore: no magic cookie and not a Binding request
  BadFingerprint,            // Drop
  ChangeRequestUnsupported,  // Drop (RFC 3489 client asking for another source address)
  BufferTooSmall,            // Drop: `out` cannot hold the reply
  BadRequest,         // Reply: 400 (malformed attribute, unknown method, misplaced FINGERPRINT)
  UnknownAttributes,  // Reply: 420 with UNKNOWN-ATTRIBUTES
};
std::string_view to_string(Reason reason);

struct HandleResult {
  Action action = Action::Ignore;
  Reason reason = Reason::NotStun;
  std::size_t size = 0;     // bytes written to `out` when action == Reply
  bool is_request = false;  // the datagram was a STUN request (answered or not)
  Endpoint::Family reported_family = Endpoint::Family::V4;  // family of the mapped address

  bool success() const { return action == Action::Reply && reason == Reason::Ok; }
};

// Largest reply handle_datagram() can produce; an `out` of this size never gets BufferTooSmall.
inline constexpr std::size_t kMaxUnknownAttributesListed = 32;
inline constexpr std::size_t kMaxSoftwareLength = 127;
inline constexpr std::size_t kMaxResponseSize =
    kHeaderSize + (4 + 4 + 64) + (4 + 2 * kMaxUnknownAttributesListed) + (4 + 128) + 8 + 24;

// Size of the address attribute a reply to `source` carries (12 for IPv4, 24 for IPv6). A reply is
// never larger than the request plus this, so the server cannot be used as an amplifier.
std::size_t address_attribute_size(const Endpoint& source);

// Answers one datagram received from `source`:
// * RFC 8489 Binding request (magic cookie) -> success with XOR-MAPPED-ADDRESS, then SOFTWARE and
//   FINGERPRINT as far as the amplification budget allows (FINGERPRINT first);
// * RFC 3489 Binding request (no cookie) -> success with MAPPED-ADDRESS only;
// * unknown comprehension-required attributes -> 420 + UNKNOWN-ATTRIBUTES; malformed -> 400;
// * FINGERPRINT present and wrong -> dropped; indications, responses, non-STUN -> ignored.
HandleResult handle_datagram(ByteSpan request, const Endpoint& source, std::span<std::uint8_t> out,
                             const ResponseOptions& options = {});

// ---- decoding (tests, clients) ------------------------------------------------------------------

struct Attribute {
  std::uint16_t type = 0;
  ByteSpan value;
};

struct Message {
  std::uint16_t type = 0;
  bool has_magic_cookie = false;
  // Bytes 4..19 of the header: cookie + 96-bit transaction id, or the 128-bit RFC 3489 id.
  std::array<std::uint8_t, 16> transaction{};
  std::vector<Attribute> attributes;  // views into the decoded buffer

  const Attribute* find(std::uint16_t type) const;
};

enum class DecodeError : std::uint8_t {
  TooShort,
  NotStun,  // top bits set, or length field inconsistent with the datagram
  AttributeOverrun,
};

struct DecodeResult {
  std::optional<Message> message;
  DecodeError error = DecodeError::NotStun;
};

// Splits a datagram into header and attributes (no semantic checks). `bytes` must outlive the
// result.
DecodeResult decode(ByteSpan bytes);

// XOR-MAPPED-ADDRESS / MAPPED-ADDRESS values. `transaction` is Message::transaction.
std::optional<Endpoint> decode_xor_address(ByteSpan value,
                                           const std::array<std::uint8_t, 16>& transaction);
std::optional<Endpoint> decode_address(ByteSpan value);

struct ErrorCode {
  int code = 0;
  std::string_view reason;
};
std::optional<ErrorCode> decode_error_code(ByteSpan value);
std::vector<std::uint16_t> decode_unknown_attributes(ByteSpan value);

// CRC-32 (ISO-HDLC, as zlib) of `bytes`.
std::uint32_t crc32(ByteSpan bytes);
// True if `message` ends in a FINGERPRINT attribute whose value matches.
bool has_valid_fingerprint(ByteSpan message);

// ---- encoding (tests, clients, load generator) --------------------------------------------------

using TransactionId = std::array<std::uint8_t, 12>;

// Builds a message attribute by attribute; the header length is kept up to date.
class MessageBuilder {
 public:
  // RFC 8489 message (magic cookie + 96-bit id).
  MessageBuilder(std::uint16_t type, const TransactionId& id);
  // RFC 3489 message (128-bit id, no cookie).
  MessageBuilder(std::uint16_t type, const std::array<std::uint8_t, 16>& legacy_id);

  MessageBuilder& add(std::uint16_t type, ByteSpan value);
  MessageBuilder& add_u32(std::uint16_t type, std::uint32_t value);
  MessageBuilder& add_fingerprint();  // must be last
  const Bytes& bytes() const { return bytes_; }
  Bytes take() { return std::move(bytes_); }

 private:
  void set_length();
  Bytes bytes_;
};

// Binding request with optional SOFTWARE and FINGERPRINT.
Bytes make_binding_request(const TransactionId& id, bool fingerprint = true,
                           std::string_view software = {});

}  // namespace iroh::stun
