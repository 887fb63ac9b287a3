// Spec vectors of relay.md §12.1-§12.2, RFC 9000 varints, and malformed input for the relay codec.
#include "iroh/relay_proto.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <random>
#include <string>

#include "unit/hex_text.hpp"

namespace iroh::relay {
namespace {

using iroh::test::from_hex;
using iroh::test::to_hex;

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes str_bytes(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

constexpr std::string_view kK42Hex =
    "197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61";
constexpr std::string_view kK01Hex =
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

EndpointId id_from_hex(std::string_view hex) {
  EndpointId id;
  const Bytes b = from_hex(hex);
  std::copy(b.begin(), b.end(), id.bytes.begin());
  return id;
}

SecretKey key_from_byte(std::uint8_t b) {
  std::array<std::uint8_t, 32> seed;
  seed.fill(b);
  return SecretKey::from_seed(seed);
}

std::array<std::uint8_t, 16> counting16() {
  std::array<std::uint8_t, 16> c;
  for (int i = 0; i < 16; ++i) c[i] = static_cast<std::uint8_t>(i);
  return c;
}

// A 32-byte string that does not decompress to a curve point: y = 2, 3, ... until one fails.
EndpointId find_invalid_key() {
  for (std::uint8_t y = 2; y < 200; ++y) {
    EndpointId id;
    id.bytes[0] = y;
    if (!id.is_valid_point()) return id;
  }
  ADD_FAILURE() << "no invalid point among small y";
  return {};
}

template <class T, class V>
const T& expect_ok(const DecodeResult<V>& r) {
  static const T empty{};
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << "decode failed: " << to_string(*e);
    return empty;
  }
  const auto& v = std::get<V>(r);
  if (!std::holds_alternative<T>(v)) {
    ADD_FAILURE() << "wrong alternative " << v.index();
    return empty;
  }
  return std::get<T>(v);
}

template <class V>
std::optional<DecodeError> error_of(const DecodeResult<V>& r) {
  if (auto* e = std::get_if<DecodeError>(&r)) return *e;
  return std::nullopt;
}

// ---- keys ---------------------------------------------------------------------------------------
TEST(RelayProtoKeys, SpecKeysFromSeeds) {
  EXPECT_EQ(key_from_byte(0x2a).public_key().to_hex(), kK42Hex);
  EXPECT_EQ(key_from_byte(0x01).public_key().to_hex(), kK01Hex);
  EXPECT_TRUE(id_from_hex(kK42Hex).is_valid_point());
  EXPECT_TRUE(id_from_hex(kK01Hex).is_valid_point());
}

TEST(RelayProtoKeys, ValidPointAcceptsWhatDalekDecompresses) {
  EndpointId identity;
  identity.bytes[0] = 1;
  EXPECT_TRUE(identity.is_valid_point());      // small order, still decompresses
  EXPECT_TRUE(EndpointId{}.is_valid_point());  // y = 0: order-4 point
  EndpointId negated = id_from_hex(kK42Hex);
  negated.bytes[31] ^= 0x80;  // sign bit only selects x or -x
  EXPECT_TRUE(negated.is_valid_point());
  // y = p is reduced to 0, y = p + 1 to 1 (curve25519-dalek does not require canonical y).
  EndpointId y_p;
  y_p.bytes.fill(0xff);
  y_p.bytes[0] = 0xed;
  y_p.bytes[31] = 0x7f;
  EXPECT_TRUE(y_p.is_valid_point());
  y_p.bytes[0] = 0xee;
  EXPECT_TRUE(y_p.is_valid_point());
}

// Expected values computed independently in Python (x^2 = (y^2-1)/(d y^2+1) has a root mod p).
TEST(RelayProtoKeys, ValidPointVectors) {
  struct Case {
    std::string_view hex;
    bool valid;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"4420823cfde6f1c26b30f90ec7dd01e4887534a20f0b0d04c36ed80e71e0fd77", true},
           {"b07670eb940bd5335f973daad8619b91ffc911f57cced458bbbf2ce03753c9bd", false},
           {"fa0ff0169dc9575674066676cfb0b4eb8902c44269da1cf6ba66d3f8b6d4b100", true},
           {"a9ea0e755a5c2e8210242a08e7078f7f89385eb09423555182568b96e8a4fef2", true},
           {"3a0c9fc5afd7608437816bdd0a7309cb4a1252e4da70e6720fcaa4da1e98406c", false},
           {"189c24279e9851d5814204136feb5713c166b13269dd63fc35c797ff08a6cd90", true},
           {"095066a745addb6d8831c2b0f87821142b4456556d89aa82bcadae3a9578fa45", true},
           {"35a414d025c24b40ae3ac127722988ba973aea8d37179706072ed33a14607ad7", false},
           {"523be6557b5134dec19681f4a1336aa2140d0597a3e6c8a0cc2020a2e939806e", false},
           {"f0b6845d6a9d657eb8298f2de52ead74c79d15a75fa29b7dab332f7d700a7ccd", false},
           {"258924260b0594b7fcf04e33a727585b4c48a39c369640694810a1695b99dd50", true},
           {"187e8120e4dc80e0e805caad5784f80cd5091fb5464046848dcbcd582d77f803", true},
           {"5aa2e0737aa0fdf573d3ac8c701824bc51689f9899be54ed2b3fc15a4f80da6f", false},
           {"1afdc9b2c454142e8233882a4729e37bc3ddcb54a6e040f96c3ddcd13c978e7f", false},
           {"c10261e00a0f7c856958914b668b9f80e456b6fbd73e6ac46891370c3c069745", true},
           {"26bf9fdfb6a5003fe2e6b39cccadfc39c1c368018e65ecd19c57e665b801c7da", true},
           {"cfac22fc7e940ad04fcb8a5b2505b287d29b4dec84f856ef178a32d823b522e2", false},
           {"0a54522fcd8d9b6a6a79aa892326bcef1956988ab676c8cc58f784a871847d0f", true},
           {"cea2dd7f89612554e34b86eb534646e1b89ecd7b3b699c223674cba4fc335f17", false},
           {"1c0b6e11fde2af8c3c583071cc77fde6c156767891ecc76ce784a9fe386d2817", false},
           {"0702f5a3c49364cc514d0f07c64a1dc2824228ec9b07121f42158c3cdd2e610e", false},
           {"ff428e62e5c7a889857c7d1e59b3db1fb4d366d9238825805a314d1e68db161b", true},
           {"2ef0bd32a0144010e241cae40c8a2e80a62b9a11c41d85a04285c23b9b30d97d", true},
           {"69a9adc8f63542e50f955066bdc7a631d1b040211699a0d598a3b48ba6043e4c", false},
           {"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", true},
           {"efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", false},
           {"f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", true},
           {"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", true},
           {"feffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", false},
       }) {
    EXPECT_EQ(id_from_hex(c.hex).is_valid_point(), c.valid) << c.hex;
  }
}

