extern "C" {
#include <libknot/libknot.h>
}
#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "iroh/pkarr.hpp"
#include "pkarr_internal.hpp"

namespace iroh::pkarr {
namespace {

bool sodium_ready() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

std::uint64_t read_be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void append_decimal(Bytes& out, std::uint64_t v) {
  const std::string s = std::to_string(v);
  out.insert(out.end(), s.begin(), s.end());
}

void append(Bytes& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace

PublicKey detail::public_key_of(const relay::SecretKey& key) {
  PublicKey out;
  std::uint8_t sk[crypto_sign_SECRETKEYBYTES];
  if (sodium_ready()) crypto_sign_seed_keypair(out.bytes.data(), sk, key.seed.data());
  sodium_memzero(sk, sizeof(sk));
  return out;
}

std::string_view to_string(Error e) {
  switch (e) {
    case Error::TooShort:
      return "packet too short";
    case Error::TooLarge:
      return "packet too large";
    case Error::InvalidKey:
      return "invalid public key";
    case Error::BadSignature:
      return "invalid signature";
    case Error::BadDns:
      return "invalid DNS message";
    case Error::BadRecord:
      return "record cannot be encoded";
    case Error::BadEndpointRecord:
      return "invalid iroh endpoint record";
  }
  return "unknown error";
}

Bytes signed_message(std::uint64_t timestamp_us, ByteSpan dns) {
  Bytes out;
  out.reserve(32 + dns.size());
  append(out, "3:seqi");
  append_decimal(out, timestamp_us);
  append(out, "e1:v");
  append_decimal(out, dns.size());
  append(out, ":");
  out.insert(out.end(), dns.begin(), dns.end());
  return out;
}

Result<SignedPacket> SignedPacket::parse_verified(Bytes packet) {
  // Order of checks as in iroh's SignedPacket::from_bytes (§2.3).
  if (packet.size() < kMinPacketSize) return Error::TooShort;
  if (packet.size() > kMaxPacketSize) return Error::TooLarge;
  SignedPacket out;
  std::copy_n(packet.begin(), kPublicKeySize, out.key_.bytes.begin());
  out.timestamp_us_ = read_be64(packet.data() + kPublicKeySize + kSignatureSize);
  const ByteSpan dns = ByteSpan(packet).subspan(kHeaderSize);
  const Bytes message = signed_message(out.timestamp_us_, dns);
  // libsodium's verify rejects non-canonical S and small-order keys / R like verify_strict.
  if (!sodium_ready() || crypto_sign_verify_detached(packet.data() + kPublicKeySize, message.data(),
                                                     message.size(), packet.data()) != 0) {
    // The key check comes first in iroh's order; it runs only here because a verify that
    // succeeded implies a canonical key that decompresses (issue 15 item 7: it costs a field
    // square root per packet). Same answer for every input.
    if (!is_valid_public_key(out.key_)) return Error::InvalidKey;
    return Error::BadSignature;
  }
  auto parsed = parse_dns(dns);
  if (std::holds_alternative<Error>(parsed)) return std::get<Error>(parsed);
  out.bytes_ = std::move(packet);
  return out;
}

Result<SignedPacket> SignedPacket::from_bytes(ByteSpan packet) {
  if (packet.size() < kMinPacketSize) return Error::TooShort;
  if (packet.size() > kMaxPacketSize) return Error::TooLarge;
  return parse_verified(Bytes(packet.begin(), packet.end()));
}

Result<SignedPacket> SignedPacket::from_relay_payload(const PublicKey& key, ByteSpan payload) {
  if (payload.size() < kMinRelayPayloadSize) return Error::TooShort;
  if (payload.size() > kMaxRelayPayloadSize) return Error::TooLarge;
  Bytes packet;
  packet.reserve(kPublicKeySize + payload.size());
  packet.insert(packet.end(), key.bytes.begin(), key.bytes.end());
  packet.insert(packet.end(), payload.begin(), payload.end());
  return parse_verified(std::move(packet));
}

Result<SignedPacket> SignedPacket::sign(const relay::SecretKey& key, std::uint64_t timestamp_us,
                                        ByteSpan dns) {
  if (dns.size() > kMaxDnsSize) return Error::TooLarge;
  auto parsed = parse_dns(dns);
  if (std::holds_alternative<Error>(parsed)) return std::get<Error>(parsed);
  if (!sodium_ready()) return Error::InvalidKey;
  std::uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  std::uint8_t sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, key.seed.data());
  const Bytes message = signed_message(timestamp_us, dns);
  Bytes packet(kHeaderSize + dns.size());
  std::memcpy(packet.data(), pk, kPublicKeySize);
  crypto_sign_detached(packet.data() + kPublicKeySize, nullptr, message.data(), message.size(), sk);
  sodium_memzero(sk, sizeof(sk));
  for (std::size_t i = 0; i < kTimestampSize; ++i) {
    packet[kPublicKeySize + kSignatureSize + i] =
        static_cast<std::uint8_t>(timestamp_us >> (8 * (kTimestampSize - 1 - i)));
  }
  if (!dns.empty()) std::memcpy(packet.data() + kHeaderSize, dns.data(), dns.size());
  SignedPacket out;
  std::memcpy(out.key_.bytes.data(), pk, kPublicKeySize);
  out.timestamp_us_ = timestamp_us;
  out.bytes_ = std::move(packet);
  return out;
}

Result<SignedPacket> SignedPacket::sign_records(const relay::SecretKey& key,
                                                std::uint64_t timestamp_us,
                                                const std::vector<Record>& answers,
                                                NameCompression compression) {
  auto dns = build_dns(answers, compression);
  if (std::holds_alternative<Error>(dns)) return std::get<Error>(dns);
  return sign(key, timestamp_us, std::get<Bytes>(dns));
}

std::vector<Record> SignedPacket::answers() const {
  auto parsed = parse_dns(dns());
  if (auto* records = std::get_if<std::vector<Record>>(&parsed)) return std::move(*records);
  return {};
}

bool SignedPacket::more_recent_than(const SignedPacket& other) const {
  if (timestamp_us_ != other.timestamp_us_) return timestamp_us_ > other.timestamp_us_;
  const ByteSpan a = dns();
  const ByteSpan b = other.dns();
  return std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end());
}

// ---- zone view ----------------------------------------------------------------------------------

std::vector<ZoneRecord> zone_records(const SignedPacket& packet) {
  const std::string z32 = key_to_z32(packet.public_key());
  std::vector<ZoneRecord> zone;
  knot_dname_storage_t owner;
  knot_dname_txt_storage_t text;
  for (Record& r : packet.answers()) {
    if (r.type == kTypeSoa || r.type == kTypeNs) continue;
    if (knot_dname_from_str(owner, r.name.c_str(), sizeof(owner)) == nullptr) continue;
    // Find the last label; everything before it is the relative name.
    const std::uint8_t* label = owner;
    const std::uint8_t* last = nullptr;
    while (*label != 0) {
      last = label;
      label = knot_wire_next_label(label, nullptr);
    }
    if (last == nullptr || *last != z32.size()) continue;
    const std::string last_label =
        detail::to_lower_ascii(std::string_view(reinterpret_cast<const char*>(last + 1), *last));
    if (last_label != z32) continue;
    knot_dname_storage_t prefix;
    const std::size_t prefix_len = static_cast<std::size_t>(last - owner);
    std::memcpy(prefix, owner, prefix_len);
    prefix[prefix_len] = 0;
    if (knot_dname_to_str(text, prefix, sizeof(text)) == nullptr) continue;
    std::string relative = detail::to_lower_ascii(text);
    if (!relative.empty() && relative.back() == '.') relative.pop_back();

    const bool duplicate = std::any_of(zone.begin(), zone.end(), [&](const ZoneRecord& z) {
      return z.relative_name == relative && z.record.type == r.type &&
             z.record.rclass == r.rclass && z.record.rdata == r.rdata;
    });
    if (!duplicate) zone.push_back(ZoneRecord{std::move(relative), std::move(r)});
  }
  return zone;
}

std::vector<Record> lookup(const std::vector<ZoneRecord>& zone, std::string_view relative_name,
                           std::uint16_t type) {
  std::string wanted = detail::to_lower_ascii(relative_name);
  if (!wanted.empty() && wanted.back() == '.') wanted.pop_back();
  std::vector<Record> out;
  for (const ZoneRecord& z : zone) {
    if (z.record.type == type && z.relative_name == wanted) out.push_back(z.record);
  }
  return out;
}

bool name_exists(const std::vector<ZoneRecord>& zone, std::string_view relative_name) {
  std::string wanted = detail::to_lower_ascii(relative_name);
  if (!wanted.empty() && wanted.back() == '.') wanted.pop_back();
  if (wanted.empty()) return !zone.empty();
  const std::string suffix = "." + wanted;
  return std::any_of(zone.begin(), zone.end(), [&](const ZoneRecord& z) {
    const std::string& n = z.relative_name;
    return n == wanted || (n.size() > suffix.size() &&
                           n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0);
  });
}

}  // namespace iroh::pkarr
