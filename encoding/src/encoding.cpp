#include "iroh/encoding.hpp"

namespace iroh::encoding {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kBase64UrlDigits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 4648 §5 Table 2; -1 for anything else ('=' included: we never pad).
int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// RFC 4648 §6 Table 3, either case (iroh prints keys in lower case).
int base32_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

// Unpadded base-2^bits text to bytes: nullopt for characters outside the alphabet, for a length
// that leaves a whole character over (no byte can end there) and for non-zero leftover bits
// (RFC 4648 §3.5: canonical encodings only).
template <int kBits, class ValueOf>
std::optional<Bytes> decode_radix(std::string_view text, ValueOf value_of) {
  Bytes out;
  out.reserve(text.size() * kBits / 8);
  std::uint32_t acc = 0;
  int acc_bits = 0;
  for (char c : text) {
    const int v = value_of(c);
    if (v < 0) return std::nullopt;
    acc = acc << kBits | static_cast<std::uint32_t>(v);  // at most 7 + kBits bits pending
    acc_bits += kBits;
    if (acc_bits >= 8) {
      acc_bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> acc_bits));
      acc &= (1u << acc_bits) - 1;
    }
  }
  if (acc_bits >= kBits || acc != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string hex_encode(ByteSpan bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 15]);
  }
  return out;
}

std::optional<Bytes> hex_decode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  Bytes out(text.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string base64url_encode(ByteSpan bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 5) / 6);
  std::uint32_t acc = 0;
  int acc_bits = 0;
  for (std::uint8_t b : bytes) {
    acc = (acc << 8 | b) & 0xffff;  // at most 6 + 8 bits are pending
    acc_bits += 8;
    while (acc_bits >= 6) {
      acc_bits -= 6;
      out.push_back(kBase64UrlDigits[(acc >> acc_bits) & 63]);
    }
  }
  // The last partial group is padded with zero bits (RFC 4648 §4), which decoders check.
  if (acc_bits > 0) out.push_back(kBase64UrlDigits[(acc << (6 - acc_bits)) & 63]);
  return out;
}

std::optional<Bytes> base32_decode(std::string_view text) {
  return decode_radix<5>(text, base32_value);
}

std::optional<Bytes> base64url_decode(std::string_view text) {
  return decode_radix<6>(text, base64url_value);
}

}  // namespace iroh::encoding
