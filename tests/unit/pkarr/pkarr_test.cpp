// Spec address-lookup.md §12 vectors A-D and malformed input for the pkarr codec.
#include "iroh/pkarr.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cctype>
#include <random>

#include "unit/hex_text.hpp"
#include "unit/lookup_vectors.hpp"

namespace iroh::pkarr {
namespace {

using iroh::test::from_hex;
using iroh::test::to_hex;

// Both return copies: the argument is usually a temporary.
template <class T>
T ok(const Result<T>& r) {
  if (const Error* e = std::get_if<Error>(&r)) {
    ADD_FAILURE() << "unexpected error: " << to_string(*e);
    return T{};
  }
  return std::get<T>(r);
}

SignedPacket ok_packet(const Result<SignedPacket>& r) {
  if (const Error* e = std::get_if<Error>(&r)) {
    ADD_FAILURE() << "unexpected error: " << to_string(*e);
    // Any valid packet keeps the test running; the failure is already recorded.
    return std::get<SignedPacket>(SignedPacket::sign(relay::SecretKey{}, 0, Bytes(12, 0)));
  }
  return std::get<SignedPacket>(r);
}

template <class T>
Error err(const Result<T>& r) {
  EXPECT_TRUE(std::holds_alternative<Error>(r));
  return std::holds_alternative<Error>(r) ? std::get<Error>(r) : Error::BadRecord;
}

using namespace iroh::test::lookup_vectors;

relay::SecretKey test_key() {
  relay::SecretKey key;
  const Bytes seed = from_hex(kSeedHex);
  std::copy(seed.begin(), seed.end(), key.seed.begin());
  return key;
}

PublicKey test_public_key() {
  PublicKey key;
  const Bytes bytes = from_hex(kPublicKeyHex);
  std::copy(bytes.begin(), bytes.end(), key.bytes.begin());
  return key;
}

std::vector<Record> vector_records() {
  const std::string owner = "_iroh." + std::string(kZ32) + ".";
  return {Record::make_txt(owner, 30, {std::string(kRelay)}),
          Record::make_txt(owner, 30, {std::string(kAddr)})};
}

// Signs arbitrary bytes as the DNS part, bypassing the DNS check of SignedPacket::sign, to build
// packets whose only defect is the DNS message.
Bytes sign_raw(ByteSpan dns, std::uint64_t ts = kTimestamp) {
  const relay::SecretKey key = test_key();
  std::uint8_t pk[32], sk[64];
  crypto_sign_seed_keypair(pk, sk, key.seed.data());
  Bytes packet(pk, pk + 32);
  packet.resize(kHeaderSize);
  for (int i = 0; i < 8; ++i) packet[96 + i] = static_cast<std::uint8_t>(ts >> (56 - 8 * i));
  packet.insert(packet.end(), dns.begin(), dns.end());
  const Bytes message = signed_message(ts, dns);
  crypto_sign_detached(packet.data() + 32, nullptr, message.data(), message.size(), sk);
  return packet;
}

// ---- z-base-32 ----------------------------------------------------------------------------------

TEST(PkarrZ32, VectorKey) {
  EXPECT_EQ(key_to_z32(test_public_key()), kZ32);
  auto key = key_from_z32(kZ32);
  ASSERT_TRUE(key);
  EXPECT_EQ(*key, test_public_key());
}

TEST(PkarrZ32, RoundTripAllLengths) {
  std::mt19937 rng(7);
  for (std::size_t len = 0; len < 70; ++len) {
    Bytes data(len);
    for (auto& b : data) b = static_cast<std::uint8_t>(rng());
    const std::string text = z32_encode(data);
    EXPECT_EQ(text.size(), (len * 8 + 4) / 5);
    auto back = z32_decode(text);
    ASSERT_TRUE(back) << len;
    EXPECT_EQ(*back, data);
  }
}

TEST(PkarrZ32, StrictDecoding) {
  std::string upper(kZ32);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_FALSE(key_from_z32(upper));
  std::string one_upper(kZ32);
  one_upper[0] = '4';
  one_upper[1] = 'Y';
  EXPECT_FALSE(key_from_z32(one_upper));
  EXPECT_FALSE(key_from_z32(kZ32.substr(0, 51)));
  EXPECT_FALSE(key_from_z32(std::string(kZ32) + "y"));
  EXPECT_FALSE(key_from_z32(""));
  // The last char carries 1 data bit + 4 zero bits: only 'y' (0) and 'o' (16) are canonical.
  std::string bad_tail(kZ32);
  bad_tail.back() = 'n';  // value 2: a non-zero pad bit
  EXPECT_FALSE(z32_decode(bad_tail));
  EXPECT_FALSE(key_from_z32(bad_tail));
  for (char c : std::string_view("0lv2 =.")) {
    std::string bad_char(kZ32);
    bad_char[10] = c;
    EXPECT_FALSE(key_from_z32(bad_char)) << c;
  }
  // 1, 3 and 6 chars (mod 8) never come out of the encoder.
  EXPECT_FALSE(z32_decode("y"));
  EXPECT_FALSE(z32_decode("yyy"));
  EXPECT_FALSE(z32_decode("yyyyyy"));
  EXPECT_TRUE(z32_decode("yy"));
}

TEST(PkarrZ32, PointValidation) {
  ASSERT_GE(sodium_init(), 0);
  EXPECT_TRUE(is_valid_public_key(test_public_key()));
  // Every key libsodium accepts (stricter) must be accepted; some random strings are off-curve.
  std::mt19937 rng(11);
  int off_curve = 0;
  for (int i = 0; i < 200; ++i) {
    PublicKey key;
    for (auto& b : key.bytes) b = static_cast<std::uint8_t>(rng());
    const bool ours = is_valid_public_key(key);
    if (crypto_core_ed25519_is_valid_point(key.bytes.data())) {
      EXPECT_TRUE(ours);
    }
    if (!ours) {
      ++off_curve;
      EXPECT_FALSE(key_from_z32(key_to_z32(key)));
    }
  }
  EXPECT_GT(off_curve, 50);  // about half of all y values are not on the curve
  // Identity point (y = 1): small order, decompresses fine (accepted like ed25519-dalek).
  PublicKey identity;
  identity.bytes[0] = 1;
  EXPECT_TRUE(is_valid_public_key(identity));
}

// ---- DNS payload --------------------------------------------------------------------------------

TEST(PkarrDns, VectorACompressed) {
  const Bytes dns = ok(build_dns(vector_records(), NameCompression::Compressed));
  EXPECT_EQ(to_hex(dns), kDnsA);
}

TEST(PkarrDns, VectorBUncompressed) {
  const Bytes dns = ok(build_dns(vector_records(), NameCompression::Uncompressed));
  EXPECT_EQ(to_hex(dns), kDnsB);
}

TEST(PkarrDns, VectorCEmpty) {
  EXPECT_EQ(to_hex(ok(build_dns({}))), "000080000000000000000000");
  EXPECT_EQ(to_hex(ok(build_dns({}, NameCompression::Uncompressed))), "000080000000000000000000");
}

TEST(PkarrDns, ParseBothEncodings) {
  for (auto text : {kDnsA, kDnsB}) {
    const auto records = ok(parse_dns(from_hex(text)));
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records, vector_records());
    EXPECT_EQ(records[0].txt, std::vector<std::string>{std::string(kRelay)});
    EXPECT_EQ(records[1].ttl, 30u);
  }
}

TEST(PkarrDns, ParseQueryVectorD) {
  // A query parses (question skipped), with no answers.
  EXPECT_TRUE(ok(parse_dns(from_hex(kQueryD))).empty());
}

TEST(PkarrDns, CompressesSharedSuffix) {
  const std::string z32(kZ32);
  std::vector<Record> records = vector_records();
  Record a;
  a.name = z32 + ".";
  a.type = kTypeA;
  a.ttl = 60;
  a.rdata = {192, 0, 2, 1};
  records.push_back(a);
  const Bytes dns = ok(build_dns(records));
  // Apex owner = pointer to the z32 label of the first owner (offset 18).
  EXPECT_NE(to_hex(dns).find("c01200010001"), std::string::npos);
  EXPECT_EQ(ok(parse_dns(dns)), records);
  EXPECT_EQ(ok(parse_dns(ok(build_dns(records, NameCompression::Uncompressed)))), records);
}

TEST(PkarrDns, KeepsCaseAndOrder) {
  // libknot compresses case-insensitively (a later "a.example." would point at "Example."), so
  // only the unshared labels keep their own case.
  std::vector<Record> records = {Record::make_txt("B.Example.", 5, {"x"}),
                                 Record::make_txt("a.Example.", 7, {"y", "z"}),
                                 Record::make_txt("B.Example.", 5, {"a"})};
  const auto parsed = ok(parse_dns(ok(build_dns(records))));
  EXPECT_EQ(parsed, records);
}

TEST(PkarrDns, DuplicateRecordsKeptInWireOrder) {
  std::vector<Record> records = {Record::make_txt("a.", 5, {"x"}), Record::make_txt("b.", 5, {"y"}),
                                 Record::make_txt("a.", 5, {"x"})};
  EXPECT_EQ(ok(parse_dns(ok(build_dns(records)))), records);
}

TEST(PkarrDns, BuildErrors) {
  EXPECT_EQ(err(build_dns({Record::make_txt("a.", 1, {std::string(256, 'x')})})), Error::BadRecord);
  std::vector<Record> many;
  for (int i = 0; i < 10; ++i) many.push_back(Record::make_txt("a.", 1, {std::string(200, 'x')}));
  EXPECT_EQ(err(build_dns(many)), Error::TooLarge);
  EXPECT_EQ(err(build_dns(many, NameCompression::Uncompressed)), Error::TooLarge);
  Record bad_a;
  bad_a.name = "a.";
  bad_a.type = kTypeA;
  bad_a.rdata = {1, 2, 3};
  EXPECT_EQ(err(build_dns({bad_a})), Error::BadRecord);
  Record bad_name = Record::make_txt(std::string(300, 'a') + ".", 1, {"x"});
  EXPECT_EQ(err(build_dns({bad_name})), Error::BadRecord);
}

TEST(PkarrDns, Garbage) {
  EXPECT_EQ(err(parse_dns(Bytes{})), Error::BadDns);
  EXPECT_EQ(err(parse_dns(Bytes(11, 0))), Error::BadDns);
  const Bytes a = from_hex(kDnsA);
  for (std::size_t len = 12; len < a.size(); ++len) {
    EXPECT_TRUE(std::holds_alternative<Error>(parse_dns(ByteSpan(a).first(len)))) << len;
  }
  Bytes trailing = a;
  trailing.push_back(0);
  EXPECT_EQ(err(parse_dns(trailing)), Error::BadDns);
  // Answer count larger than the records present.
  Bytes count = a;
  count[7] = 3;
  EXPECT_EQ(err(parse_dns(count)), Error::BadDns);
  // Compression pointer to itself.
  Bytes loop = from_hex("000080000000000100000000c00c00100001000000010000");
  EXPECT_EQ(err(parse_dns(loop)), Error::BadDns);
  // TXT character-string longer than its RDATA.
  Bytes bad_txt = from_hex(
      "00008000000000010000000001610000100001000000010002"
      "05"
      "61");
  EXPECT_EQ(err(parse_dns(bad_txt)), Error::BadDns);
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    Bytes junk(12 + rng() % 200);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    (void)parse_dns(junk);  // must not crash
  }
}