// libsodium accepts only prime-order points, a subset of what decompresses: its verdict must
// imply ours, and about 1/8 of the curve points (half of all y values) pass it.
TEST(RelayProtoKeys, ValidPointAgreesWithLibsodium) {
  ASSERT_GE(sodium_init(), 0);
  std::mt19937_64 rng(42);
  int valid = 0, invalid = 0, prime_order = 0;
  for (int i = 0; i < 4000; ++i) {
    EndpointId id;
    for (auto& b : id.bytes) b = static_cast<std::uint8_t>(rng());
    const bool mine = id.is_valid_point();
    mine ? ++valid : ++invalid;
    if (crypto_core_ed25519_is_valid_point(id.bytes.data())) {
      ++prime_order;
      EXPECT_TRUE(mine) << id.to_hex();
    }
  }
  EXPECT_GT(valid, 1700);
  EXPECT_GT(invalid, 1700);
  EXPECT_GT(prime_order, 150);
  for (int i = 0; i < 50; ++i) {
    EXPECT_TRUE(SecretKey::generate().public_key().is_valid_point());
  }
}

TEST(RelayProtoKeys, ParseHexAndBase32) {
  const EndpointId k42 = id_from_hex(kK42Hex);
  EXPECT_EQ(EndpointId::parse(kK42Hex), k42);
  std::string upper(kK42Hex);
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(EndpointId::parse(upper), k42);
  const std::string b32 = "DF7WWI7BNSCTFRVLZA4PVTK6U6E34DDWWKJAGNADTP5IWPJWRVQQ";
  EXPECT_EQ(EndpointId::parse(b32), k42);
  std::string lower = b32;
  for (auto& c : lower) c = static_cast<char>(std::tolower(c));
  EXPECT_EQ(EndpointId::parse(lower), k42);

  EXPECT_FALSE(EndpointId::parse(""));
  EXPECT_FALSE(EndpointId::parse(kK42Hex.substr(1)));
  EXPECT_FALSE(EndpointId::parse(std::string(kK42Hex) + "0"));
  std::string bad_hex(kK42Hex);
  bad_hex[10] = 'g';
  EXPECT_FALSE(EndpointId::parse(bad_hex));
  std::string bad_b32 = b32;
  bad_b32[5] = '1';
  EXPECT_FALSE(EndpointId::parse(bad_b32));
  bad_b32 = b32;
  bad_b32.back() = 'R';  // non-zero trailing bits
  EXPECT_FALSE(EndpointId::parse(bad_b32));
  EXPECT_FALSE(EndpointId::parse(b32 + "===="));
  EXPECT_FALSE(EndpointId::parse(find_invalid_key().to_hex()));
}

TEST(RelayProtoKeys, HashAndOrdering) {
  const EndpointId a = id_from_hex(kK42Hex), b = id_from_hex(kK01Hex);
  EXPECT_EQ(EndpointIdHash{}(a), EndpointIdHash{}(a));
  EXPECT_NE(EndpointIdHash{}(a), EndpointIdHash{}(b));
  EXPECT_LT(a, b);
}

TEST(RelayProtoKeys, SignAndVerify) {
  const SecretKey key = SecretKey::generate();
  const Bytes msg = str_bytes("hello");
  auto sig = key.sign(msg);
  EXPECT_TRUE(verify_signature(key.public_key(), msg, sig));
  sig[10] ^= 1;
  EXPECT_FALSE(verify_signature(key.public_key(), msg, sig));
}

