#include "iroh/stun.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "unit/hex_text.hpp"

namespace iroh::stun {
namespace {

using iroh::test::from_hex;

const TransactionId kTxid = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
const Endpoint kV4Source = Endpoint::v4({192, 0, 2, 1}, 32853);
const Endpoint kV6Source = Endpoint::v6({0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x00, 0x11,
                                         0x22, 0x33, 0x44, 0x55, 0x66, 0x77},
                                        32853);

// RFC 5769 §2.1-§2.3.
const Bytes kRfc5769Request = from_hex(
    "00010058 2112a442 b7e7a701bc34d686fa87dfae"
    "80220010 5354554e 20746573 7420636c 69656e74"
    "00240004 6e0001ff"
    "80290008 932ff9b1 51263b36"
    "00060009 6576746a 3a683676 59202020"
    "00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2"
    "80280004 e57a3bcf");
const Bytes kRfc5769ResponseV4 = from_hex(
    "0101003c 2112a442 b7e7a701bc34d686fa87dfae"
    "8022000b 74657374 20766563 746f7220"
    "00200008 0001a147 e112a643"
    "00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7"
    "80280004 c07d4c96");
const Bytes kRfc5769ResponseV6 = from_hex(
    "01010048 2112a442 b7e7a701bc34d686fa87dfae"
    "8022000b 74657374 20766563 746f7220"
    "00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9"
    "00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41"
    "80280004 c8fb0b4c");

struct Reply {
  HandleResult result;
  Bytes bytes;
};

Reply handle(const Bytes& request, const Endpoint& source, const ResponseOptions& options = {}) {
  std::array<std::uint8_t, kMaxResponseSize> out{};
  Reply r;
  r.result = handle_datagram(request, source, out, options);
  r.bytes.assign(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(r.result.size));
  if (r.result.action == Action::Reply) {
    EXPECT_LE(r.bytes.size(), request.size() + address_attribute_size(source));
  }
  return r;
}

Message decoded(const Bytes& bytes) {
  auto d = decode(bytes);
  EXPECT_TRUE(d.message.has_value());
  return d.message.value_or(Message{});
}

std::optional<Endpoint> xor_mapped(const Bytes& response) {
  const Message m = decoded(response);
  const Attribute* a = m.find(attr::kXorMappedAddress);
  if (!a) return std::nullopt;
  return decode_xor_address(a->value, m.transaction);
}

std::uint16_t error_code_of(const Bytes& response) {
  const Message m = decoded(response);
  const Attribute* a = m.find(attr::kErrorCode);
  if (!a) return 0;
  auto e = decode_error_code(a->value);
  return e ? static_cast<std::uint16_t>(e->code) : 0;
}

// ---- message type / CRC ------------------------------------------------------------------------

TEST(StunType, InterleavesMethodAndClass) {
  EXPECT_EQ(message_type(kMethodBinding, MessageClass::Request), 0x0001);
  EXPECT_EQ(message_type(kMethodBinding, MessageClass::Indication), 0x0011);
  EXPECT_EQ(message_type(kMethodBinding, MessageClass::SuccessResponse), 0x0101);
  EXPECT_EQ(message_type(kMethodBinding, MessageClass::ErrorResponse), 0x0111);
  EXPECT_EQ(message_type(0x003, MessageClass::ErrorResponse), 0x0113);
  for (std::uint16_t method : {0x001, 0x003, 0x07F, 0x080, 0xFFF}) {
    for (auto cls : {MessageClass::Request, MessageClass::Indication, MessageClass::SuccessResponse,
                     MessageClass::ErrorResponse}) {
      const std::uint16_t t = message_type(method, cls);
      EXPECT_EQ(method_of(t), method);
      EXPECT_EQ(class_of(t), cls);
    }
  }
}

TEST(StunCrc, KnownValue) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32(ByteSpan(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())),
            0xCBF43926u);
}

// ---- spec relay.md §12.5 -----------------------------------------------------------------------

TEST(StunSpec, BindingRequestVector) {
  EXPECT_EQ(make_binding_request(kTxid),
            from_hex("0001 0008 2112a442 000102030405060708090a0b 8028 0004 5b0ff6fc"));
}

TEST(StunSpec, ResponseVectorWithoutOptionalAttributes) {
  const Bytes request = make_binding_request(kTxid);
  const auto r =
      handle(request, Endpoint::v4({192, 0, 2, 1}, 4242), {.software = {}, .fingerprint = false});
  ASSERT_TRUE(r.result.success());
  EXPECT_EQ(r.bytes, from_hex("0101 000c 2112a442 000102030405060708090a0b 0020 0008 00 01 3180 "
                              "e112a643"));
}