// ---- signed packets -----------------------------------------------------------------------------

TEST(PkarrPacket, VectorA) {
  const SignedPacket signed_a =
      ok_packet(SignedPacket::sign_records(test_key(), kTimestamp, vector_records()));
  EXPECT_EQ(to_hex(signed_a.signature()), kSigA);
  EXPECT_EQ(to_hex(signed_a.relay_payload()), kPayloadA);
  EXPECT_EQ(signed_a.bytes().size(), 261u);
  EXPECT_EQ(to_hex(signed_a.bytes()), std::string(kPublicKeyHex) + std::string(kPayloadA));

  const std::string prefix = "3:seqi1700000000000000e1:v157:";
  const Bytes message = signed_message(kTimestamp, from_hex(kDnsA));
  EXPECT_EQ(std::string(message.begin(), message.begin() + prefix.size()), prefix);
  EXPECT_EQ(message.size(), prefix.size() + 157);

  const SignedPacket parsed =
      ok_packet(SignedPacket::from_relay_payload(test_public_key(), from_hex(kPayloadA)));
  EXPECT_EQ(parsed, signed_a);
  EXPECT_EQ(parsed.timestamp_us(), kTimestamp);
  EXPECT_EQ(parsed.public_key(), test_public_key());
  EXPECT_EQ(parsed.answers(), vector_records());
  EXPECT_EQ(ok_packet(SignedPacket::from_bytes(signed_a.bytes())), signed_a);

  const EndpointInfo info = ok(endpoint_info(parsed));
  EXPECT_EQ(info.relay_urls, std::vector<std::string>{"https://euc1-1.relay.n0.iroh.link./"});
  EXPECT_EQ(info.addrs, std::vector<std::string>{"192.0.2.10:4433"});
  EXPECT_FALSE(info.user_data);
}