// ---- varints (RFC 9000 §A.1) --------------------------------------------------------------------
TEST(RelayProtoVarint, Rfc9000Vectors) {
  struct Case {
    std::string_view hex;
    std::uint64_t value;
  };
  for (const Case& c : {Case{"c2197c5eff14e88c", 151288809941952652ull},
                        Case{"9d7f3e7d", 494878333}, Case{"7bbd", 15293}, Case{"25", 37},
                        Case{"4025", 37}, Case{"80000025", 37}, Case{"c000000000000025", 37}}) {
    const Bytes in = from_hex(c.hex);
    auto v = read_varint(in);
    ASSERT_TRUE(v) << c.hex;
    EXPECT_EQ(v->value, c.value) << c.hex;
    EXPECT_EQ(v->length, in.size()) << c.hex;
    // Truncated encodings are refused.
    for (std::size_t n = 0; n < in.size(); ++n) {
      EXPECT_FALSE(read_varint(ByteSpan(in).first(n))) << c.hex << " n=" << n;
    }
  }
  for (const auto& [value, hex] : std::initializer_list<std::pair<std::uint64_t, std::string_view>>{
           {151288809941952652ull, "c2197c5eff14e88c"},
           {494878333, "9d7f3e7d"},
           {15293, "7bbd"},
           {37, "25"},
           {63, "3f"},
           {64, "4040"},
           {16383, "7fff"},
           {16384, "80004000"},
           {(1ull << 30) - 1, "bfffffff"},
           {1ull << 30, "c000000040000000"},
           {(1ull << 62) - 1, "ffffffffffffffff"}}) {
    Bytes out;
    write_varint(out, value);
    EXPECT_EQ(to_hex(out), hex);
    auto back = read_varint(out);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->value, value);
  }
}

// ---- subprotocol --------------------------------------------------------------------------------
TEST(RelayProtoSubprotocol, Negotiation) {
  EXPECT_EQ(negotiate_subprotocol("iroh-relay-v2, iroh-relay-v1"), ProtocolVersion::V2);
  EXPECT_EQ(negotiate_subprotocol("iroh-relay-v1, iroh-relay-v2"), ProtocolVersion::V2);
  EXPECT_EQ(negotiate_subprotocol("iroh-relay-v1"), ProtocolVersion::V1);
  EXPECT_EQ(negotiate_subprotocol("  iroh-relay-v2  "), ProtocolVersion::V2);
  EXPECT_EQ(negotiate_subprotocol("foo,iroh-relay-v1,bar"), ProtocolVersion::V1);
  EXPECT_EQ(negotiate_subprotocol("iroh-relay-v3, iroh-relay-v1"), ProtocolVersion::V1);
  EXPECT_EQ(negotiate_subprotocol(",,iroh-relay-v2,"), ProtocolVersion::V2);
  EXPECT_FALSE(negotiate_subprotocol(""));
  EXPECT_FALSE(negotiate_subprotocol("iroh-relay-v3"));
  EXPECT_FALSE(negotiate_subprotocol("IROH-RELAY-V2"));
  EXPECT_FALSE(negotiate_subprotocol("iroh-relay-v1x"));
  EXPECT_FALSE(negotiate_subprotocol("iroh-relay-v2;q=1"));
  EXPECT_EQ(subprotocol_name(ProtocolVersion::V1), "iroh-relay-v1");
  EXPECT_EQ(subprotocol_name(ProtocolVersion::V2), "iroh-relay-v2");
}

// ---- handshake (§12.1) --------------------------------------------------------------------------
TEST(RelayProtoHandshake, ServerChallengeVector) {
  const Bytes wire = from_hex("00 000102030405060708090a0b0c0d0e0f");
  EXPECT_EQ(encode(ServerChallenge{counting16()}), wire);
  const auto decoded = decode_handshake(wire);
  EXPECT_EQ(expect_ok<ServerChallenge>(decoded).challenge, counting16());
  // Trailing bytes are ignored.
  Bytes longer = wire;
  longer.push_back(0x99);
  EXPECT_EQ(expect_ok<ServerChallenge>(decode_handshake(longer)).challenge, counting16());
}

TEST(RelayProtoHandshake, ChallengeMessageVector) {
  const auto challenge = counting16();
  EXPECT_EQ(to_hex(challenge_message(challenge)),
            "b7b16e505d2cb5dbaf494800092c3b05a6c45d8d3fd4f1b888c6a77240b876c0");
}

const Bytes& client_auth_vector() {
  static const Bytes wire = from_hex(
      "01 197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61 40"
      "a28b5ebc6a930b5d80ad5aca2a8e48ad4a064e699c0866674c8b8e61a5f4ea94"
      "0ee8b9f06732930250ac0735555abe77e8df740165edc3163be432f0e4f3cf0f");
  return wire;
}

TEST(RelayProtoHandshake, ClientAuthVector) {
  const auto challenge = counting16();
  const ClientAuth auth = sign_challenge(key_from_byte(0x2a), challenge);
  const Bytes wire = encode(auth);
  ASSERT_EQ(wire.size(), 98u);
  EXPECT_EQ(to_hex(wire), to_hex(client_auth_vector()));

  const auto decoded = decode_handshake(client_auth_vector());
  const ClientAuth& got = expect_ok<ClientAuth>(decoded);
  EXPECT_EQ(got.public_key.to_hex(), kK42Hex);
  EXPECT_EQ(got.signature, auth.signature);
  EXPECT_TRUE(verify_client_auth(got, challenge));

  auto other = challenge;
  other[0] ^= 1;
  EXPECT_FALSE(verify_client_auth(got, other));
  for (int bit : {0, 7, 100, 511}) {
    ClientAuth flipped = got;
    flipped.signature[bit / 8] ^= static_cast<std::uint8_t>(1 << (bit % 8));
    EXPECT_FALSE(verify_client_auth(flipped, challenge)) << bit;
  }
  ClientAuth wrong_key = got;
  wrong_key.public_key = id_from_hex(kK01Hex);
  EXPECT_FALSE(verify_client_auth(wrong_key, challenge));
}