TEST(StunSpec, DefaultResponseAddsFingerprint) {
  const Bytes request = make_binding_request(kTxid);
  const auto r = handle(request, Endpoint::v4({192, 0, 2, 1}, 4242));
  ASSERT_TRUE(r.result.success());
  EXPECT_TRUE(has_valid_fingerprint(r.bytes));
  EXPECT_EQ(xor_mapped(r.bytes), Endpoint::v4({192, 0, 2, 1}, 4242));
  EXPECT_EQ(r.result.reported_family, Endpoint::Family::V4);
}

// ---- RFC 5769 ----------------------------------------------------------------------------------

TEST(StunRfc5769, SampleMessagesHaveValidFingerprints) {
  EXPECT_TRUE(has_valid_fingerprint(kRfc5769Request));
  EXPECT_TRUE(has_valid_fingerprint(kRfc5769ResponseV4));
  EXPECT_TRUE(has_valid_fingerprint(kRfc5769ResponseV6));
}

TEST(StunRfc5769, DecodesSampleResponses) {
  EXPECT_EQ(xor_mapped(kRfc5769ResponseV4), kV4Source);
  EXPECT_EQ(xor_mapped(kRfc5769ResponseV6), kV6Source);
  const Message m = decoded(kRfc5769ResponseV4);
  ASSERT_NE(m.find(attr::kSoftware), nullptr);
  EXPECT_EQ(
      std::string(m.find(attr::kSoftware)->value.begin(), m.find(attr::kSoftware)->value.end()),
      "test vector");
}

TEST(StunRfc5769, SampleRequestIsAnsweredWithoutA420) {
  // PRIORITY and MESSAGE-INTEGRITY are comprehension-required but known.
  for (const Endpoint& source : {kV4Source, kV6Source}) {
    const auto r = handle(kRfc5769Request, source, {.software = "test vector"});
    ASSERT_TRUE(r.result.success()) << to_string(r.result.reason);
    const Message m = decoded(r.bytes);
    EXPECT_EQ(m.type, kBindingSuccess);
    EXPECT_TRUE(
        std::equal(m.transaction.begin(), m.transaction.end(), kRfc5769Request.begin() + 4));
    EXPECT_EQ(xor_mapped(r.bytes), source);
    EXPECT_TRUE(has_valid_fingerprint(r.bytes));
    ASSERT_NE(m.find(attr::kSoftware), nullptr);
  }
}

TEST(StunRfc5769, XorMappedAddressBytesMatchSamples) {
  const auto v4 = handle(kRfc5769Request, kV4Source);
  const auto v6 = handle(kRfc5769Request, kV6Source);
  const Bytes v4_attr = from_hex("00200008 0001a147 e112a643");
  const Bytes v6_attr = from_hex("00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9");
  EXPECT_TRUE(std::search(v4.bytes.begin(), v4.bytes.end(), v4_attr.begin(), v4_attr.end()) !=
              v4.bytes.end());
  EXPECT_TRUE(std::search(v6.bytes.begin(), v6.bytes.end(), v6_attr.begin(), v6_attr.end()) !=
              v6.bytes.end());
  EXPECT_EQ(v6.result.reported_family, Endpoint::Family::V6);
}

TEST(StunRfc5769, SampleResponsesAreIgnored) {
  EXPECT_EQ(handle(kRfc5769ResponseV4, kV4Source).result.reason, Reason::Response);
  EXPECT_EQ(handle(kRfc5769ResponseV6, kV4Source).result.action, Action::Ignore);
}

// ---- addresses ---------------------------------------------------------------------------------

TEST(StunAddress, V4MappedSourceIsReportedAsV4) {
  const Endpoint mapped =
      Endpoint::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}, 5000);
  const auto r = handle(make_binding_request(kTxid), mapped);
  ASSERT_TRUE(r.result.success());
  EXPECT_EQ(r.result.reported_family, Endpoint::Family::V4);
  EXPECT_EQ(xor_mapped(r.bytes), Endpoint::v4({127, 0, 0, 1}, 5000));
}

TEST(StunAddress, SoftwareIncludedWhenBudgetAllows) {
  const Bytes request = make_binding_request(kTxid, true, "a client with a long name");
  const auto r = handle(request, kV6Source, {.software = "iroh-relay"});
  ASSERT_TRUE(r.result.success());
  const Message m = decoded(r.bytes);
  ASSERT_NE(m.find(attr::kSoftware), nullptr);
  EXPECT_TRUE(has_valid_fingerprint(r.bytes));
}