TEST(PkarrPacket, VectorBAndOrdering) {
  const SignedPacket b = ok_packet(SignedPacket::sign_records(
      test_key(), kTimestamp, vector_records(), NameCompression::Uncompressed));
  EXPECT_EQ(to_hex(b.signature()), kSigB);
  EXPECT_EQ(b.relay_payload().size(), 287u);
  EXPECT_EQ(to_hex(b.dns()), kDnsB);
  const SignedPacket a =
      ok_packet(SignedPacket::from_relay_payload(test_public_key(), from_hex(kPayloadA)));
  const SignedPacket b2 = ok_packet(SignedPacket::from_relay_payload(
      test_public_key(), Bytes(b.relay_payload().begin(), b.relay_payload().end())));
  EXPECT_EQ(b2, b);
  // Same timestamp: A's DNS bytes are larger at offset 124 (c0 > 05), so A wins in either order.
  EXPECT_TRUE(a.more_recent_than(b));
  EXPECT_FALSE(b.more_recent_than(a));
  EXPECT_FALSE(a.more_recent_than(a));
}

TEST(PkarrPacket, VectorCEmpty) {
  const SignedPacket c = ok_packet(SignedPacket::sign_records(test_key(), kTimestamp + 1, {}));
  EXPECT_EQ(to_hex(c.relay_payload()), kPayloadC);
  const SignedPacket parsed =
      ok_packet(SignedPacket::from_relay_payload(test_public_key(), from_hex(kPayloadC)));
  EXPECT_TRUE(parsed.answers().empty());
  const SignedPacket a =
      ok_packet(SignedPacket::from_relay_payload(test_public_key(), from_hex(kPayloadA)));
  EXPECT_TRUE(parsed.more_recent_than(a));
  const EndpointInfo info = ok(endpoint_info(parsed));
  EXPECT_TRUE(info.relay_urls.empty() && info.addrs.empty());
}

