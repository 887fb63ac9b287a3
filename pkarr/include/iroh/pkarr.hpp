// Pure pkarr codec (spec address-lookup.md §1-§3): z-base-32 keys, signed packets, the DNS payload
// (wire format through libknot) and the iroh endpoint record. No I/O; bad input never throws,
// every failure is an Error value.
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

#include "iroh/relay_proto.hpp"

namespace iroh::pkarr {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;
using PublicKey = relay::EndpointId;

// ---- limits (§2.1) ------------------------------------------------------------------------------
inline constexpr std::size_t kPublicKeySize = 32;
inline constexpr std::size_t kSignatureSize = 64;
inline constexpr std::size_t kTimestampSize = 8;
inline constexpr std::size_t kHeaderSize = kPublicKeySize + kSignatureSize + kTimestampSize;  // 104
inline constexpr std::size_t kMaxDnsSize = 1000;  // BEP44 value limit
inline constexpr std::size_t kMinPacketSize = kHeaderSize;
inline constexpr std::size_t kMaxPacketSize = kHeaderSize + kMaxDnsSize;              // 1104
inline constexpr std::size_t kMinRelayPayloadSize = kMinPacketSize - kPublicKeySize;  // 72
inline constexpr std::size_t kMaxRelayPayloadSize = kMaxPacketSize - kPublicKeySize;  // 1072
inline constexpr std::size_t kZ32KeyLength = 52;

enum class Error {
  TooShort,           // packet < 104 bytes / relay payload < 72 bytes
  TooLarge,           // packet > 1104 bytes / DNS message > 1000 bytes
  InvalidKey,         // not a strict z32 key, or not an Ed25519 point
  BadSignature,       // Ed25519 verification failed
  BadDns,             // DNS message does not parse (libknot) or has a malformed TXT RDATA
  BadRecord,          // a record cannot be encoded (bad owner name, string > 255 bytes, ...)
  BadEndpointRecord,  // an `_iroh` TXT string without '=' or with an unknown key (§3)
};
std::string_view to_string(Error e);

template <class T>
using Result = std::variant<T, Error>;

// ---- z-base-32 (§1) -----------------------------------------------------------------------------
std::string z32_encode(ByteSpan bytes);
// Strict: lowercase alphabet only, no padding, the length must be the canonical length of a whole
// number of bytes and the unused trailing bits must be zero.
std::optional<Bytes> z32_decode(std::string_view text);
std::string key_to_z32(const PublicKey& key);
// 52 chars, strict z32, and the 32 bytes must decompress to an Ed25519 point (iroh's rule).
// Callers on the DNS path lower-case the label first; the HTTP path does not.
std::optional<PublicKey> key_from_z32(std::string_view text);
// key_from_z32 without the point check, for a caller that verifies a signature with the key right
// away (PUT /pkarr): a verify that succeeds implies a valid point, so is_valid_public_key is only
// needed when it fails, to tell an invalid key from a bad payload (issue 15 item 7: the check is
// a square root in the field, ~8 % of the CPU of a PUT when done on every one).
std::optional<PublicKey> key_from_z32_unchecked(std::string_view text);
// True if the bytes decompress to a point of the Ed25519 curve (ed25519-dalek
// VerifyingKey::from_bytes: y is reduced mod p, small-order and torsion points are accepted).
bool is_valid_public_key(const PublicKey& key);

// ---- DNS payload (§2.5) -------------------------------------------------------------------------
inline constexpr std::uint16_t kTypeA = 1;
inline constexpr std::uint16_t kTypeNs = 2;
inline constexpr std::uint16_t kTypeCname = 5;
inline constexpr std::uint16_t kTypeSoa = 6;
inline constexpr std::uint16_t kTypeTxt = 16;
inline constexpr std::uint16_t kTypeAaaa = 28;
inline constexpr std::uint16_t kClassIn = 1;

// One resource record of the answer section. `name` is the owner in presentation format as
// libknot prints it: FQDN with trailing dot, original case, special bytes escaped ("\DDD").
struct Record {
  std::string name;
  std::uint16_t type = kTypeTxt;
  std::uint16_t rclass = kClassIn;
  std::uint32_t ttl = 0;
  Bytes rdata;                   // uncompressed RDATA as on the wire
  std::vector<std::string> txt;  // decoded character-strings when type == TXT, else empty

