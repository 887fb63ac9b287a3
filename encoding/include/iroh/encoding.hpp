// Text encodings of byte strings, the one home for every module (codecs, client, server):
//  * hex: lowercase on output; either case on input (EndpointId text, key files, fingerprints).
//  * base32: RFC 4648 §6 alphabet without padding, either case on input (EndpointId text).
//  * base64url: RFC 4648 §5 alphabet without '=' padding (relay.md §4.3 auth header, RFC 8484
//    §4.1 DoH GET, RFC 7515 §2 JWS for ACME, capability tokens).
// Decoders are strict and never throw: nullopt for characters outside the alphabet (padding
// included), impossible lengths, and non-zero leftover bits (RFC 4648 §3.5: only the canonical
// encoding of a byte string is accepted, so one value has one text form).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace iroh::encoding {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

// Bytes of a text string (no copy): lets std::string payloads use the byte encoders.
inline ByteSpan as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string hex_encode(ByteSpan bytes);
// Even length, [0-9a-fA-F] only.
std::optional<Bytes> hex_decode(std::string_view text);

// Unpadded; A-Z (or a-z) and 2-7; canonical trailing bits.
std::optional<Bytes> base32_decode(std::string_view text);

std::string base64url_encode(ByteSpan bytes);
// Text payloads (JWS members, RFC 7515 §2) are byte strings too.
inline std::string base64url_encode(std::string_view bytes) {
  return base64url_encode(as_bytes(bytes));
}
// Unpadded; length % 4 != 1; canonical trailing bits.
std::optional<Bytes> base64url_decode(std::string_view text);

}  // namespace iroh::encoding