TEST(PkarrPacket, SizeLimits) {
  const PublicKey key = test_public_key();
  const Bytes payload = from_hex(kPayloadA);
  EXPECT_EQ(err(SignedPacket::from_relay_payload(key, Bytes{})), Error::TooShort);
  EXPECT_EQ(err(SignedPacket::from_relay_payload(key, ByteSpan(payload).first(71))),
            Error::TooShort);
  EXPECT_EQ(err(SignedPacket::from_bytes(Bytes(103, 0))), Error::TooShort);
  EXPECT_EQ(err(SignedPacket::from_relay_payload(key, Bytes(1073, 0))), Error::TooLarge);
  EXPECT_EQ(err(SignedPacket::from_bytes(Bytes(1105, 0))), Error::TooLarge);
  // A correctly signed packet with a 1001-byte DNS message.
  std::vector<Record> big;
  for (int i = 0; i < 4; ++i) big.push_back(Record::make_txt("a.", 1, {std::string(230, 'x')}));
  const Bytes dns = ok(build_dns(big));
  ASSERT_LE(dns.size(), kMaxDnsSize);
  Bytes oversized = dns;
  oversized.resize(kMaxDnsSize + 1, 0);
  EXPECT_EQ(err(SignedPacket::sign(test_key(), kTimestamp, oversized)), Error::TooLarge);
  EXPECT_EQ(err(SignedPacket::from_bytes(sign_raw(oversized))), Error::TooLarge);
  // Exactly 1000 bytes is allowed: pad the last TXT string.
  const std::size_t room = kMaxDnsSize - dns.size();
  // Owner pointer (2) + RR header (10) + string length (1) + string.
  big.push_back(Record::make_txt("a.", 1, {std::string(room - 13, 'y')}));
  const Bytes full = ok(build_dns(big));
  EXPECT_EQ(full.size(), kMaxDnsSize);
  const SignedPacket max = ok_packet(SignedPacket::sign(test_key(), kTimestamp, full));
  EXPECT_EQ(max.bytes().size(), kMaxPacketSize);
  EXPECT_TRUE(std::holds_alternative<SignedPacket>(SignedPacket::from_bytes(max.bytes())));
}