// ---- RFC 3489
// ------------------------------------------------------------------------------------

TEST(StunLegacy, RequestWithoutCookieGetsMappedAddress) {
  std::array<std::uint8_t, 16> id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(0xA0 + i);
  // What the RFC 3489 `stun` client sends for its first test: CHANGE-REQUEST with no flags.
  const Bytes request = MessageBuilder(kBindingRequest, id).add_u32(attr::kChangeRequest, 0).take();
  const auto r = handle(request, kV4Source, {.software = "iroh-relay"});
  ASSERT_TRUE(r.result.success());
  const Message m = decoded(r.bytes);
  EXPECT_FALSE(m.has_magic_cookie);
  EXPECT_EQ(m.transaction, id);
  EXPECT_EQ(m.find(attr::kXorMappedAddress), nullptr);
  EXPECT_EQ(m.find(attr::kFingerprint), nullptr);
  ASSERT_EQ(m.attributes.size(), 1u);
  EXPECT_EQ(decode_address(m.attributes[0].value), kV4Source);
}

TEST(StunLegacy, BareRequestFromV6) {
  std::array<std::uint8_t, 16> id{};
  id[0] = 1;
  const Bytes request = MessageBuilder(kBindingRequest, id).take();
  const auto r = handle(request, kV6Source);
  ASSERT_TRUE(r.result.success());
  const Message m = decoded(r.bytes);
  ASSERT_NE(m.find(attr::kMappedAddress), nullptr);
  EXPECT_EQ(decode_address(m.find(attr::kMappedAddress)->value), kV6Source);
}

TEST(StunLegacy, ChangeRequestWithFlagsIsNotAnswered) {
  std::array<std::uint8_t, 16> id{};
  const Bytes request = MessageBuilder(kBindingRequest, id)
                            .add_u32(attr::kChangeRequest, kChangeIp | kChangePort)
                            .take();
  const auto r = handle(request, kV4Source);
  EXPECT_EQ(r.result.action, Action::Drop);
  EXPECT_EQ(r.result.reason, Reason::ChangeRequestUnsupported);
  EXPECT_TRUE(r.result.is_request);
}

TEST(StunLegacy, OtherMethodsWithoutCookieAreIgnored) {
  std::array<std::uint8_t, 16> id{};
  const Bytes request = MessageBuilder(0x0002, id).take();  // RFC 3489 Shared Secret Request
  const auto r = handle(request, kV4Source);
  EXPECT_EQ(r.result.action, Action::Ignore);
  EXPECT_FALSE(r.result.is_request);
}

TEST(StunLegacy, BadCookieFallsBackToLegacyAnswer) {
  Bytes request = MessageBuilder(kBindingRequest, kTxid).take();
  request[4] ^= 0xFF;
  const auto r = handle(request, kV4Source);
  ASSERT_TRUE(r.result.success());
  const Message m = decoded(r.bytes);
  EXPECT_FALSE(m.has_magic_cookie);
  EXPECT_NE(m.find(attr::kMappedAddress), nullptr);
  EXPECT_EQ(m.find(attr::kXorMappedAddress), nullptr);
}

// ---- errors
// ----------------------------------------------------------------------------------------

TEST(StunErrors, UnknownComprehensionRequiredAttributeGets420) {
  const std::uint8_t value[4] = {1, 2, 3, 4};
  const Bytes request = MessageBuilder(kBindingRequest, kTxid)
                            .add(0x7777, value)
                            .add(0x8777, value)  // optional: ignored
                            .add(0x0002, value)  // RESPONSE-ADDRESS: never honoured
                            .add_fingerprint()
                            .take();
  const auto r = handle(request, kV4Source, {.software = "iroh-relay"});
  ASSERT_EQ(r.result.action, Action::Reply);
  EXPECT_EQ(r.result.reason, Reason::UnknownAttributes);
  const Message m = decoded(r.bytes);
  EXPECT_EQ(m.type, kBindingError);
  EXPECT_EQ(error_code_of(r.bytes), 420);
  ASSERT_NE(m.find(attr::kUnknownAttributes), nullptr);
  EXPECT_EQ(decode_unknown_attributes(m.find(attr::kUnknownAttributes)->value),
            (std::vector<std::uint16_t>{0x7777, 0x0002}));
  EXPECT_TRUE(has_valid_fingerprint(r.bytes));
}

