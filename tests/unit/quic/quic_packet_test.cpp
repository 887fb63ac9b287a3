// RFC 9001 Appendix A vectors, spec relay.md §12.4 vectors and malformed input for the QAD
// server's QUIC codec.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "iroh/quic/crypto.hpp"
#include "iroh/quic/packet.hpp"
#include "unit/hex_text.hpp"

namespace quic = iroh::quic;
using quic::Bytes;

namespace {

using iroh::test::from_hex;
using iroh::test::to_hex;

const Bytes kClientDcid = from_hex("8394c8f03e515708");
const Bytes kServerScid = from_hex("f067a5502a4262b5");

// A.2: CRYPTO frame with the ClientHello; the payload is padded to 1162 bytes.
const std::string kA2CryptoFrame =
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c0000"
    "0413011302010000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d0017"
    "001800100007000504616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559f"
    "edba753de171fa71f50f1ce15d43e994ec74d748002b0003020304000d0010000e0403050306030203080408"
    "050806002d00020101001c00024001003900320408ffffffffffffffff05048000ffff07048000ffff080110"
    "0104800075300901100f088394c8f03e51570806048000ffff";
const std::string kA2Packet =
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9bd8bab936b47d"
    "92ec356c0bab7df5976d27cd449f63300099f3991c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad"
    "67500cadb8e7378c8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df621230c83711"
    "b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5457afd84d05dfffdb20392844ae81215"
    "4682e9cf012f9021a6f0be17ddd0c2084dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948"
    "838a3aec4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3485e8a94dc250ae3"
    "fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db059ae0648db2f64264ed5e39be2e20d82df566da"
    "8dd5998ccabdae053060ae6c7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556be52afe3f565636ad1b17d50"
    "8b73d8743eeb524be22b3dcbc2c7468d54119c7468449a13d8e3b95811a198f3491de3e7fe942b330407abf8"
    "2a4ed7c1b311663ac69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00f064c99e"
    "3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632291d6a418211cc2962e20fe47feb3edf"
    "330f2c603a9d48c0fcb5699dbfe5896425c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2"
    "c25e50fd14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ffef132eef2fa09346"
    "aee33c28eb130ff28f5b766953334113211996d20011a198e3fc433f9f2541010ae17c1bf202580f6047472f"
    "b36857fe843b19f5984009ddc324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77fcb2c0e0eb605cb0504db8763"
    "2cf3d8b4dae6e705769d1de354270123cb11450efc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d06"
    "9fc33bd801b03adea2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e72404790a21810"
    "14f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2162f40a29f0c3c8745c0f50fba3852e5"
    "66d44575c29d39a03f0cda721984b6f440591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b6"
    "5bfc5ca06948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e8f2e6ff5800175f1"
    "13253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8"
    "078cdfcb3868263ff8f0940054da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9f96f3ca9ec1dde434da7d2d3"
    "92b905ddf3d1f9af93d1af5950bd493f5aa731b4056df31bd267b6b90a079831aaf579be0a39013137aac6d4"
    "04f518cfd46840647e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241e221af44"
    "860018ab0856972e194cd934";

const std::string kA3Payload =
    "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf73988cfc79825df566dc5430b9a045a"
    "1200130100002e00330024001d00209d3c940d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da"
    "1a002b00020304";
const std::string kA3Packet =
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554"
    "780bb38cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b"
    "562bfb19fb84022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee";

Bytes a2_payload() {
  Bytes payload = from_hex(kA2CryptoFrame);
  payload.resize(1162, 0);
  return payload;
}

}  // namespace