TEST(PkarrPacket, BadSignatureAndKey) {
  const Bytes payload = from_hex(kPayloadA);
  for (std::size_t i : {0u, 31u, 63u, 64u, 71u, 72u, 100u, 228u}) {
    Bytes flipped = payload;
    flipped[i] ^= 0x01;
    EXPECT_EQ(err(SignedPacket::from_relay_payload(test_public_key(), flipped)),
              Error::BadSignature)
        << i;
  }
  // Another valid key: signature does not verify.
  PublicKey other = *key_from_z32(key_to_z32(test_public_key()));
  other.bytes[0] ^= 0x02;
  if (is_valid_public_key(other)) {
    EXPECT_EQ(err(SignedPacket::from_relay_payload(other, payload)), Error::BadSignature);
  }
  // Off-curve key.
  PublicKey off_curve;
  for (std::uint8_t y = 2; y < 50; ++y) {
    off_curve.bytes[0] = y;
    if (!is_valid_public_key(off_curve)) break;
  }
  ASSERT_FALSE(is_valid_public_key(off_curve));
  EXPECT_EQ(err(SignedPacket::from_relay_payload(off_curve, payload)), Error::InvalidKey);
  Bytes full(off_curve.bytes.begin(), off_curve.bytes.end());
  full.insert(full.end(), payload.begin(), payload.end());
  EXPECT_EQ(err(SignedPacket::from_bytes(full)), Error::InvalidKey);
}

TEST(PkarrPacket, SignedGarbageDns) {
  EXPECT_EQ(err(SignedPacket::from_bytes(sign_raw(Bytes{}))), Error::BadDns);
  EXPECT_EQ(err(SignedPacket::from_bytes(sign_raw(Bytes(11, 0)))), Error::BadDns);
  const Bytes a = from_hex(kDnsA);
  EXPECT_TRUE(std::holds_alternative<SignedPacket>(SignedPacket::from_bytes(sign_raw(a))));
  EXPECT_EQ(err(SignedPacket::from_bytes(sign_raw(ByteSpan(a).first(100)))), Error::BadDns);
  EXPECT_EQ(err(SignedPacket::sign(test_key(), kTimestamp, ByteSpan(a).first(100))), Error::BadDns);
}

// ---- zone view ----------------------------------------------------------------------------------