TEST(StunErrors, MinimalRequestWithUnknownAttributeStaysWithinBudget) {
  const Bytes request = MessageBuilder(kBindingRequest, kTxid).add(0x7777, {}).take();
  for (const Endpoint& source : {kV4Source, kV6Source}) {
    const auto r = handle(request, source);
    ASSERT_EQ(r.result.reason, Reason::UnknownAttributes);
    EXPECT_EQ(error_code_of(r.bytes), 420);
  }
}

TEST(StunErrors, ManyUnknownAttributesAreListedUpToTheCap) {
  MessageBuilder b(kBindingRequest, kTxid);
  for (std::uint16_t t = 0x4000; t < 0x4000 + 100; ++t) b.add(t, {});
  const Bytes request = b.take();
  const auto r = handle(request, kV4Source);
  ASSERT_EQ(r.result.reason, Reason::UnknownAttributes);
  const Message m = decoded(r.bytes);
  ASSERT_NE(m.find(attr::kUnknownAttributes), nullptr);
  EXPECT_EQ(decode_unknown_attributes(m.find(attr::kUnknownAttributes)->value).size(),
            kMaxUnknownAttributesListed);
}

TEST(StunErrors, IceAndCredentialAttributesAreKnown) {
  const std::uint8_t four[4] = {0, 0, 0, 1};
  const std::uint8_t twenty[20] = {};
  const Bytes request = MessageBuilder(kBindingRequest, kTxid)
                            .add(attr::kUsername, four)
                            .add(attr::kPriority, four)
                            .add(attr::kUseCandidate, {})
                            .add(attr::kIceControlling, twenty)
                            .add(attr::kRealm, four)
                            .add(attr::kNonce, four)
                            .add(attr::kUserhash, twenty)
                            .add(attr::kPasswordAlgorithm, four)
                            .add(attr::kMessageIntegrity, twenty)
                            .add(0x7777, four)  // after MESSAGE-INTEGRITY: ignored
                            .add_fingerprint()
                            .take();
  EXPECT_TRUE(handle(request, kV4Source).result.success());
}

TEST(StunErrors, ChangeRequestWithFlagsGets420WithCookie) {
  const Bytes request =
      MessageBuilder(kBindingRequest, kTxid).add_u32(attr::kChangeRequest, kChangePort).take();
  const auto r = handle(request, kV4Source);
  ASSERT_EQ(r.result.reason, Reason::UnknownAttributes);
  const Message m = decoded(r.bytes);
  EXPECT_EQ(decode_unknown_attributes(m.find(attr::kUnknownAttributes)->value),
            (std::vector<std::uint16_t>{attr::kChangeRequest}));
  const Bytes plain =
      MessageBuilder(kBindingRequest, kTxid).add_u32(attr::kChangeRequest, 0).take();
  EXPECT_TRUE(handle(plain, kV4Source).result.success());
}

TEST(StunErrors, AttributeOverrunGets400) {
  Bytes request = MessageBuilder(kBindingRequest, kTxid).add(attr::kSoftware, Bytes(8, 'x')).take();
  request[23] = 200;  // SOFTWARE length now runs past the end
  const auto r = handle(request, kV4Source);
  ASSERT_EQ(r.result.action, Action::Reply);
  EXPECT_EQ(r.result.reason, Reason::BadRequest);
  EXPECT_EQ(error_code_of(r.bytes), 400);
  EXPECT_EQ(decode(request).error, DecodeError::AttributeOverrun);
}

TEST(StunErrors, MisplacedOrMalformedFingerprintGets400) {
  const std::uint8_t value[4] = {};
  Bytes after =
      MessageBuilder(kBindingRequest, kTxid).add_fingerprint().add(attr::kSoftware, value).take();
  // Make the misplaced FINGERPRINT itself valid, so only its position is wrong.
  const std::uint32_t crc = crc32(ByteSpan(after.data(), kHeaderSize)) ^ kFingerprintXor;
  for (int i = 0; i < 4; ++i)
    after[kHeaderSize + 4 + i] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
  EXPECT_EQ(handle(after, kV4Source).result.reason, Reason::BadRequest);
  const std::uint8_t eight[8] = {};
  Bytes longer = MessageBuilder(kBindingRequest, kTxid).add(attr::kFingerprint, eight).take();
  EXPECT_EQ(handle(longer, kV4Source).result.reason, Reason::BadRequest);
}

TEST(StunErrors, BadFingerprintIsDropped) {
  Bytes request = make_binding_request(kTxid);
  request.back() ^= 1;
  const auto r = handle(request, kV4Source);
  EXPECT_EQ(r.result.action, Action::Drop);
  EXPECT_EQ(r.result.reason, Reason::BadFingerprint);
  EXPECT_TRUE(r.result.is_request);
  Bytes tampered = kRfc5769Request;
  tampered[30] ^= 0x20;  // inside SOFTWARE
  EXPECT_EQ(handle(tampered, kV4Source).result.reason, Reason::BadFingerprint);
}