TEST(QuicCrypto, Rfc9001A1InitialKeys) {
  const auto secrets = quic::derive_initial_secrets(kClientDcid);
  EXPECT_EQ(to_hex(secrets.client),
            "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
  EXPECT_EQ(to_hex(secrets.server),
            "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b");
  const auto keys = quic::derive_initial_keys(kClientDcid);
  EXPECT_EQ(to_hex(keys.client.key), "1f369613dd76d5467730efcbe3b1a22d");
  EXPECT_EQ(to_hex(keys.client.iv), "fa044b2f42a3fd3b46fb255c");
  EXPECT_EQ(to_hex(keys.client.hp), "9f50449e04a0e810283a1e9933adedd2");
  EXPECT_EQ(to_hex(keys.server.key), "cf3a5331653c364c88f0f379b6067e37");
  EXPECT_EQ(to_hex(keys.server.iv), "0ac1493ca1905853b0bba03e");
  EXPECT_EQ(to_hex(keys.server.hp), "c206b8d9b9f0f37644430b490eeaa314");
}

TEST(QuicCrypto, Rfc9001A1InitialSecretViaExtract) {
  const Bytes salt = from_hex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
  auto initial = quic::hkdf_extract(quic::Hash::Sha256, salt, kClientDcid);
  ASSERT_TRUE(initial);
  EXPECT_EQ(to_hex(*initial), "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44");
}

TEST(QuicCrypto, Rfc9001A2HeaderProtectionMask) {
  const auto keys = quic::derive_initial_keys(kClientDcid);
  auto mask =
      quic::header_protection_mask(keys.client, from_hex("d1b1c98dd7689fb8ec11d242b123dc9b"));
  ASSERT_TRUE(mask);
  EXPECT_EQ(to_hex(*mask), "437b9aec36");
}

TEST(QuicPacket, Rfc9001A2ClientInitialProtect) {
  const auto keys = quic::derive_initial_keys(kClientDcid);
  const Bytes payload = a2_payload();
  const Bytes header = quic::build_long_header(quic::PacketType::Initial, quic::kVersion1,
                                               kClientDcid, {}, {}, 2, 4, payload.size());
  EXPECT_EQ(to_hex(header), "c300000001088394c8f03e5157080000449e00000002");
  auto packet = quic::protect_packet(header, 4, 2, payload, keys.client);
  ASSERT_TRUE(packet);
  EXPECT_EQ(to_hex(*packet), kA2Packet);
}

TEST(QuicPacket, Rfc9001A2ClientInitialOpen) {
  const auto keys = quic::derive_initial_keys(kClientDcid);
  const Bytes packet = from_hex(kA2Packet);
  auto header = quic::parse_packet_header(packet, 8);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->type, quic::PacketType::Initial);
  EXPECT_EQ(header->version, quic::kVersion1);
  EXPECT_EQ(header->dcid, kClientDcid);
  EXPECT_TRUE(header->scid.empty());
  EXPECT_EQ(header->pn_offset, 18u);
  EXPECT_EQ(header->packet_size, packet.size());
  auto opened = quic::open_packet(packet, *header, keys.client, 0);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->packet_number, 2u);
  EXPECT_EQ(opened->payload, a2_payload());
  auto frames = quic::parse_frames(opened->payload);
  ASSERT_TRUE(std::holds_alternative<std::vector<quic::Frame>>(frames));
  const auto& list = std::get<std::vector<quic::Frame>>(frames);
  ASSERT_EQ(list.size(), 2u);
  const auto* crypto = std::get_if<quic::CryptoFrame>(&list[0]);
  ASSERT_NE(crypto, nullptr);
  EXPECT_EQ(crypto->offset, 0u);
  EXPECT_EQ(crypto->data.size(), 0xf1u);
  const auto* padding = std::get_if<quic::PaddingFrame>(&list[1]);
  ASSERT_NE(padding, nullptr);
  EXPECT_EQ(padding->length, 1162u - from_hex(kA2CryptoFrame).size());

  // The ClientHello's quic_transport_parameters extension (type 0x39).
  const Bytes tp = from_hex(
      "0408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e515708"
      "06048000ffff");
  auto params = quic::decode_transport_parameters(tp);
  ASSERT_TRUE(params);
  EXPECT_EQ(params->initial_max_data, (std::uint64_t{1} << 62) - 1);
  EXPECT_EQ(params->max_idle_timeout_ms, 30000u);
  EXPECT_EQ(params->initial_max_streams_bidi, 16u);
  EXPECT_EQ(params->initial_max_streams_uni, 16u);
  EXPECT_EQ(params->initial_source_connection_id, kClientDcid);
  EXPECT_EQ(params->initial_max_stream_data_bidi_local, 0xffffu);
  EXPECT_FALSE(params->address_discovery);
}