TEST(RelayProtoHandshake, ConfirmsAndDeniesVectors) {
  EXPECT_EQ(encode(ServerConfirmsAuth{}), from_hex("02"));
  EXPECT_TRUE(std::holds_alternative<ServerConfirmsAuth>(
      std::get<HandshakeMessage>(decode_handshake(from_hex("02")))));

  for (const auto& [reason, hex] :
       std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"not authorized", "03 0e 6e6f7420617574686f72697a6564"},
           {"signature invalid", "03 11 7369676e617475726520696e76616c6964"},
           {"", "03 00"}}) {
    const Bytes wire = from_hex(hex);
    EXPECT_EQ(encode(ServerDeniesAuth{std::string(reason)}), wire);
    EXPECT_EQ(expect_ok<ServerDeniesAuth>(decode_handshake(wire)).reason, reason);
  }

  const std::string long_reason(200, 'x');  // leb128 length c8 01
  const Bytes wire = encode(ServerDeniesAuth{long_reason});
  ASSERT_EQ(wire.size(), 203u);
  EXPECT_EQ(wire[1], 0xc8);
  EXPECT_EQ(wire[2], 0x01);
  EXPECT_EQ(expect_ok<ServerDeniesAuth>(decode_handshake(wire)).reason, long_reason);
}

TEST(RelayProtoHandshake, TruncatedAtEveryLength) {
  for (const Bytes& wire : {from_hex("00 000102030405060708090a0b0c0d0e0f"), client_auth_vector(),
                            from_hex("03 11 7369676e617475726520696e76616c6964"),
                            encode(ServerDeniesAuth{std::string(300, 'y')})}) {
    EXPECT_EQ(error_of(decode_handshake(ByteSpan(wire).first(0))), DecodeError::Empty);
    for (std::size_t n = 1; n < wire.size(); ++n) {
      EXPECT_EQ(error_of(decode_handshake(ByteSpan(wire).first(n))), DecodeError::Truncated)
          << "type " << int(wire[0]) << " n=" << n;
    }
  }
}

TEST(RelayProtoHandshake, MalformedMessages) {
  for (std::uint8_t t = 4; t <= 13; ++t) {
    EXPECT_EQ(error_of(decode_handshake(Bytes{t, 0, 0, 0})), DecodeError::WrongDirection) << int(t);
  }
  EXPECT_EQ(error_of(decode_handshake(Bytes{14})), DecodeError::UnknownType);
  EXPECT_EQ(error_of(decode_handshake(Bytes{63})), DecodeError::UnknownType);
  EXPECT_EQ(error_of(decode_handshake(Bytes{0x40, 0x40})), DecodeError::UnknownType);
  EXPECT_EQ(error_of(decode_handshake(Bytes{0x40})), DecodeError::Truncated);
  // Non-minimal type varint is accepted.
  EXPECT_TRUE(std::holds_alternative<ServerConfirmsAuth>(
      std::get<HandshakeMessage>(decode_handshake(Bytes{0x40, 0x02}))));

  Bytes bad_len = client_auth_vector();
  bad_len[33] = 0x3f;
  EXPECT_EQ(error_of(decode_handshake(bad_len)), DecodeError::BadEncoding);
  Bytes overflow = from_hex("03 ffffffffffffffffffff01");
  EXPECT_EQ(error_of(decode_handshake(overflow)), DecodeError::BadEncoding);
  Bytes huge_len = from_hex("03 ffffffffffffffff7f 41");
  EXPECT_EQ(error_of(decode_handshake(huge_len)), DecodeError::Truncated);

  Bytes bad_key = client_auth_vector();
  const EndpointId invalid = find_invalid_key();
  std::copy(invalid.bytes.begin(), invalid.bytes.end(), bad_key.begin() + 1);
  EXPECT_EQ(error_of(decode_handshake(bad_key)), DecodeError::InvalidKey);

  for (const char* bad_utf8 :
       {"03 01 ff", "03 02 c0af", "03 03 eda080", "03 04 f4908080", "03 02 e282", "03 01 80"}) {
    EXPECT_EQ(error_of(decode_handshake(from_hex(bad_utf8))), DecodeError::BadEncoding) << bad_utf8;
  }
  EXPECT_EQ(expect_ok<ServerDeniesAuth>(decode_handshake(from_hex("03 04 f09f9880"))).reason,
            "\xf0\x9f\x98\x80");
}

// ---- keying-material header (§4.3, §12.1) -------------------------------------------------------
constexpr std::string_view kAuthHeaderVector =
    "GX9rI-FshTLGq8g4-s1ep4m-DHaykgM0A5v6iz02jWFAQb98VXtFUshaBKOJKabtiBrsmgnPjpFdRpJqAzcy9jOAPc-"
    "kOvzLgXjeT9vCG8qx2yO7aDoF4n5vbE4kJbh2CBAREhMUFRYXGBkaGxwdHh8";

std::array<std::uint8_t, 32> counting32() {
  std::array<std::uint8_t, 32> ekm;
  for (int i = 0; i < 32; ++i) ekm[i] = static_cast<std::uint8_t>(i);
  return ekm;
}

TEST(RelayProtoAuthHeader, Vector) {
  ASSERT_EQ(kAuthHeaderVector.size(), 151u);
  const auto ekm = counting32();
  const KeyMaterialAuth auth = sign_key_material(key_from_byte(0x2a), ekm);
  EXPECT_EQ(to_hex(auth.signature),
            "41bf7c557b4552c85a04a38929a6ed881aec9a09cf8e915d46926a033732f633"
            "803dcfa43afccb8178de4fdbc21bcab1db23bb683a05e27e6f6c4e2425b87608");
  EXPECT_EQ(encode_auth_header(auth), kAuthHeaderVector);

  const auto decoded = decode_auth_header(kAuthHeaderVector);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->public_key.to_hex(), kK42Hex);
  EXPECT_EQ(decoded->signature, auth.signature);
  EXPECT_EQ(to_hex(decoded->suffix), "101112131415161718191a1b1c1d1e1f");
  EXPECT_TRUE(verify_key_material(*decoded, ekm));

  auto other_ekm = ekm;
  other_ekm[20] ^= 1;  // suffix mismatch (e.g. TLS-terminating proxy)
  EXPECT_FALSE(verify_key_material(*decoded, other_ekm));
  other_ekm = ekm;
  other_ekm[3] ^= 1;  // signed half differs
  EXPECT_FALSE(verify_key_material(*decoded, other_ekm));
  KeyMaterialAuth flipped = *decoded;
  flipped.signature[63] ^= 0x01;
  EXPECT_FALSE(verify_key_material(flipped, ekm));
}

