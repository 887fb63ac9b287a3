#include "relay/capability_token.hpp"

#include <sodium.h>

#include <array>
#include <stdexcept>
#include <vector>

#include "iroh/encoding.hpp"

namespace iroh::server {

namespace {

constexpr std::string_view kDomain = "iroh-relay-capability-v1";
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kFixedPayload = 1 + 32 + 8 + 1;
constexpr std::size_t kSignature = crypto_sign_BYTES;

std::vector<std::uint8_t> signed_message(std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> msg(kDomain.begin(), kDomain.end());
  msg.push_back(0);
  msg.insert(msg.end(), payload.begin(), payload.end());
  return msg;
}

}  // namespace

std::string_view to_string(CapabilityError e) {
  switch (e) {
    case CapabilityError::Malformed:
      return "malformed capability token";
    case CapabilityError::UnknownIssuer:
      return "capability token not signed by a trusted issuer";
    case CapabilityError::Expired:
      return "capability token expired";
    case CapabilityError::WrongEndpoint:
      return "capability token issued for another endpoint";
  }
  return "invalid capability token";
}

std::string issue_capability_token(const relay::SecretKey& issuer,
                                   const relay::EndpointId& endpoint, std::uint64_t expires_unix,
                                   std::string_view note) {
  if (note.size() > kMaxCapabilityNote) {
    throw std::invalid_argument("capability note longer than 64 bytes");
  }
  if (sodium_init() < 0) throw std::runtime_error("libsodium init failed");
  std::vector<std::uint8_t> token;
  token.push_back(kVersion);
  token.insert(token.end(), endpoint.bytes.begin(), endpoint.bytes.end());
  for (int i = 7; i >= 0; --i) token.push_back(std::uint8_t(expires_unix >> (8 * i)));
  token.push_back(std::uint8_t(note.size()));
  token.insert(token.end(), note.begin(), note.end());

  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<std::uint8_t, crypto_sign_SECRETKEYBYTES> sk{};
  crypto_sign_seed_keypair(pk.data(), sk.data(), issuer.seed.data());
  auto msg = signed_message(token);
  std::array<std::uint8_t, kSignature> sig{};
  crypto_sign_detached(sig.data(), nullptr, msg.data(), msg.size(), sk.data());
  sodium_memzero(sk.data(), sk.size());
  token.insert(token.end(), sig.begin(), sig.end());

  return encoding::base64url_encode(token);
}

std::variant<CapabilityToken, CapabilityError> verify_capability_token(
    std::string_view token, std::span<const relay::EndpointId> issuers,
    const relay::EndpointId& presenter, std::uint64_t now_unix) {
  constexpr std::size_t kMaxBytes = kFixedPayload + kMaxCapabilityNote + kSignature;
  if (token.empty() || token.size() > (kMaxBytes * 4 + 2) / 3) return CapabilityError::Malformed;
  const auto decoded = encoding::base64url_decode(token);
  if (!decoded) return CapabilityError::Malformed;
  const std::vector<std::uint8_t>& raw = *decoded;
  const std::size_t len = raw.size();
  if (len < kFixedPayload + kSignature || raw[0] != kVersion) return CapabilityError::Malformed;
  std::size_t note_len = raw[kFixedPayload - 1];
  if (note_len > kMaxCapabilityNote || len != kFixedPayload + note_len + kSignature) {
    return CapabilityError::Malformed;
  }
  std::span<const std::uint8_t> payload(raw.data(), kFixedPayload + note_len);
  const std::uint8_t* sig = raw.data() + payload.size();
  auto msg = signed_message(payload);
  bool signed_by_issuer = false;
  for (const auto& issuer : issuers) {
    if (crypto_sign_verify_detached(sig, msg.data(), msg.size(), issuer.bytes.data()) == 0) {
      signed_by_issuer = true;
      break;
    }
  }
  if (!signed_by_issuer) return CapabilityError::UnknownIssuer;
  CapabilityToken out;
  std::copy(raw.begin() + 1, raw.begin() + 33, out.endpoint.bytes.begin());
  for (int i = 0; i < 8; ++i) out.expires_unix = (out.expires_unix << 8) | raw[33 + i];
  out.note.assign(reinterpret_cast<const char*>(raw.data() + kFixedPayload), note_len);
  if (out.expires_unix <= now_unix) return CapabilityError::Expired;
  if (out.endpoint != presenter) return CapabilityError::WrongEndpoint;
  return out;
}

std::optional<std::uint64_t> parse_duration_seconds(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t unit = 1;
  switch (text.back()) {
    case 'd':
      unit = 86400;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'm':
      unit = 60;
      break;
    case 's':
      break;
    default:
      unit = 0;  // a bare number of seconds
  }
  if (unit == 0) {
    unit = 1;
  } else {
    text.remove_suffix(1);
  }
  if (text.empty() || text.size() > 12) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + std::uint64_t(c - '0');
  }
  if (n == 0) return std::nullopt;
  return n * unit;
}

}  // namespace iroh::server