TEST(QuicPacket, Rfc9001A3ServerInitial) {
  const auto keys = quic::derive_initial_keys(kClientDcid);
  const Bytes payload = from_hex(kA3Payload);
  const Bytes header = quic::build_long_header(quic::PacketType::Initial, quic::kVersion1, {},
                                               kServerScid, {}, 1, 2, payload.size());
  EXPECT_EQ(to_hex(header), "c1000000010008f067a5502a4262b50040750001");
  auto packet = quic::protect_packet(header, 2, 1, payload, keys.server);
  ASSERT_TRUE(packet);
  EXPECT_EQ(to_hex(*packet), kA3Packet);

  const Bytes received = from_hex(kA3Packet);
  auto parsed = quic::parse_packet_header(received, 0);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->scid, kServerScid);
  auto opened = quic::open_packet(received, *parsed, keys.server, 0);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->packet_number, 1u);
  EXPECT_EQ(opened->payload, payload);
  auto frames = quic::parse_frames(opened->payload);
  ASSERT_TRUE(std::holds_alternative<std::vector<quic::Frame>>(frames));
  const auto& list = std::get<std::vector<quic::Frame>>(frames);
  ASSERT_EQ(list.size(), 2u);
  const auto* ack = std::get_if<quic::AckFrame>(&list[0]);
  ASSERT_NE(ack, nullptr);
  ASSERT_EQ(ack->ranges.size(), 1u);
  EXPECT_EQ(ack->ranges[0].largest, 0u);
  EXPECT_EQ(ack->ranges[0].smallest, 0u);
  const auto* crypto = std::get_if<quic::CryptoFrame>(&list[1]);
  ASSERT_NE(crypto, nullptr);
  EXPECT_EQ(crypto->data.size(), 0x5au);
}

TEST(QuicPacket, Rfc9001A5ChaCha20ShortHeader) {
  const Bytes secret = from_hex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b");
  auto keys = quic::derive_packet_keys(quic::Aead::ChaCha20Poly1305, quic::Hash::Sha256, secret);
  ASSERT_TRUE(keys);
  EXPECT_EQ(to_hex(keys->key), "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8");
  EXPECT_EQ(to_hex(keys->iv), "e0459b3474bdd0e44a41c144");
  EXPECT_EQ(to_hex(keys->hp), "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4");
  auto ku = quic::hkdf_expand_label(quic::Hash::Sha256, secret, "quic ku", {}, 32);
  ASSERT_TRUE(ku);
  EXPECT_EQ(to_hex(*ku), "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9");

  const std::uint64_t pn = 654360564;
  const Bytes header = quic::build_short_header({}, pn, 3, false);
  EXPECT_EQ(to_hex(header), "4200bff4");
  const Bytes payload = {0x01};
  auto packet = quic::protect_packet(header, 3, pn, payload, *keys);
  ASSERT_TRUE(packet);
  EXPECT_EQ(to_hex(*packet), "4cfe4189655e5cd55c41f69080575d7999c25a5bfb");

  auto parsed = quic::parse_packet_header(*packet, 0);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->type, quic::PacketType::OneRtt);
  auto opened = quic::open_packet(*packet, *parsed, *keys, pn - 1);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->packet_number, pn);
  EXPECT_EQ(opened->payload, payload);
}

TEST(QuicPacket, Aes256GcmRoundTrip) {
  const Bytes secret(48, 0x42);
  auto keys = quic::derive_packet_keys(quic::Aead::Aes256Gcm, quic::Hash::Sha384, secret);
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->key.size(), 32u);
  const Bytes dcid = from_hex("0102030405060708");
  const Bytes payload = {0x01, 0x00, 0x00, 0x00};
  const Bytes header = quic::build_short_header(dcid, 77, 4, true);
  auto packet = quic::protect_packet(header, 4, 77, payload, *keys);
  ASSERT_TRUE(packet);
  auto parsed = quic::parse_packet_header(*packet, dcid.size());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->dcid, dcid);
  auto opened = quic::open_packet(*packet, *parsed, *keys, 70);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->packet_number, 77u);
  EXPECT_TRUE(opened->key_phase);
  EXPECT_EQ(opened->payload, payload);
}

TEST(QuicPacket, DecodePacketNumberRfc9000Example) {
  EXPECT_EQ(quic::decode_packet_number(0xa82f30ea, 0x9b32, 16), 0xa82f9b32u);
  EXPECT_EQ(quic::decode_packet_number(0, 0, 8), 0u);
  EXPECT_EQ(quic::decode_packet_number(255, 1, 8), 257u);
}

TEST(QuicPacket, Spec124TransportParameter) {
  quic::TransportParameters server;
  server.address_discovery = quic::AddressDiscoveryRole::SendOnly;
  EXPECT_EQ(to_hex(quic::encode_transport_parameters(server)), "c00000009f81a1760100");
  auto client = quic::decode_transport_parameters(from_hex("c00000009f81a176 01 01"));
  ASSERT_TRUE(client);
  EXPECT_EQ(client->address_discovery, quic::AddressDiscoveryRole::ReceiveOnly);
  EXPECT_FALSE(quic::decode_transport_parameters(from_hex("c00000009f81a176 01 03")));
}

