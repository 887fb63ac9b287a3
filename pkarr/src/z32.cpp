#include <array>

#include "iroh/pkarr.hpp"

namespace iroh::pkarr {
namespace {

constexpr std::string_view kAlphabet = "ybndrfg8ejkmcpqxot1uwisza345h769";

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}
constexpr auto kDecodeTable = make_decode_table();

}  // namespace

std::string z32_encode(ByteSpan bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::uint8_t b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kAlphabet[(buffer >> bits) & 31]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

std::optional<Bytes> z32_decode(std::string_view text) {
  const std::size_t total_bits = text.size() * 5;
  const std::size_t byte_count = total_bits / 8;
  // A canonical encoding never has a whole 5-bit group of padding.
  if (total_bits - byte_count * 8 >= 5) return std::nullopt;
  Bytes out;
  out.reserve(byte_count);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const std::int8_t v = kDecodeTable[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    buffer = (buffer << 5) | static_cast<std::uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(buffer >> bits));
    }
    buffer &= (1u << bits) - 1;
  }
  if (buffer != 0) return std::nullopt;  // non-zero trailing pad bits
  return out;
}

std::string key_to_z32(const PublicKey& key) {
  return z32_encode(key.bytes);
}

std::optional<PublicKey> key_from_z32_unchecked(std::string_view text) {
  if (text.size() != kZ32KeyLength) return std::nullopt;
  auto bytes = z32_decode(text);
  if (!bytes || bytes->size() != kPublicKeySize) return std::nullopt;
  PublicKey key;
  std::copy(bytes->begin(), bytes->end(), key.bytes.begin());
  return key;
}

std::optional<PublicKey> key_from_z32(std::string_view text) {
  auto key = key_from_z32_unchecked(text);
  if (!key || !is_valid_public_key(*key)) return std::nullopt;
  return key;
}

// One implementation of ed25519-dalek's decompression rule for the whole code base.
bool is_valid_public_key(const PublicKey& key) {
  return key.is_valid_point();
}

}  // namespace iroh::pkarr
