// docs/mesh.md §4-§5: the mesh link codec.
#include "iroh/mesh_proto.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

namespace iroh::mesh {
namespace {

EndpointId some_id(std::uint8_t seed) {
  return relay::SecretKey::from_seed(std::array<std::uint8_t, 32>{seed}).public_key();
}

Bytes datagram_frame() {
  const std::uint8_t payload[] = {1, 2, 3};
  return *relay::encode_server_datagram(some_id(7), relay::Ecn::Ect0, 0, payload);
}

TEST(MeshProto, RoundTrips) {
  Hello hello;
  hello.node.fill(0x11);
  hello.nonce.fill(0x22);
  auto h = decode(encode(hello));
  ASSERT_TRUE(std::holds_alternative<Frame>(h));
  const auto& hd = std::get<Hello>(std::get<Frame>(h));
  EXPECT_EQ(hd.version, kVersion);
  EXPECT_EQ(hd.node, hello.node);
  EXPECT_EQ(hd.nonce, hello.nonce);

  Auth auth;
  auth.node.fill(1);
  auth.nonce.fill(2);
  auth.mac.fill(3);
  auto a = std::get<Auth>(std::get<Frame>(decode(encode(auth))));
  EXPECT_EQ(a.node, auth.node);
  EXPECT_EQ(a.nonce, auth.nonce);
  EXPECT_EQ(a.mac, auth.mac);

  Accept accept;
  accept.mac.fill(9);
  EXPECT_EQ(std::get<Accept>(std::get<Frame>(decode(encode(accept)))).mac, accept.mac);

  Present present{some_id(1), 0x0102030405060708ull};
  Bytes pb = encode(present);
  ASSERT_EQ(pb.size(), 1u + 32 + 8);
  EXPECT_EQ(pb[0], 4);
  EXPECT_EQ(pb[33], 0x01);  // generation is big-endian
  EXPECT_EQ(pb[40], 0x08);
  auto p = std::get<Present>(std::get<Frame>(decode(pb)));
  EXPECT_EQ(p.endpoint, present.endpoint);
  EXPECT_EQ(p.generation, present.generation);

  EXPECT_EQ(encode(Synced{}), Bytes{7});
  EXPECT_TRUE(std::holds_alternative<Synced>(std::get<Frame>(decode(Bytes{7}))));
  auto g = std::get<Gone>(std::get<Frame>(decode(encode(Gone{some_id(2)}))));
  EXPECT_EQ(g.endpoint, some_id(2));

  Bytes inner = datagram_frame();
  Bytes fb = encode_forward(some_id(3), inner);
  EXPECT_EQ(fb, encode(Forward{some_id(3), inner}));
  auto f = std::get<Forward>(std::get<Frame>(decode(fb)));
  EXPECT_EQ(f.dst, some_id(3));
  EXPECT_EQ(Bytes(f.frame.begin(), f.frame.end()), inner);

  // ForwardBatch (§5.1): built from encoded Forwards, decoded back in order.
  Bytes batch;
  append_to_batch(batch, fb);
  append_to_batch(batch, encode_forward(some_id(4), inner));
  EXPECT_EQ(batch.size(), 1 + 2 * batch_element_size(fb.size()));
  EXPECT_EQ(batch, encode(ForwardBatch{{Forward{some_id(3), inner}, Forward{some_id(4), inner}}}));
  auto b = std::get<ForwardBatch>(std::get<Frame>(decode(batch)));
  ASSERT_EQ(b.forwards.size(), 2u);
  EXPECT_EQ(b.forwards[0].dst, some_id(3));
  EXPECT_EQ(b.forwards[1].dst, some_id(4));
  EXPECT_EQ(Bytes(b.forwards[1].frame.begin(), b.forwards[1].frame.end()), inner);
}

TEST(MeshProto, MalformedInput) {
  auto err = [](const Bytes& b) {
    auto r = decode(b);
    return std::holds_alternative<DecodeError>(r) ? std::get<DecodeError>(r)
                                                  : DecodeError::BadEncoding;
  };
  auto ok = [](const Bytes& b) { return std::holds_alternative<Frame>(decode(b)); };
  EXPECT_EQ(err({}), DecodeError::Empty);
  EXPECT_EQ(err({0}), DecodeError::UnknownType);
  EXPECT_EQ(err({9}), DecodeError::UnknownType);
  EXPECT_EQ(err({0xff, 1, 2}), DecodeError::UnknownType);
  // Every fixed-length frame one byte short and one byte long.
  for (const Frame& f : {Frame{Hello{}}, Frame{Auth{}}, Frame{Accept{}},
                         Frame{Present{some_id(1), 5}}, Frame{Gone{some_id(1)}}, Frame{Synced{}}}) {
    Bytes b = encode(f);
    EXPECT_TRUE(ok(b));
    if (b.size() > 1) {
      Bytes shorter(b.begin(), b.end() - 1);
      EXPECT_EQ(err(shorter), DecodeError::BadLength) << int(b[0]);
    }
    Bytes longer = b;
    longer.push_back(0);
    EXPECT_EQ(err(longer), DecodeError::BadLength) << int(b[0]);
  }
  // Forward: short destination, no frame, a non-datagram frame, an empty datagram.
  EXPECT_EQ(err(Bytes(1 + 31, 6)), DecodeError::Truncated);
  Bytes no_frame = encode_forward(some_id(3), {});
  EXPECT_EQ(err(no_frame), DecodeError::Empty);
  Bytes gone_frame =
      *relay::encode_server_frame(relay::EndpointGone{some_id(1)}, relay::ProtocolVersion::V2);
  EXPECT_EQ(err(encode_forward(some_id(3), gone_frame)), DecodeError::WrongDirection);
  Bytes inner = datagram_frame();
  inner.resize(1 + 32 + 1);  // type, src, ecn: no contents
  EXPECT_EQ(err(encode_forward(some_id(3), inner)), DecodeError::EmptyDatagram);
  Bytes unknown_inner = {0x30, 1};  // type 48: a one-byte varint, not a frame type
  EXPECT_EQ(err(encode_forward(some_id(3), unknown_inner)), DecodeError::UnknownType);

  // ForwardBatch: empty, a length cut short, a length beyond the message, an element that is not
  // a valid Forward (each refuses the whole message).
  EXPECT_EQ(err({8}), DecodeError::BadLength);
  Bytes good;
  append_to_batch(good, encode_forward(some_id(3), datagram_frame()));
  EXPECT_TRUE(ok(good));
  Bytes short_len = good;
  short_len.insert(short_len.end(), {0, 0, 1});
  EXPECT_EQ(err(short_len), DecodeError::Truncated);
  Bytes long_len = good;
  long_len.insert(long_len.end(), {0, 0, 0, 40, 1, 2});
  EXPECT_EQ(err(long_len), DecodeError::Truncated);
  Bytes bad_element = good;
  append_to_batch(bad_element, encode_forward(some_id(3), gone_frame));
  EXPECT_EQ(err(bad_element), DecodeError::WrongDirection);
  Bytes zero_element = good;
  zero_element.insert(zero_element.end(), {0, 0, 0, 0});
  EXPECT_EQ(err(zero_element), DecodeError::Truncated);
}

TEST(MeshProto, LinkMac) {
  ASSERT_GE(sodium_init(), 0);
  const std::string key = "0123456789abcdef0123456789abcdef";
  ByteSpan psk(reinterpret_cast<const std::uint8_t*>(key.data()), key.size());
  Hello hello;
  hello.node.fill(0xa1);
  hello.nonce.fill(0xb2);
  NodeId dialer;
  dialer.fill(0xc3);
  Nonce dn;
  dn.fill(0xd4);
  Mac d = link_mac(psk, Role::Dialer, hello, dialer, dn);
  Mac a = link_mac(psk, Role::Acceptor, hello, dialer, dn);
  // The two directions differ, so a MAC cannot be reflected back.
  EXPECT_FALSE(mac_equal(d, a));
  EXPECT_TRUE(mac_equal(d, link_mac(psk, Role::Dialer, hello, dialer, dn)));
  // Independent HMAC-SHA256 over the documented input (docs/mesh.md §4).
  std::string input = "iroh-relay mesh v1 dialer";
  input.append(32, char(0xb2)).append(32, char(0xd4)).append(16, char(0xa1)).append(16, char(0xc3));
  Mac expected{};
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, psk.data(), psk.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(input.data()),
                                input.size());
  crypto_auth_hmacsha256_final(&st, expected.data());
  EXPECT_EQ(d, expected);
  // Any changed input or key changes the MAC.
  Nonce other = dn;
  other[0] ^= 1;
  EXPECT_FALSE(mac_equal(d, link_mac(psk, Role::Dialer, hello, dialer, other)));
  const std::string key2 = "0123456789abcdef0123456789abcdeX";
  ByteSpan psk2(reinterpret_cast<const std::uint8_t*>(key2.data()), key2.size());
  EXPECT_FALSE(mac_equal(d, link_mac(psk2, Role::Dialer, hello, dialer, dn)));
}

}  // namespace
}  // namespace iroh::mesh
