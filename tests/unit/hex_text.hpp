// Test vectors written as hex text (RFC examples, spec §12 vectors) to bytes and back, for the
// codecs' unit tests: one home instead of a copy per test file, on the encoding library's hex
// (RFC 4648 §8). Vectors may be split by white space for reading.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "iroh/encoding.hpp"

namespace iroh::test {

// The bytes of `text`, white space ignored; a test failure (and no bytes) if the rest is not hex.
inline std::vector<std::uint8_t> from_hex(std::string_view text) {
  std::string digits;
  for (char c : text) {
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r') digits.push_back(c);
  }
  auto bytes = encoding::hex_decode(digits);
  if (!bytes) {
    ADD_FAILURE() << "test vector is not hex: " << text;
    return {};
  }
  return *bytes;
}

// Lowercase hex of `bytes`.
inline std::string to_hex(std::span<const std::uint8_t> bytes) {
  return encoding::hex_encode(bytes);
}

}  // namespace iroh::test
