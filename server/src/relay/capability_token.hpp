// Capability tokens (access mode `capability_issuers`): a self-hoster admits endpoints without
// running a callout service by handing each one a token signed by an issuer key it lists in the
// config. The endpoint presents it where a shared token goes ("Authorization: Bearer <token>" or
// ?token=) and the relay verifies it locally.
//
// Wire format: base64url without padding of  payload ‖ signature (64 B), where
//   payload   = version (u8 = 1) ‖ endpoint id (32 B) ‖ expiry (u64 BE, unix seconds)
//               ‖ note length (u8, <= 64) ‖ note (UTF-8, free text for the operator)
//   signature = Ed25519(issuer, "iroh-relay-capability-v1" ‖ 0x00 ‖ payload)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "iroh/relay_proto.hpp"

namespace iroh::server {

constexpr std::size_t kMaxCapabilityNote = 64;

struct CapabilityToken {
  relay::EndpointId endpoint;
  std::uint64_t expires_unix = 0;
  std::string note;
};

enum class CapabilityError { Malformed, UnknownIssuer, Expired, WrongEndpoint };
std::string_view to_string(CapabilityError e);

// Throws std::invalid_argument if the note is longer than kMaxCapabilityNote.
std::string issue_capability_token(const relay::SecretKey& issuer,
                                   const relay::EndpointId& endpoint, std::uint64_t expires_unix,
                                   std::string_view note = {});

// Checks format, a signature by one of `issuers`, expiry against `now_unix` and that the token
// names `presenter`.
std::variant<CapabilityToken, CapabilityError> verify_capability_token(
    std::string_view token, std::span<const relay::EndpointId> issuers,
    const relay::EndpointId& presenter, std::uint64_t now_unix);

// "24h", "30m", "90s", "7d", "3600" (seconds). nullopt if malformed or zero.
std::optional<std::uint64_t> parse_duration_seconds(std::string_view text);

}  // namespace iroh::server