TEST(StunErrors, UnknownMethodGets400) {
  const Bytes request = MessageBuilder(message_type(0x003, MessageClass::Request), kTxid).take();
  const auto r = handle(request, kV4Source);
  ASSERT_EQ(r.result.reason, Reason::BadRequest);
  EXPECT_EQ(decoded(r.bytes).type, 0x0113);
  EXPECT_EQ(error_code_of(r.bytes), 400);
}

// ---- ignored
// ---------------------------------------------------------------------------------------

TEST(StunIgnored, IndicationIsIgnored) {
  const Bytes indication =
      MessageBuilder(message_type(kMethodBinding, MessageClass::Indication), kTxid).take();
  const auto r = handle(indication, kV4Source);
  EXPECT_EQ(r.result.action, Action::Ignore);
  EXPECT_EQ(r.result.reason, Reason::Indication);
  EXPECT_FALSE(r.result.is_request);
}

TEST(StunIgnored, MalformedHeadersAreNotStun) {
  const Bytes good = make_binding_request(kTxid);
  for (std::size_t n = 0; n < good.size(); ++n) {
    const Bytes truncated(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(handle(truncated, kV4Source).result.reason, Reason::NotStun) << n;
  }
  Bytes odd = MessageBuilder(kBindingRequest, kTxid).take();
  odd.push_back(0);
  odd.push_back(0);
  odd[3] = 2;  // length not a multiple of 4
  EXPECT_EQ(handle(odd, kV4Source).result.reason, Reason::NotStun);
  Bytes top_bits = good;
  top_bits[0] |= 0x80;
  EXPECT_EQ(handle(top_bits, kV4Source).result.reason, Reason::NotStun);
  Bytes long_length = good;
  long_length[3] = 12;
  EXPECT_EQ(handle(long_length, kV4Source).result.reason, Reason::NotStun);
  const std::string text = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
  EXPECT_EQ(handle(Bytes(text.begin(), text.end()), kV4Source).result.action, Action::Ignore);
}

TEST(StunIgnored, TooSmallBufferIsDroppedNotOverrun) {
  const Bytes request = make_binding_request(kTxid);
  std::array<std::uint8_t, 16> small{};
  const auto r = handle_datagram(request, kV4Source, small);
  EXPECT_EQ(r.action, Action::Drop);
  EXPECT_EQ(r.reason, Reason::BufferTooSmall);
}

// ---- amplification
// ---------------------------------------------------------------------------------

TEST(StunAmplification, ReplyNeverExceedsRequestPlusAddress) {
  const ResponseOptions big{.software = std::string_view(
                                "a very long software description that would not fit anywhere at "
                                "all in a small reply, repeated, repeated, repeated, repeated"),
                            .fingerprint = true};
  std::vector<Bytes> requests = {
      MessageBuilder(kBindingRequest, kTxid).take(),
      make_binding_request(kTxid),
      make_binding_request(kTxid, true, "x"),
      MessageBuilder(kBindingRequest, kTxid).add(0x7777, {}).take(),
      MessageBuilder(kBindingRequest, kTxid).add(0x7777, {}).add(0x7778, {}).add(0x7779, {}).take(),
      MessageBuilder(message_type(0x003, MessageClass::Request), kTxid).take(),
      MessageBuilder(kBindingRequest, std::array<std::uint8_t, 16>{}).take(),
      MessageBuilder(kBindingRequest, std::array<std::uint8_t, 16>{}).add(0x7777, {}).take(),
      kRfc5769Request,
  };
  for (const Bytes& request : requests) {
    for (const Endpoint& source : {kV4Source, kV6Source}) {
      std::array<std::uint8_t, kMaxResponseSize> out{};
      const auto r = handle_datagram(request, source, out, big);
      ASSERT_EQ(r.action, Action::Reply);
      EXPECT_LE(r.size, request.size() + address_attribute_size(source));
      EXPECT_TRUE(decode(ByteSpan(out.data(), r.size)).message.has_value());
    }
  }
  // The bare 20-byte request gets exactly the address and nothing optional.
  std::array<std::uint8_t, kMaxResponseSize> out{};
  EXPECT_EQ(handle_datagram(requests[0], kV4Source, out, big).size, 32u);
  EXPECT_EQ(handle_datagram(requests[0], kV6Source, out, big).size, 44u);
}

}  // namespace
}  // namespace iroh::stun