TEST(QuicPacket, Spec124ObservedAddressFrames) {
  quic::ObservedAddressFrame v4;
  v4.sequence = 0;
  v4.ip[0] = 192;
  v4.ip[1] = 0;
  v4.ip[2] = 2;
  v4.ip[3] = 1;
  v4.port = 4242;
  Bytes out;
  quic::encode_observed_address(out, v4);
  EXPECT_EQ(to_hex(out), "809f81a600c00002011092");

  quic::ObservedAddressFrame v6;
  v6.sequence = 1;
  v6.ipv6 = true;
  const Bytes ip = from_hex("20010db8000000000000000000000001");
  std::copy(ip.begin(), ip.end(), v6.ip.begin());
  v6.port = 443;
  Bytes out6;
  quic::encode_observed_address(out6, v6);
  EXPECT_EQ(to_hex(out6), "809f81a70120010db800000000000000000000000101bb");

  Bytes both = out;
  both.insert(both.end(), out6.begin(), out6.end());
  auto frames = quic::parse_frames(both);
  ASSERT_TRUE(std::holds_alternative<std::vector<quic::Frame>>(frames));
  const auto& list = std::get<std::vector<quic::Frame>>(frames);
  ASSERT_EQ(list.size(), 2u);
  const auto& f4 = std::get<quic::ObservedAddressFrame>(list[0]);
  EXPECT_FALSE(f4.ipv6);
  EXPECT_EQ(f4.port, 4242);
  const auto& f6 = std::get<quic::ObservedAddressFrame>(list[1]);
  EXPECT_TRUE(f6.ipv6);
  EXPECT_EQ(f6.sequence, 1u);
  EXPECT_EQ(f6.port, 443);
}

TEST(QuicPacket, Spec124ApplicationClose) {
  Bytes out;
  quic::encode_connection_close(
      out, {.application = true, .error_code = 1, .frame_type = 0, .reason = "finished"});
  EXPECT_EQ(to_hex(out), "1d0108" + to_hex(Bytes{'f', 'i', 'n', 'i', 's', 'h', 'e', 'd'}));
  auto frames = quic::parse_frames(out);
  ASSERT_TRUE(std::holds_alternative<std::vector<quic::Frame>>(frames));
  const auto& close = std::get<quic::ConnectionCloseFrame>(std::get<0>(frames)[0]);
  EXPECT_TRUE(close.application);
  EXPECT_EQ(close.error_code, 1u);
  EXPECT_EQ(close.reason, "finished");
}

TEST(QuicPacket, AckFrameRoundTrip) {
  quic::AckFrame ack;
  ack.ack_delay = 5;
  ack.ranges = {{10, 12}, {5, 7}, {0, 2}};
  Bytes out;
  quic::encode_ack(out, ack);
  auto frames = quic::parse_frames(out);
  ASSERT_TRUE(std::holds_alternative<std::vector<quic::Frame>>(frames));
  const auto& parsed = std::get<quic::AckFrame>(std::get<0>(frames)[0]);
  ASSERT_EQ(parsed.ranges.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(parsed.ranges[i].smallest, ack.ranges[i].smallest);
    EXPECT_EQ(parsed.ranges[i].largest, ack.ranges[i].largest);
  }
  EXPECT_EQ(parsed.ack_delay, 5u);
}

TEST(QuicPacket, TransportParametersRoundTrip) {
  quic::TransportParameters p;
  p.original_destination_connection_id = kClientDcid;
  p.initial_source_connection_id = kServerScid;
  p.max_idle_timeout_ms = 30000;
  p.stateless_reset_token = std::array<std::uint8_t, 16>{1, 2, 3};
  p.address_discovery = quic::AddressDiscoveryRole::SendOnly;
  p.max_udp_payload_size = 1452;
  p.disable_active_migration = true;
  auto decoded = quic::decode_transport_parameters(quic::encode_transport_parameters(p));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->original_destination_connection_id, kClientDcid);
  EXPECT_EQ(decoded->initial_source_connection_id, kServerScid);
  EXPECT_EQ(decoded->max_idle_timeout_ms, 30000u);
  EXPECT_EQ(decoded->stateless_reset_token, p.stateless_reset_token);
  EXPECT_EQ(decoded->address_discovery, quic::AddressDiscoveryRole::SendOnly);
  EXPECT_EQ(decoded->max_udp_payload_size, 1452u);
  EXPECT_TRUE(decoded->disable_active_migration);
  EXPECT_EQ(decoded->initial_max_streams_bidi, 0u);
}