TEST(RelayProtoAuthHeader, StrictDecoding) {
  const std::string good(kAuthHeaderVector);
  EXPECT_FALSE(decode_auth_header(""));
  EXPECT_FALSE(decode_auth_header(good + "="));
  EXPECT_FALSE(decode_auth_header(good.substr(0, 150) + "="));
  EXPECT_FALSE(decode_auth_header(good.substr(0, 150)));
  EXPECT_FALSE(decode_auth_header(good + "A"));
  std::string bad = good;
  bad[10] = '+';  // standard-base64 alphabet
  EXPECT_FALSE(decode_auth_header(bad));
  bad = good;
  bad[10] = '/';
  EXPECT_FALSE(decode_auth_header(bad));
  bad = good;
  bad[10] = ' ';
  EXPECT_FALSE(decode_auth_header(bad));
  bad = good;
  ASSERT_EQ(bad.back(), '8');
  bad.back() = '9';  // same bytes, non-zero trailing bits
  EXPECT_FALSE(decode_auth_header(bad));

  // Length prefix must be 64 (byte 32 lives in chars 42..44).
  KeyMaterialAuth auth = *decode_auth_header(good);
  auth.public_key = find_invalid_key();
  EXPECT_FALSE(decode_auth_header(encode_auth_header(auth)));
  std::string bad_prefix = good;
  bad_prefix[43] = bad_prefix[43] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(decode_auth_header(bad_prefix));
}

// ---- relay frames (§12.2) -----------------------------------------------------------------------
std::string k42() {
  return std::string(kK42Hex);
}

TEST(RelayProtoFrames, PingPongVectors) {
  Ping ping;
  ping.data.fill(0x2a);
  Pong pong;
  pong.data.fill(0x2a);
  const Bytes ping_wire = from_hex("09 2a2a2a2a2a2a2a2a");
  const Bytes pong_wire = from_hex("0a 2a2a2a2a2a2a2a2a");
  EXPECT_EQ(encode_client_frame(ping), ping_wire);
  EXPECT_EQ(encode_client_frame(pong), pong_wire);
  EXPECT_EQ(encode_server_frame(ping, ProtocolVersion::V2), ping_wire);
  EXPECT_EQ(encode_server_frame(pong, ProtocolVersion::V1), pong_wire);
  EXPECT_EQ(expect_ok<Ping>(decode_client_frame(ping_wire)).data, ping.data);
  EXPECT_EQ(expect_ok<Pong>(decode_client_frame(pong_wire)).data, pong.data);
  for (auto v : {ProtocolVersion::V1, ProtocolVersion::V2}) {
    EXPECT_EQ(expect_ok<Ping>(decode_server_frame(ping_wire, v)).data, ping.data);
    EXPECT_EQ(expect_ok<Pong>(decode_server_frame(pong_wire, v)).data, pong.data);
  }
  for (const char* bad : {"09", "09 2a2a2a2a2a2a2a", "09 2a2a2a2a2a2a2a2a2a", "0a 2a"}) {
    EXPECT_EQ(error_of(decode_client_frame(from_hex(bad))), DecodeError::BadLength) << bad;
    EXPECT_EQ(error_of(decode_server_frame(from_hex(bad), ProtocolVersion::V2)),
              DecodeError::BadLength)
        << bad;
  }
}