  // A TXT record; each string must be <= 255 bytes (checked when building the message).
  static Record make_txt(std::string name, std::uint32_t ttl, std::vector<std::string> strings);
  friend bool operator==(const Record&, const Record&) = default;
};

enum class NameCompression {
  Compressed,    // what iroh writes (RFC 1035 §4.1.4 pointers to earlier owner names)
  Uncompressed,  // what JS pkarr / dns-packet writes
};

// Answer-only response message: ID 0, flags 0x8000, QD/NS/AR 0, the records in the given order.
// Fails with BadRecord (unencodable record) or TooLarge (> kMaxDnsSize).
Result<Bytes> build_dns(const std::vector<Record>& answers,
                        NameCompression compression = NameCompression::Compressed);
// Parses the whole message (every section must parse, compressed or not) and returns the answer
// section in wire order, one Record per RR.
Result<std::vector<Record>> parse_dns(ByteSpan message);

// ---- signed packet (§2) -------------------------------------------------------------------------
// "3:seqi<ts>e1:v<n>:" + dns: the BEP44 string that is signed (§2.2).
Bytes signed_message(std::uint64_t timestamp_us, ByteSpan dns);

// A verified packet: key, signature, timestamp and a DNS message that libknot parsed.
class SignedPacket {
 public:
  // Full packet: key(32) || sig(64) || ts(8, BE) || dns.
  static Result<SignedPacket> from_bytes(ByteSpan packet);
  // Relay payload (PUT body / GET response): sig || ts || dns, key from the URL.
  static Result<SignedPacket> from_relay_payload(const PublicKey& key, ByteSpan payload);
  // Signs a ready DNS message (which must parse and be <= kMaxDnsSize).
  static Result<SignedPacket> sign(const relay::SecretKey& key, std::uint64_t timestamp_us,
                                   ByteSpan dns);
  static Result<SignedPacket> sign_records(
      const relay::SecretKey& key, std::uint64_t timestamp_us, const std::vector<Record>& answers,
      NameCompression compression = NameCompression::Compressed);

  const PublicKey& public_key() const { return key_; }
  std::uint64_t timestamp_us() const { return timestamp_us_; }
  std::span<const std::uint8_t, kSignatureSize> signature() const {
    return std::span<const std::uint8_t, kSignatureSize>(bytes_.data() + kPublicKeySize,
                                                         kSignatureSize);
  }
  ByteSpan dns() const { return ByteSpan(bytes_).subspan(kHeaderSize); }
  ByteSpan bytes() const { return bytes_; }  // full packet
  ByteSpan relay_payload() const { return ByteSpan(bytes_).subspan(kPublicKeySize); }
  // Cannot fail for a constructed packet: the DNS message was parsed on construction.
  std::vector<Record> answers() const;

  // §2.4: newer timestamp, or the same timestamp and lexicographically greater DNS bytes.
  bool more_recent_than(const SignedPacket& other) const;

  friend bool operator==(const SignedPacket& a, const SignedPacket& b) {
    return a.bytes_ == b.bytes_;
  }

 private:
  SignedPacket() = default;
  static Result<SignedPacket> parse_verified(Bytes packet);

  Bytes bytes_;
  PublicKey key_;
  std::uint64_t timestamp_us_ = 0;
};

// ---- zone view for the DNS server (§5.3) -------------------------------------------------------
// The answer records that belong to the signer's zone: owners whose last label is the signer's z32
// (case-insensitive), SOA and NS dropped, identical RRs merged. `relative_name` is the lowercase
// part left of the z32 label without trailing dot ("" = the apex, e.g. "_iroh").
struct ZoneRecord {
  std::string relative_name;
  Record record;
};
std::vector<ZoneRecord> zone_records(const SignedPacket& packet);
// The RRset at `relative_name` (compared case-insensitively) of exactly `type`, packet order.
std::vector<Record> lookup(const std::vector<ZoneRecord>& zone, std::string_view relative_name,
                           std::uint16_t type);
// True if any record exists at `relative_name` or below it (for NODATA vs NXDOMAIN).
bool name_exists(const std::vector<ZoneRecord>& zone, std::string_view relative_name);

// ---- iroh endpoint record (§3) ------------------------------------------------------------------
inline constexpr std::string_view kIrohTxtName = "_iroh";
inline constexpr std::uint32_t kDefaultTtl = 30;
inline constexpr std::size_t kMaxUserDataSize = 245;

struct EndpointInfo {
  std::vector<std::string> relay_urls;  // e.g. "https://euc1-1.relay.n0.iroh.link./"
  std::vector<std::string> addrs;       // "1.2.3.4:5", "[::1]:5", or custom "<hex>_<hex>"
  std::optional<std::string> user_data;
  friend bool operator==(const EndpointInfo&, const EndpointInfo&) = default;
};

// One TXT RR per value at `_iroh.<z32>.`, TTL `ttl`, order relay, addr, user-data.
std::vector<Record> endpoint_records(const PublicKey& key, const EndpointInfo& info,
                                     std::uint32_t ttl = kDefaultTtl);
Result<SignedPacket> sign_endpoint_info(const relay::SecretKey& key, std::uint64_t timestamp_us,
                                        const EndpointInfo& info, std::uint32_t ttl = kDefaultTtl);
// iroh's client-side parsing of the TXT records (any owner; callers pass the `_iroh` RRset):
// strings of an RR are concatenated and split at '=' (text after a second '=' is dropped); a
// string without '=' or with an unknown key fails the whole record (BadEndpointRecord); relay
// values that are not URLs and addr values that are not socket/custom addresses are skipped; only
// the first user-data is kept.
Result<EndpointInfo> parse_endpoint_info(const std::vector<Record>& txt_records);
// Convenience: the `_iroh.<z32>` TXT RRset of a verified packet, parsed as above.
Result<EndpointInfo> endpoint_info(const SignedPacket& packet);

}  // namespace iroh::pkarr