TEST(QuicPacket, MalformedTransportParameters) {
  EXPECT_FALSE(quic::decode_transport_parameters(from_hex("01")));            // truncated
  EXPECT_FALSE(quic::decode_transport_parameters(from_hex("0102")));          // value missing
  EXPECT_FALSE(quic::decode_transport_parameters(from_hex("010100010100")));  // duplicate
  EXPECT_FALSE(
      quic::decode_transport_parameters(from_hex("0302"
                                                 "4000")));  // max_udp_payload < 1200
  EXPECT_FALSE(
      quic::decode_transport_parameters(from_hex("0102"
                                                 "0101")));  // trailing byte in varint
  EXPECT_FALSE(
      quic::decode_transport_parameters(from_hex("0201"
                                                 "00")));  // reset token size
  EXPECT_FALSE(
      quic::decode_transport_parameters(from_hex("0c01"
                                                 "00")));  // migration non-empty
  EXPECT_FALSE(
      quic::decode_transport_parameters(from_hex("0e01"
                                                 "01")));                    // cid limit < 2
  auto unknown = quic::decode_transport_parameters(from_hex("4aaa02abcd"));  // unknown id, skipped
  ASSERT_TRUE(unknown);
  EXPECT_TRUE(quic::decode_transport_parameters({}));
}

TEST(QuicPacket, VersionNegotiation) {
  const std::uint32_t versions[] = {quic::kVersion1};
  const Bytes vn =
      quic::build_version_negotiation(from_hex("0102"), from_hex("aabbcc"), versions, 0x15);
  EXPECT_EQ(to_hex(vn),
            "9500000000"
            "03aabbcc"
            "020102"
            "00000001");
  auto parsed = quic::parse_packet_header(vn, 0);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->type, quic::PacketType::VersionNegotiation);
}

TEST(QuicPacket, UnknownVersionHeaderParses) {
  const Bytes packet = from_hex(
      "c0"
      "1a2a3a4a"
      "04"
      "01020304"
      "02"
      "0506"
      "ffffffff");
  auto parsed = quic::parse_packet_header(packet, 8);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->version, 0x1a2a3a4au);
  EXPECT_EQ(parsed->dcid, from_hex("01020304"));
  EXPECT_EQ(parsed->scid, from_hex("0506"));
}

TEST(QuicPacket, TruncatedAndCorruptedPacketsAreRejected) {
  const auto keys = quic::derive_initial_keys(kClientDcid);
  const Bytes packet = from_hex(kA2Packet);
  for (std::size_t n = 0; n < packet.size(); ++n) {
    const quic::ByteSpan prefix(packet.data(), n);
    auto header = quic::parse_packet_header(prefix, 8);
    if (header) {
      EXPECT_LE(header->packet_size, n);
      EXPECT_FALSE(quic::open_packet(prefix.first(header->packet_size), *header, keys.client, 0));
    }
  }
  for (std::size_t i = 0; i < packet.size(); i += 37) {
    Bytes corrupted = packet;
    corrupted[i] ^= 0x10;
    auto header = quic::parse_packet_header(corrupted, 8);
    if (!header || header->packet_size > corrupted.size() || header->version != quic::kVersion1) {
      continue;
    }
    EXPECT_FALSE(quic::open_packet(quic::ByteSpan(corrupted).first(header->packet_size), *header,
                                   keys.client, 0))
        << "byte " << i;
  }
  EXPECT_FALSE(quic::parse_packet_header({}, 8));
  EXPECT_FALSE(
      quic::parse_packet_header(from_hex("c0000000011f"), 8));  // DCID longer than 20 bytes
  EXPECT_FALSE(quic::parse_packet_header(from_hex("80000000010000"
                                                  "00"
                                                  "05"),
                                         8));                    // fixed bit clear
  EXPECT_FALSE(quic::parse_packet_header(from_hex("4001"), 8));  // short header too short
}