TEST(RelayProtoFrames, ServerOnlyVectors) {
  const EndpointId k = id_from_hex(kK42Hex);
  const Bytes gone_wire = from_hex("08" + k42());
  EXPECT_EQ(encode_server_frame(EndpointGone{k}, ProtocolVersion::V2), gone_wire);
  EXPECT_EQ(expect_ok<EndpointGone>(decode_server_frame(gone_wire, ProtocolVersion::V1)).endpoint,
            k);
  EXPECT_EQ(error_of(decode_server_frame(ByteSpan(gone_wire).first(32), ProtocolVersion::V2)),
            DecodeError::BadLength);
  Bytes gone_long = gone_wire;
  gone_long.push_back(0);
  EXPECT_EQ(error_of(decode_server_frame(gone_long, ProtocolVersion::V2)), DecodeError::BadLength);

  const Bytes restart_wire = from_hex("0c 0000000a 00000014");
  EXPECT_EQ(encode_server_frame(Restarting{10, 20}, ProtocolVersion::V2), restart_wire);
  const auto r = expect_ok<Restarting>(decode_server_frame(restart_wire, ProtocolVersion::V1));
  EXPECT_EQ(r.reconnect_in_ms, 10u);
  EXPECT_EQ(r.try_for_ms, 20u);
  EXPECT_EQ(error_of(decode_server_frame(from_hex("0c 0000000a 000000"), ProtocolVersion::V2)),
            DecodeError::BadLength);

  for (const auto& [code, hex] : std::initializer_list<std::pair<std::uint8_t, std::string_view>>{
           {1, "0d 01"}, {2, "0d 02"}, {0, "0d 00"}}) {
    EXPECT_EQ(encode_server_frame(Status{code}, ProtocolVersion::V2), from_hex(hex));
    EXPECT_EQ(expect_ok<Status>(decode_server_frame(from_hex(hex), ProtocolVersion::V2)).code,
              code);
    EXPECT_FALSE(encode_server_frame(Status{code}, ProtocolVersion::V1));
    EXPECT_EQ(error_of(decode_server_frame(from_hex(hex), ProtocolVersion::V1)),
              DecodeError::WrongDirection);
  }
  EXPECT_EQ(
      expect_ok<Status>(decode_server_frame(from_hex("0d 07 ffff"), ProtocolVersion::V2)).code, 7);
  EXPECT_EQ(error_of(decode_server_frame(from_hex("0d"), ProtocolVersion::V2)),
            DecodeError::Truncated);

  for (std::string_view text :
       {std::string_view("Hello? Yes this is dog."),
        std::string_view("Another endpoint connected with the same endpoint id. No more messages "
                         "will be received.")}) {
    const Bytes wire = cat({Bytes{0x0b}, str_bytes(text)});
    EXPECT_EQ(encode_server_frame(Health{std::string(text)}, ProtocolVersion::V1), wire);
    EXPECT_EQ(expect_ok<Health>(decode_server_frame(wire, ProtocolVersion::V1)).text, text);
    EXPECT_FALSE(encode_server_frame(Health{std::string(text)}, ProtocolVersion::V2));
    EXPECT_EQ(error_of(decode_server_frame(wire, ProtocolVersion::V2)),
              DecodeError::WrongDirection);
  }
  EXPECT_EQ(to_hex(*encode_server_frame(Health{"Hello? Yes this is dog."}, ProtocolVersion::V1)),
            "0b48656c6c6f3f20596573207468697320697320646f672e");
  EXPECT_EQ(encode_server_frame(
                Health{"Another endpoint connected with the same endpoint id. No more messages "
                       "will be received."},
                ProtocolVersion::V1)
                ->size(),
            89u);
  EXPECT_EQ(error_of(decode_server_frame(from_hex("0b ff"), ProtocolVersion::V1)),
            DecodeError::BadEncoding);
  EXPECT_EQ(expect_ok<Health>(decode_server_frame(from_hex("0b"), ProtocolVersion::V1)).text, "");
  EXPECT_FALSE(encode_server_frame(Health{std::string(kMaxPacketSize, 'a')}, ProtocolVersion::V1));
  EXPECT_TRUE(
      encode_server_frame(Health{std::string(kMaxPacketSize - 1, 'a')}, ProtocolVersion::V1));
}

TEST(RelayProtoFrames, DatagramVectors) {
  const EndpointId k = id_from_hex(kK42Hex);
  const Bytes hello = str_bytes("Hello World!");
  const Bytes c_single = from_hex("04" + k42() + "03 48656c6c6f20576f726c6421");
  const Bytes c_batch = from_hex("05" + k42() + "03 0006 48656c6c6f20576f726c6421");
  const Bytes s_single = from_hex("06" + k42() + "03 48656c6c6f20576f726c6421");
  const Bytes s_batch = from_hex("07" + k42() + "03 0006 48656c6c6f20576f726c6421");

  EXPECT_EQ(encode_client_datagram(k, Ecn::Ce, 0, hello), c_single);
  EXPECT_EQ(encode_client_datagram(k, Ecn::Ce, 6, hello), c_batch);
  EXPECT_EQ(encode_server_datagram(k, Ecn::Ce, 0, hello), s_single);
  EXPECT_EQ(encode_server_datagram(k, Ecn::Ce, 6, hello), s_batch);
  EXPECT_EQ(encode_server_frame(Datagram{k, Ecn::Ce, 6, hello}, ProtocolVersion::V2), s_batch);

  auto check = [&](const Datagram& d, std::uint16_t seg) {
    EXPECT_EQ(d.peer, k);
    EXPECT_EQ(d.ecn, Ecn::Ce);
    EXPECT_EQ(d.segment_size, seg);
    EXPECT_EQ(Bytes(d.contents.begin(), d.contents.end()), hello);
  };
  check(expect_ok<Datagram>(decode_client_frame(c_single)), 0);
  check(expect_ok<Datagram>(decode_client_frame(c_batch)), 6);
  for (auto v : {ProtocolVersion::V1, ProtocolVersion::V2}) {
    check(expect_ok<Datagram>(decode_server_frame(s_single, v)), 0);
    check(expect_ok<Datagram>(decode_server_frame(s_batch, v)), 6);
  }
}

TEST(RelayProtoFrames, ForwardingExample) {
  const EndpointId k42 = id_from_hex(kK42Hex), k01 = id_from_hex(kK01Hex);
  const Bytes sent = from_hex("04" + std::string(kK01Hex) + "00 6869");
  EXPECT_EQ(encode_client_datagram(k01, Ecn::NotEct, 0, str_bytes("hi")), sent);
  const auto decoded = decode_client_frame(sent);
  const Datagram& d = expect_ok<Datagram>(decoded);
  EXPECT_EQ(d.peer, k01);
  const auto forwarded = encode_server_datagram(k42, d.ecn, d.segment_size, d.contents);
  EXPECT_EQ(forwarded, from_hex("06" + std::string(kK42Hex) + "00 6869"));
}

