// The one hex and base64url implementation (encoding/include/iroh/encoding.hpp).
#include "iroh/encoding.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using iroh::encoding::as_bytes;
using iroh::encoding::base32_decode;
using iroh::encoding::base64url_decode;
using iroh::encoding::base64url_encode;
using iroh::encoding::Bytes;
using iroh::encoding::hex_decode;
using iroh::encoding::hex_encode;

Bytes bytes_of(std::string_view text) {
  auto b = as_bytes(text);
  return Bytes(b.begin(), b.end());
}

TEST(Hex, EncodesLowercase) {
  EXPECT_EQ(hex_encode({}), "");
  const Bytes b{0x00, 0x01, 0xab, 0xff, 0x7f};
  EXPECT_EQ(hex_encode(b), "0001abff7f");
}

TEST(Hex, DecodesEitherCase) {
  EXPECT_EQ(hex_decode(""), Bytes{});
  EXPECT_EQ(hex_decode("0001abFF7f"), (Bytes{0x00, 0x01, 0xab, 0xff, 0x7f}));
}

TEST(Hex, RejectsMalformed) {
  EXPECT_FALSE(hex_decode("0"));     // odd length
  EXPECT_FALSE(hex_decode("abc"));   // odd length
  EXPECT_FALSE(hex_decode("0g"));    // outside the alphabet
  EXPECT_FALSE(hex_decode(" 00"));   // no white space
  EXPECT_FALSE(hex_decode("0x00"));  // no prefix
  EXPECT_FALSE(hex_decode(std::string("0\0", 2)));
}

// RFC 4648 §10 test vectors, without padding.
TEST(Base32, Rfc4648Vectors) {
  const char* vectors[][2] = {{"", ""},
                              {"f", "MY"},
                              {"fo", "MZXQ"},
                              {"foo", "MZXW6"},
                              {"foob", "MZXW6YQ"},
                              {"fooba", "MZXW6YTB"},
                              {"foobar", "MZXW6YTBOI"}};
  for (const auto& [plain, coded] : vectors) {
    EXPECT_EQ(base32_decode(coded), bytes_of(plain)) << coded;
  }
  EXPECT_EQ(base32_decode("mzxw6YTBoi"), bytes_of("foobar"));  // either case
}

TEST(Base32, RejectsMalformed) {
  EXPECT_FALSE(base32_decode("M"));         // a lone character: no byte ends there
  EXPECT_FALSE(base32_decode("MZX"));       // 15 bits: one byte and 7 bits over
  EXPECT_FALSE(base32_decode("MY======"));  // padding
  EXPECT_FALSE(base32_decode("MZ"));        // 'f' with non-zero leftover bits
  EXPECT_FALSE(base32_decode("M1"));        // '1' and '0' are not in the alphabet
  EXPECT_FALSE(base32_decode("MY "));
}

// RFC 4648 §10 test vectors, without padding.
TEST(Base64Url, Rfc4648Vectors) {
  const char* vectors[][2] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    EXPECT_EQ(base64url_encode(as_bytes(plain)), coded) << plain;
    EXPECT_EQ(base64url_decode(coded), bytes_of(plain)) << coded;
  }
}

TEST(Base64Url, UsesTheUrlAlphabet) {
  const Bytes b{0xfb, 0xff};
  EXPECT_EQ(base64url_encode(b), "-_8");
  EXPECT_EQ(base64url_decode("-_8"), b);
}

TEST(Base64Url, RoundTripsEveryLength) {
  Bytes b;
  for (int n = 0; n < 70; ++n) {
    EXPECT_EQ(base64url_decode(base64url_encode(b)), b) << n;
    b.push_back(static_cast<std::uint8_t>(n * 37 + 11));
  }
}

TEST(Base64Url, RejectsMalformed) {
  EXPECT_FALSE(base64url_decode("Z"));      // length % 4 == 1
  EXPECT_FALSE(base64url_decode("Zm9vY"));  // length % 4 == 1
  EXPECT_FALSE(base64url_decode("Zg=="));   // padding
  EXPECT_FALSE(base64url_decode("Zm9v="));  // padding
  EXPECT_FALSE(base64url_decode("a+b/"));   // the standard alphabet
  EXPECT_FALSE(base64url_decode("Zm 9v"));  // white space
  EXPECT_FALSE(base64url_decode(std::string("Zm\0v", 4)));
  EXPECT_FALSE(base64url_decode("Zh"));   // 'f' with non-zero leftover bits
  EXPECT_FALSE(base64url_decode("Zm9"));  // "fo" with non-zero leftover bits
  EXPECT_FALSE(base64url_decode("\xc3\xa9\xc3\xa9"));
}

}  // namespace