TEST(QuicPacket, MalformedFrames) {
  auto error_of = [](std::string_view text) -> std::optional<quic::FrameError> {
    auto result = quic::parse_frames(from_hex(text));
    if (auto* e = std::get_if<quic::FrameError>(&result)) return *e;
    return std::nullopt;
  };
  EXPECT_EQ(error_of("")->code, quic::TransportError::ProtocolViolation);
  EXPECT_TRUE(error_of("02"));                // ACK truncated
  EXPECT_TRUE(error_of("020100000200"));      // first range 2 > largest 1
  EXPECT_TRUE(error_of("0205000100000500"));  // gap underflows
  EXPECT_TRUE(error_of("060005aabb"));        // CRYPTO data truncated
  EXPECT_TRUE(error_of("1a0102"));            // PATH_CHALLENGE truncated
  EXPECT_TRUE(error_of("1801000000"));        // NEW_CONNECTION_ID with 0-length CID
  EXPECT_TRUE(error_of("1c0000ff"));          // reason truncated
  EXPECT_TRUE(error_of("21"));                // unknown frame type
  EXPECT_TRUE(error_of("809f81a60001"));      // observed address truncated
  EXPECT_EQ(error_of("0700")->code, quic::TransportError::ProtocolViolation);
  EXPECT_FALSE(error_of("0101000000"));  // PING + padding
  EXPECT_FALSE(error_of("0205000001"));  // ACK 5, first range 1 (4..5)
  EXPECT_TRUE(error_of("0205000100"));   // ACK range count 1, range missing
  auto frames =
      quic::parse_frames(from_hex("0a04"
                                  "0102"));  // STREAM with LEN
  ASSERT_TRUE(std::holds_alternative<std::vector<quic::Frame>>(frames));
  EXPECT_TRUE(std::holds_alternative<quic::StreamFrame>(std::get<0>(frames)[0]));
}

TEST(QuicPacket, PayloadTooShortToSampleIsRefused) {
  const auto keys = quic::derive_initial_keys(kClientDcid);
  const Bytes header = quic::build_short_header(kClientDcid, 1, 1, false);
  EXPECT_FALSE(quic::protect_packet(header, 1, 1, Bytes{0x01}, keys.server));
  EXPECT_TRUE(quic::protect_packet(header, 1, 1, Bytes{0x01, 0, 0}, keys.server));
}

TEST(QuicPacket, NewAndRetireConnectionIdRoundTrip) {
  quic::NewConnectionIdFrame frame;
  frame.sequence = 3;
  frame.retire_prior_to = 1;
  frame.connection_id = from_hex("0102030405060708");
  frame.reset_token = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  Bytes payload;
  quic::encode_new_connection_id(payload, frame);
  quic::encode_retire_connection_id(payload, 2);
  EXPECT_EQ(payload, from_hex("1803010801020304050607080102030405060708090a0b0c0d0e0f10"
                              "1902"));
  EXPECT_EQ(payload[0], 0x18);
  EXPECT_EQ(payload.size(), 1u + 1 + 1 + 1 + 8 + 16 + 2);
  auto frames = quic::parse_frames(payload);
  ASSERT_TRUE(std::holds_alternative<std::vector<quic::Frame>>(frames));
  const auto& list = std::get<std::vector<quic::Frame>>(frames);
  ASSERT_EQ(list.size(), 2u);
  const auto& parsed = std::get<quic::NewConnectionIdFrame>(list[0]);
  EXPECT_EQ(parsed.sequence, 3u);
  EXPECT_EQ(parsed.retire_prior_to, 1u);
  EXPECT_EQ(parsed.connection_id, frame.connection_id);
  EXPECT_EQ(parsed.reset_token, frame.reset_token);
  EXPECT_EQ(std::get<quic::RetireConnectionIdFrame>(list[1]).sequence, 2u);
}

TEST(QuicPacket, StatelessResetTokenAndPacket) {
  quic::StatelessResetKey key{};
  key[0] = 7;
  const Bytes cid = from_hex("0102030405060708");
  const auto token = quic::stateless_reset_token(key, cid);
  EXPECT_EQ(token, quic::stateless_reset_token(key, cid)) << "recomputable without state";
  EXPECT_NE(token, quic::stateless_reset_token(key, from_hex("0102030405060709")));
  key[0] = 8;
  EXPECT_NE(token, quic::stateless_reset_token(key, cid));

  const Bytes reset = quic::build_stateless_reset(token, 29);
  ASSERT_EQ(reset.size(), 29u);
  EXPECT_EQ(reset[0] & 0xc0, 0x40) << "short header form with the fixed bit";
  EXPECT_TRUE(std::equal(token.begin(), token.end(), reset.end() - 16));
  EXPECT_EQ(quic::build_stateless_reset(token, 5).size(), 21u) << "never below 21 bytes";
}