TEST(RelayProtoFrames, DatagramDetails) {
  const EndpointId k = id_from_hex(kK42Hex);
  // ecn uses only the low two bits.
  const Bytes high_ecn = from_hex("04" + k42() + "fe 41");
  EXPECT_EQ(expect_ok<Datagram>(decode_client_frame(high_ecn)).ecn, Ecn::Ect0);
  EXPECT_EQ((*encode_client_datagram(k, static_cast<Ecn>(0xff), 0, str_bytes("A")))[33], 3);
  // A batch with segment_size 0 is a single datagram (forwarded as type 6).
  const Bytes zero_seg = from_hex("05" + k42() + "01 0000 4142");
  const auto decoded = decode_client_frame(zero_seg);
  const Datagram& d = expect_ok<Datagram>(decoded);
  EXPECT_EQ(d.segment_size, 0);
  EXPECT_EQ(d.contents.size(), 2u);
  EXPECT_EQ((*encode_server_datagram(d.peer, d.ecn, d.segment_size, d.contents))[0], 6);
  // Non-minimal type varints are accepted.
  EXPECT_EQ(expect_ok<Datagram>(decode_client_frame(from_hex("4004" + k42() + "00 41"))).peer, k);
  EXPECT_EQ(expect_ok<Datagram>(decode_client_frame(from_hex("80000004" + k42() + "00 41"))).peer,
            k);
  EXPECT_TRUE(std::holds_alternative<Ping>(
      std::get<ClientFrame>(decode_client_frame(from_hex("c000000000000009 0102030405060708")))));
}

TEST(RelayProtoFrames, TruncatedAtEveryLength) {
  const std::string key = k42();
  struct Case {
    Bytes wire;
    std::size_t header;  // bytes up to and including the fixed fields
  };
  for (const Case& c : {Case{from_hex("04" + key + "03 4142"), 34},
                        Case{from_hex("05" + key + "03 0006 4142"), 36}}) {
    EXPECT_EQ(error_of(decode_client_frame(ByteSpan(c.wire).first(0))), DecodeError::Empty);
    for (std::size_t n = 1; n <= c.header; ++n) {
      const auto want = n < c.header ? DecodeError::Truncated : DecodeError::EmptyDatagram;
      EXPECT_EQ(error_of(decode_client_frame(ByteSpan(c.wire).first(n))), want) << n;
      Bytes server = Bytes(c.wire.begin(), c.wire.begin() + static_cast<std::ptrdiff_t>(n));
      server[0] += 2;
      EXPECT_EQ(error_of(decode_server_frame(server, ProtocolVersion::V2)), want) << n;
    }
  }
  const Bytes restart = from_hex("0c 0000000a 00000014");
  const Bytes gone = from_hex("08" + key);
  for (std::size_t n = 1; n < 9; ++n) {
    EXPECT_EQ(error_of(decode_server_frame(ByteSpan(restart).first(n), ProtocolVersion::V2)),
              DecodeError::BadLength);
  }
  for (std::size_t n = 1; n < 33; ++n) {
    EXPECT_EQ(error_of(decode_server_frame(ByteSpan(gone).first(n), ProtocolVersion::V2)),
              DecodeError::BadLength);
  }
  EXPECT_EQ(error_of(decode_server_frame(Bytes{}, ProtocolVersion::V1)), DecodeError::Empty);
  EXPECT_EQ(error_of(decode_client_frame(Bytes{0x40})), DecodeError::Truncated);
  EXPECT_EQ(error_of(decode_client_frame(Bytes{0xc0, 0, 0})), DecodeError::Truncated);
}

TEST(RelayProtoFrames, SizeLimits) {
  const EndpointId k = id_from_hex(kK42Hex);
  // Decoders accept a payload of exactly kMaxPacketSize after the type, not one more.
  Bytes max_frame = cat({Bytes{4}, Bytes(k.bytes.begin(), k.bytes.end()), Bytes{0}});
  max_frame.resize(1 + kMaxPacketSize, 0x55);
  EXPECT_EQ(expect_ok<Datagram>(decode_client_frame(max_frame)).contents.size(),
            kMaxPacketSize - 33);
  max_frame.push_back(0x55);
  EXPECT_EQ(error_of(decode_client_frame(max_frame)), DecodeError::TooLarge);
  max_frame[0] = 6;
  EXPECT_EQ(error_of(decode_server_frame(max_frame, ProtocolVersion::V2)), DecodeError::TooLarge);
  max_frame[0] = 14;
  EXPECT_EQ(error_of(decode_client_frame(max_frame)), DecodeError::TooLarge);

  // Encoders cap the total encoding (type byte included).
  const Bytes single_max(kMaxDatagramContents, 1), batch_max(kMaxBatchContents, 1);
  EXPECT_EQ(encode_client_datagram(k, Ecn::NotEct, 0, single_max)->size(), kMaxPacketSize);
  EXPECT_EQ(encode_server_datagram(k, Ecn::NotEct, 1200, batch_max)->size(), kMaxPacketSize);
  const Bytes single_over(kMaxDatagramContents + 1, 1), batch_over(kMaxBatchContents + 1, 1);
  EXPECT_FALSE(encode_client_datagram(k, Ecn::NotEct, 0, single_over));
  EXPECT_FALSE(encode_server_datagram(k, Ecn::NotEct, 0, single_over));
  EXPECT_FALSE(encode_client_datagram(k, Ecn::NotEct, 1200, batch_over));
  EXPECT_FALSE(
      encode_server_frame(Datagram{k, Ecn::NotEct, 1200, batch_over}, ProtocolVersion::V2));
  // ...and refuse empty datagrams.
  EXPECT_FALSE(encode_client_datagram(k, Ecn::NotEct, 0, {}));
  EXPECT_FALSE(encode_server_datagram(k, Ecn::NotEct, 6, {}));
}