TEST(PkarrZone, FiltersAndLooksUp) {
  const std::string z32(kZ32);
  std::string mixed = z32;
  mixed[0] = '4';
  mixed[1] = 'Y';  // not a valid z32 char, but only compared case-insensitively here
  std::vector<Record> records = vector_records();
  records.push_back(Record::make_txt("_IROH." + mixed + ".", 30, {std::string(kAddr)}));  // dup
  Record apex_a;
  apex_a.name = z32 + ".";
  apex_a.type = kTypeA;
  apex_a.ttl = 60;
  apex_a.rdata = {192, 0, 2, 1};
  records.push_back(apex_a);
  records.push_back(Record::make_txt("foo.example.", 30, {"x=y"}));
  Record soa;
  soa.name = z32 + ".";
  soa.type = kTypeSoa;
  soa.rdata = from_hex("0161000162000000000100000001000000010000000100000001");
  records.push_back(soa);
  records.push_back(Record::make_txt("a.b." + z32 + ".", 30, {"deep"}));
  const SignedPacket packet =
      ok_packet(SignedPacket::sign_records(test_key(), kTimestamp, records));
  const auto zone = zone_records(packet);
  ASSERT_EQ(zone.size(), 4u);
  EXPECT_EQ(lookup(zone, "_iroh", kTypeTxt), vector_records());
  EXPECT_EQ(lookup(zone, "_IROH", kTypeTxt).size(), 2u);
  EXPECT_TRUE(lookup(zone, "_iroh", kTypeA).empty());
  EXPECT_EQ(lookup(zone, "", kTypeA).size(), 1u);
  EXPECT_TRUE(lookup(zone, "", kTypeSoa).empty());
  EXPECT_EQ(lookup(zone, "a.b", kTypeTxt).size(), 1u);
  EXPECT_TRUE(name_exists(zone, ""));
  EXPECT_TRUE(name_exists(zone, "b"));
  EXPECT_TRUE(name_exists(zone, "_iroh"));
  EXPECT_FALSE(name_exists(zone, "c"));
  EXPECT_FALSE(name_exists(zone, "x_iroh"));
}

// ---- iroh endpoint record -----------------------------------------------------------------------

TEST(PkarrEndpoint, RoundTrip) {
  EndpointInfo info;
  info.relay_urls = {"https://relay.example./"};
  info.addrs = {"192.0.2.1:1", "[2001:db8::1]:443", "[fe80::1%2]:7", "192.0.2.1:1", "1f_00ff"};
  info.user_data = "hello world";
  const SignedPacket packet = ok_packet(sign_endpoint_info(test_key(), kTimestamp, info));
  const auto records = packet.answers();
  ASSERT_EQ(records.size(), 6u);  // duplicate address written once
  EXPECT_EQ(records[0].txt[0], "relay=https://relay.example./");
  EXPECT_EQ(records.back().txt[0], "user-data=hello world");
  EXPECT_EQ(records[0].name, "_iroh." + std::string(kZ32) + ".");
  EXPECT_EQ(records[0].ttl, kDefaultTtl);
  EndpointInfo expected = info;
  expected.addrs.erase(expected.addrs.begin() + 3);
  EXPECT_EQ(ok(endpoint_info(packet)), expected);
  info.user_data = std::string(246, 'u');
  EXPECT_EQ(err(sign_endpoint_info(test_key(), kTimestamp, info)), Error::BadRecord);
}

TEST(PkarrEndpoint, ClientParsingRules) {
  auto txt = [](std::vector<std::string> strings) {
    return Record::make_txt("_iroh.x.", 30, std::move(strings));
  };
  // Strings of one RR are concatenated; text after a second '=' is dropped.
  auto info = ok(parse_endpoint_info({txt({"rel", "ay=https://a./"}), txt({"addr=1.2.3.4:5=x"})}));
  EXPECT_EQ(info.relay_urls, std::vector<std::string>{"https://a./"});
  EXPECT_EQ(info.addrs, std::vector<std::string>{"1.2.3.4:5"});
  EXPECT_EQ(err(parse_endpoint_info({txt({"relay"})})), Error::BadEndpointRecord);
  EXPECT_EQ(err(parse_endpoint_info({txt({"foo=bar"})})), Error::BadEndpointRecord);
  // Invalid values are skipped, first user-data wins.
  info = ok(
      parse_endpoint_info({txt({"relay=not a url"}), txt({"addr=1.2.3:5"}),
                           txt({"addr=[::1]:99999"}), txt({"addr=01.2.3.4:5"}), txt({"addr=XY_00"}),
                           txt({"user-data=one"}), txt({"user-data=two"})}));
  EXPECT_TRUE(info.relay_urls.empty());
  EXPECT_TRUE(info.addrs.empty());
  EXPECT_EQ(info.user_data, "one");
  // Non-TXT records are ignored.
  Record a;
  a.type = kTypeA;
  a.rdata = {1, 2, 3, 4};
  EXPECT_TRUE(std::holds_alternative<EndpointInfo>(parse_endpoint_info({a})));
}

}  // namespace
}  // namespace iroh::pkarr