TEST(RelayProtoFrames, UnknownAndWrongDirection) {
  const std::string key = k42();
  for (std::uint8_t t : {0, 1, 2, 3, 6, 7, 8, 11, 12, 13}) {
    Bytes wire = from_hex("00" + key + "00 41");
    wire[0] = t;
    EXPECT_EQ(error_of(decode_client_frame(wire)), DecodeError::WrongDirection) << int(t);
  }
  for (std::uint8_t t : {0, 1, 2, 3, 4, 5}) {
    Bytes wire = from_hex("00" + key + "00 41");
    wire[0] = t;
    for (auto v : {ProtocolVersion::V1, ProtocolVersion::V2}) {
      EXPECT_EQ(error_of(decode_server_frame(wire, v)), DecodeError::WrongDirection) << int(t);
    }
  }
  for (const char* hex : {"0e", "0e 00", "3f 0102", "4040", "400e", "7fff 00", "80010000",
                          "c000000100000000", "ffffffffffffffff"}) {
    const Bytes wire = from_hex(hex);
    EXPECT_EQ(error_of(decode_client_frame(wire)), DecodeError::UnknownType) << hex;
    EXPECT_EQ(error_of(decode_server_frame(wire, ProtocolVersion::V1)), DecodeError::UnknownType)
        << hex;
    EXPECT_EQ(error_of(decode_server_frame(wire, ProtocolVersion::V2)), DecodeError::UnknownType)
        << hex;
  }
}

TEST(RelayProtoFrames, InvalidKeys) {
  const EndpointId bad = find_invalid_key();
  const std::string bad_hex = bad.to_hex();
  const Bytes c_single = from_hex("04" + bad_hex + "00 41");
  const Bytes c_batch = from_hex("05" + bad_hex + "00 0001 41");
  EXPECT_EQ(error_of(decode_client_frame(c_single)), DecodeError::InvalidKey);
  EXPECT_EQ(error_of(decode_client_frame(c_batch)), DecodeError::InvalidKey);
  EXPECT_EQ(error_of(decode_server_frame(from_hex("06" + bad_hex + "00 41"), ProtocolVersion::V2)),
            DecodeError::InvalidKey);
  EXPECT_EQ(error_of(decode_server_frame(from_hex("08" + bad_hex), ProtocolVersion::V2)),
            DecodeError::InvalidKey);
  // KeyCheck::Skip leaves the check to the caller (key cache).
  EXPECT_EQ(expect_ok<Datagram>(decode_client_frame(c_single, KeyCheck::Skip)).peer, bad);
  EXPECT_EQ(expect_ok<EndpointGone>(
                decode_server_frame(from_hex("08" + bad_hex), ProtocolVersion::V2, KeyCheck::Skip))
                .endpoint,
            bad);
  // Cheap checks win over the key check.
  EXPECT_EQ(error_of(decode_client_frame(from_hex("04" + bad_hex + "00"))),
            DecodeError::EmptyDatagram);
}

TEST(RelayProtoFrames, ErrorNames) {
  for (auto e : {DecodeError::Empty, DecodeError::Truncated, DecodeError::TooLarge,
                 DecodeError::UnknownType, DecodeError::WrongDirection, DecodeError::BadLength,
                 DecodeError::InvalidKey, DecodeError::EmptyDatagram, DecodeError::BadEncoding}) {
    EXPECT_FALSE(to_string(e).empty());
    EXPECT_NE(to_string(e), "unknown decode error");
  }
}

// Deterministic random messages: decoders never crash, and whatever decodes re-encodes to the
// canonical form of the same frame.
TEST(RelayProtoFrames, RandomInputRoundTrips) {
  std::mt19937 rng(7);
  const EndpointId k = id_from_hex(kK42Hex);
  int decoded_ok = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes msg(rng() % 64);
    for (auto& b : msg) b = static_cast<std::uint8_t>(rng());
    if (!msg.empty()) msg[0] = static_cast<std::uint8_t>(rng() % 16);
    // Half the datagram-shaped messages get a real key so the success paths are exercised too.
    if (msg.size() > 33 && (rng() & 1)) std::copy(k.bytes.begin(), k.bytes.end(), msg.begin() + 1);

    (void)decode_handshake(msg);
    const auto c = decode_client_frame(msg);
    if (const auto* f = std::get_if<ClientFrame>(&c)) {
      ++decoded_ok;
      if (const auto* d = std::get_if<Datagram>(f)) {
        const auto again = encode_client_datagram(d->peer, d->ecn, d->segment_size, d->contents);
        ASSERT_TRUE(again);
        ASSERT_TRUE(std::holds_alternative<ClientFrame>(decode_client_frame(*again)));
      } else if (const auto* p = std::get_if<Ping>(f)) {
        EXPECT_EQ(encode_client_frame(*p), msg);
      } else {
        EXPECT_EQ(encode_client_frame(std::get<Pong>(*f)), msg);
      }
    }
    for (auto v : {ProtocolVersion::V1, ProtocolVersion::V2}) {
      const auto s = decode_server_frame(msg, v);
      if (const auto* f = std::get_if<ServerFrame>(&s)) {
        ++decoded_ok;
        const auto again = encode_server_frame(*f, v);
        ASSERT_TRUE(again);
        const auto s2 = decode_server_frame(*again, v);
        ASSERT_TRUE(std::holds_alternative<ServerFrame>(s2));
        EXPECT_EQ(std::get<ServerFrame>(s2).index(), f->index());
      }
    }
  }
  EXPECT_GT(decoded_ok, 100);
}

}  // namespace
}  // namespace iroh::relay
