// The authoritative DNS engine (dns/, iroh/dns.hpp) against spec address-lookup.md §5.3,
// §5.4 and the walk-through of §12 (steps 3-5 and 8 over the wire; 6-7 are the DoH helpers), with
// vectors A-D, every rcode path, EDNS, truncation and malformed queries.
#include "iroh/dns.hpp"

#include <gtest/gtest.h>

#include <map>

#include "unit/hex_text.hpp"
#include "unit/lookup_vectors.hpp"

namespace iroh::dns {
namespace {

using iroh::test::from_hex;

using namespace iroh::test::lookup_vectors;

pkarr::PublicKey vector_key() {
  return *pkarr::key_from_z32(kZ32);
}

pkarr::SignedPacket packet_from_payload(std::string_view payload_hex) {
  auto r = pkarr::SignedPacket::from_relay_payload(vector_key(), from_hex(payload_hex));
  EXPECT_TRUE(std::holds_alternative<pkarr::SignedPacket>(r));
  return std::get<pkarr::SignedPacket>(r);
}

relay::SecretKey vector_secret() {
  const Bytes seed = from_hex(kSeedHex);
  return relay::SecretKey::from_seed(std::span<const std::uint8_t, 32>(seed.data(), 32));
}

pkarr::SignedPacket sign(const std::vector<pkarr::Record>& records,
                         pkarr::NameCompression c = pkarr::NameCompression::Compressed) {
  auto r = pkarr::SignedPacket::sign_records(vector_secret(), 1700000000000000, records, c);
  EXPECT_TRUE(std::holds_alternative<pkarr::SignedPacket>(r));
  return std::get<pkarr::SignedPacket>(r);
}

// iroh-dns-server's dev configuration (§8).
ZoneOptions dev_options() {
  ZoneOptions o;
  o.origins = {"irohdns.example.", "."};
  o.soa = "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600";
  o.a = "127.0.0.1";
  o.ns = "ns1.irohdns.example.";
  return o;
}

// Query builder: name, type, optional EDNS (payload, version, DO), header tweaks.
struct Q {
  std::string name;
  std::uint16_t type = 16;
  std::uint16_t qclass = 1;
  std::optional<std::uint16_t> edns_payload = std::nullopt;
  std::uint8_t edns_version = 0;
  bool edns_do = false;
  std::uint16_t id = 0x1234;
  bool rd = true;
  bool cd = false;
  std::uint8_t opcode = 0;
};

Bytes make(const Q& q) {
  JsonQuery jq;
  jq.name = q.name;
  jq.type = q.type;
  jq.rd = q.rd;
  jq.cd = q.cd;
  auto wire = make_query(jq);
  EXPECT_TRUE(wire.has_value()) << q.name;
  Bytes b = wire.value_or(Bytes(12, 0));
  b[0] = static_cast<std::uint8_t>(q.id >> 8);
  b[1] = static_cast<std::uint8_t>(q.id);
  b[2] = static_cast<std::uint8_t>((b[2] & ~0x78) | (q.opcode << 3));
  b[b.size() - 2] = static_cast<std::uint8_t>(q.qclass >> 8);
  b[b.size() - 1] = static_cast<std::uint8_t>(q.qclass);
  if (q.edns_payload) {
    const std::uint16_t p = *q.edns_payload;
    const Bytes opt = {0,
                       0,
                       41,
                       static_cast<std::uint8_t>(p >> 8),
                       static_cast<std::uint8_t>(p),
                       0,
                       q.edns_version,
                       static_cast<std::uint8_t>(q.edns_do ? 0x80 : 0),
                       0,
                       0,
                       0};
    b.insert(b.end(), opt.begin(), opt.end());
    b[11] = 1;  // ARCOUNT
  }
  return b;
}

std::uint16_t u16(const Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]);
}

struct Reply {
  Answer answer;
  Bytes wire;
  std::uint16_t id() const { return u16(wire, 0); }
  bool qr() const { return wire[2] & 0x80; }
  int opcode() const { return (wire[2] >> 3) & 15; }
  bool aa() const { return wire[2] & 0x04; }
  bool tc() const { return wire[2] & 0x02; }
  bool rd() const { return wire[2] & 0x01; }
  bool ra() const { return wire[3] & 0x80; }
  bool ad() const { return wire[3] & 0x20; }
  bool cd() const { return wire[3] & 0x10; }
  int rcode() const { return wire[3] & 15; }
  std::uint16_t qd() const { return u16(wire, 4); }
  std::uint16_t an() const { return u16(wire, 6); }
  std::uint16_t ns() const { return u16(wire, 8); }
  std::uint16_t ar() const { return u16(wire, 10); }
  ResponseView view() const {
    auto v = view_response(wire);
    EXPECT_TRUE(v.has_value());
    return v.value_or(ResponseView{});
  }
};

class DnsResolverTest : public ::testing::Test {
 protected:
  Resolver resolver{dev_options()};
  std::map<std::string, std::shared_ptr<const PkarrZone>> zones;
  bool store_fails = false;
  int lookups = 0;

  void store(const pkarr::SignedPacket& p) {
    zones[pkarr::key_to_z32(p.public_key())] = PkarrZone::from_packet(p);
  }

  ZoneLookup lookup() {
    return [this](const pkarr::PublicKey& key) {
      ++lookups;
      if (store_fails) return ZoneLookupResult{ZoneStatus::Error, nullptr};
      auto it = zones.find(pkarr::key_to_z32(key));
      if (it == zones.end()) return ZoneLookupResult{};
      return ZoneLookupResult{ZoneStatus::Found, it->second};
    };
  }

  Reply ask(const Bytes& query, Transport t = Transport::Udp, std::size_t buffer = 65535) {
    Reply r;
    r.wire.resize(buffer);
    r.answer = resolver.resolve(query, t, lookup(), r.wire);
    r.wire.resize(r.answer.size);
    return r;
  }
  Reply ask(const Q& q, Transport t = Transport::Udp) { return ask(make(q), t); }

  static std::string iroh_name(std::string_view origin) {
    return "_iroh." + std::string(kZ32) + "." + std::string(origin);
  }
};

// §12 step 3: query D -> NOERROR, AA, RD copied, RA=0, the two TXT RRs, nothing else.
TEST_F(DnsResolverTest, Step3VectorAAnswersQueryD) {
  store(packet_from_payload(kPayloadA));
  Reply r = ask(from_hex(kQueryD));
  EXPECT_EQ(r.answer.outcome, Outcome::Success);
  EXPECT_EQ(r.id(), 0);
  EXPECT_TRUE(r.qr());
  EXPECT_TRUE(r.aa());
  EXPECT_TRUE(r.rd());
  EXPECT_FALSE(r.ra());
  EXPECT_FALSE(r.ad());
  EXPECT_FALSE(r.tc());
  EXPECT_EQ(r.rcode(), 0);
  EXPECT_EQ(r.qd(), 1);
  EXPECT_EQ(r.an(), 2);
  EXPECT_EQ(r.ns(), 0);
  EXPECT_EQ(r.ar(), 0);
  // The question is echoed byte for byte.
  const Bytes d = from_hex(kQueryD);
  EXPECT_TRUE(std::equal(d.begin() + 12, d.end(), r.wire.begin() + 12));
  ResponseView v = r.view();
  ASSERT_EQ(v.answers.size(), 2u);
  EXPECT_EQ(v.answers[0].name, iroh_name("irohdns.example."));
  EXPECT_EQ(v.answers[0].type, 16);
  EXPECT_EQ(v.answers[0].ttl, 30u);
  EXPECT_EQ(v.answers[0].data, kRelay);
  EXPECT_EQ(v.answers[1].name, iroh_name("irohdns.example."));
  EXPECT_EQ(v.answers[1].data, kAddr);
  EXPECT_EQ(r.answer.min_ttl, 30u);
  EXPECT_EQ(lookups, 1);
}

// Step 4 with the RFC 8020 improvement: the name exists with another type -> NODATA + SOA.
TEST_F(DnsResolverTest, Step4OtherTypeIsNodataWithOriginSoa) {
  store(packet_from_payload(kPayloadA));
  Reply r = ask(Q{.name = iroh_name("irohdns.example."), .type = 1});
  EXPECT_EQ(r.answer.outcome, Outcome::NotFound);
  EXPECT_EQ(r.rcode(), 0);
  EXPECT_TRUE(r.aa());
  EXPECT_EQ(r.an(), 0);
  ASSERT_EQ(r.ns(), 1);
  // SOA owner = the matched origin, negative TTL = min(1209600, minimum 3600).
  const Bytes& wire = r.wire;
  const std::size_t question_end = make(Q{.name = iroh_name("irohdns.example."), .type = 1}).size();
  // The authority RR's owner is compressed to the "irohdns.example." suffix of the question.
  EXPECT_EQ(wire[question_end], 0xc0);
  const std::size_t ttl_at = question_end + 2 + 4;
  EXPECT_EQ(u16(wire, question_end + 2), 6);  // SOA
  EXPECT_EQ((std::uint32_t(u16(wire, ttl_at)) << 16) | u16(wire, ttl_at + 2), 3600u);
}

// Step 5: origin "." serves `_iroh.<z32>.`.
TEST_F(DnsResolverTest, Step5RootOrigin) {
  store(packet_from_payload(kPayloadA));
  Reply r = ask(Q{.name = iroh_name("")});
  EXPECT_EQ(r.rcode(), 0);
  ResponseView v = r.view();
  ASSERT_EQ(v.answers.size(), 2u);
  EXPECT_EQ(v.answers[0].name, iroh_name(""));
  EXPECT_EQ(v.answers[0].data, kRelay);
  EXPECT_EQ(v.answers[1].data, kAddr);
}

// Step 8: the empty packet C replaces A -> NXDOMAIN with the SOA.
TEST_F(DnsResolverTest, Step8EmptyPacketIsNxdomain) {
  store(packet_from_payload(kPayloadC));
  Reply r = ask(from_hex(kQueryD));
  EXPECT_EQ(r.answer.outcome, Outcome::NotFound);
  EXPECT_EQ(r.rcode(), 3);
  EXPECT_TRUE(r.aa());
  EXPECT_EQ(r.an(), 0);
  EXPECT_EQ(r.ns(), 1);
}

TEST_F(DnsResolverTest, VectorBUncompressedAnswersTheSame) {
  store(sign({pkarr::Record::make_txt("_iroh." + std::string(kZ32), 30, {std::string(kRelay)}),
              pkarr::Record::make_txt("_iroh." + std::string(kZ32), 30, {std::string(kAddr)})},
             pkarr::NameCompression::Uncompressed));
  ResponseView v = ask(from_hex(kQueryD)).view();
  ASSERT_EQ(v.answers.size(), 2u);
  EXPECT_EQ(v.answers[0].data, kRelay);
  EXPECT_EQ(v.answers[1].data, kAddr);
}

TEST_F(DnsResolverTest, UnknownKeyIsNxdomain) {
  Reply r = ask(from_hex(kQueryD));
  EXPECT_EQ(r.rcode(), 3);
  EXPECT_TRUE(r.aa());
  EXPECT_EQ(r.ns(), 1);
}

// RFC 8020: `<z32>.<origin>` is an empty non-terminal when only `_iroh.<z32>` exists.
TEST_F(DnsResolverTest, EmptyNonTerminalIsNodata) {
  store(packet_from_payload(kPayloadA));
  for (std::uint16_t type : {1, 2, 16, 255}) {
    Reply r = ask(Q{.name = std::string(kZ32) + ".irohdns.example.", .type = type});
    EXPECT_EQ(r.rcode(), 0) << type;
    EXPECT_EQ(r.an(), 0) << type;
    EXPECT_EQ(r.ns(), 1) << type;
  }
  Reply below = ask(Q{.name = "x." + iroh_name("irohdns.example.")});
  EXPECT_EQ(below.rcode(), 3);
  Reply sibling = ask(Q{.name = "_other." + std::string(kZ32) + ".irohdns.example."});
  EXPECT_EQ(sibling.rcode(), 3);
}

// 0x20 case randomisation: question echoed as sent, answer owners lower-case.
TEST_F(DnsResolverTest, MixedCaseQuestionEchoedAnswersLowerCase) {
  store(packet_from_payload(kPayloadA));
  std::string upper = iroh_name("IrohDns.Example.");
  for (std::size_t i = 0; i < upper.size(); i += 3) upper[i] = static_cast<char>(toupper(upper[i]));
  Reply r = ask(Q{.name = upper});
  EXPECT_EQ(r.rcode(), 0);
  ResponseView v = r.view();
  EXPECT_EQ(v.question_name, upper);
  ASSERT_EQ(v.answers.size(), 2u);
  EXPECT_EQ(v.answers[0].name, iroh_name("irohdns.example."));
  EXPECT_EQ(v.answers[1].name, iroh_name("irohdns.example."));
}

TEST_F(DnsResolverTest, PublishedTtlsAndOrderKeptOtherTypes) {
  pkarr::Record a;
  a.name = "www." + std::string(kZ32);
  a.type = 1;
  a.ttl = 77;
  a.rdata = {10, 0, 0, 1};
  pkarr::Record a2 = a;
  a2.ttl = 5;
  a2.rdata = {10, 0, 0, 0};
  store(sign({a, a2, pkarr::Record::make_txt("_iroh." + std::string(kZ32), 30, {"relay=x"})}));
  Reply r = ask(Q{.name = "www." + std::string(kZ32) + ".irohdns.example.", .type = 1});
  ResponseView v = r.view();
  ASSERT_EQ(v.answers.size(), 2u);
  EXPECT_EQ(v.answers[0].data, "10.0.0.1");
  EXPECT_EQ(v.answers[0].ttl, 77u);
  EXPECT_EQ(v.answers[1].data, "10.0.0.0");
  EXPECT_EQ(v.answers[1].ttl, 5u);
  EXPECT_EQ(r.answer.min_ttl, 5u);
}

// ---- static records (§5.2) ----------------------------------------------------------------------

TEST_F(DnsResolverTest, ApexSoaWithNsInAuthority) {
  Reply r = ask(Q{.name = "irohdns.example.", .type = 6});
  EXPECT_EQ(r.rcode(), 0);
  EXPECT_TRUE(r.aa());
  ResponseView v = r.view();
  ASSERT_EQ(v.answers.size(), 1u);
  EXPECT_EQ(v.answers[0].name, "irohdns.example.");
  EXPECT_EQ(v.answers[0].ttl, kSoaTtl);
  EXPECT_EQ(v.answers[0].data,
            "dns1.irohdns.example. hostmaster.irohdns.example. 0 10800 3600 604800 3600");
  EXPECT_EQ(r.ns(), 1);
  Reply root = ask(Q{.name = ".", .type = 6});
  ASSERT_EQ(root.view().answers.size(), 1u);
  EXPECT_EQ(root.view().answers[0].name, ".");
}

TEST_F(DnsResolverTest, ApexStaticRecords) {
  ResponseView a = ask(Q{.name = "irohdns.example.", .type = 1}).view();
  ASSERT_EQ(a.answers.size(), 1u);
  EXPECT_EQ(a.answers[0].data, "127.0.0.1");
  EXPECT_EQ(a.answers[0].ttl, kAddressTtl);
  ResponseView ns = ask(Q{.name = "irohdns.example.", .type = 2}).view();
  ASSERT_EQ(ns.answers.size(), 1u);
  EXPECT_EQ(ns.answers[0].data, "ns1.irohdns.example.");
  EXPECT_EQ(ns.answers[0].ttl, kNsTtl);
  // No AAAA configured: NODATA.
  Reply aaaa = ask(Q{.name = "irohdns.example.", .type = 28});
  EXPECT_EQ(aaaa.rcode(), 0);
  EXPECT_EQ(aaaa.an(), 0);
  EXPECT_EQ(aaaa.ns(), 1);
  // "example." is an ancestor of the origin irohdns.example. inside zone ".": NODATA.
  Reply ent = ask(Q{.name = "example.", .type = 1});
  EXPECT_EQ(ent.rcode(), 0);
  EXPECT_EQ(ent.an(), 0);
  // No glue for the NS host, nothing else under the origin.
  EXPECT_EQ(ask(Q{.name = "ns1.irohdns.example.", .type = 1}).rcode(), 3);
  EXPECT_EQ(ask(Q{.name = "foo.irohdns.example.", .type = 16}).rcode(), 3);
  EXPECT_EQ(lookups, 0);
}

TEST(DnsResolverOptions, NamesOutsideAllOriginsAreRefused) {
  ZoneOptions o = dev_options();
  o.origins = {"IrohDns.Example"};  // lower-cased, trailing dot implied
  Resolver resolver(o);
  Bytes out(512);
  auto query = make_query(JsonQuery{.name = "foo.com.", .type = 1});
  Answer a = resolver.resolve(*query, Transport::Udp, nullptr, out);
  EXPECT_EQ(a.outcome, Outcome::Error);
  EXPECT_EQ(a.rcode, 5);
  EXPECT_EQ(out[2] & 0x04, 0);  // AA=0
  query = make_query(JsonQuery{.name = "irohdns.example.", .type = 1});
  a = resolver.resolve(*query, Transport::Udp, nullptr, out);
  EXPECT_EQ(a.outcome, Outcome::Success);
}

TEST(DnsResolverOptions, InvalidOptionsNameTheKey) {
  auto error_of = [](ZoneOptions o) -> std::string {
    try {
      Resolver r(o);
    } catch (const ZoneOptionsError& e) {
      return e.what();
    }
    return "";
  };
  ZoneOptions o = dev_options();
  o.soa = "a. b. 1 2 3";
  EXPECT_TRUE(error_of(o).starts_with("dns.default_soa:"));
  o = dev_options();
  o.soa = "a. b. 1 2 3 4 x";
  EXPECT_TRUE(error_of(o).starts_with("dns.default_soa:"));
  o = dev_options();
  o.a = "1.2.3";
  EXPECT_TRUE(error_of(o).starts_with("dns.rr_a:"));
  o = dev_options();
  o.aaaa = "127.0.0.1";
  EXPECT_TRUE(error_of(o).starts_with("dns.rr_aaaa:"));
  o = dev_options();
  o.origins = {};
  EXPECT_TRUE(error_of(o).starts_with("dns.origins:"));
  o = dev_options();
  o.origins = {"a..b"};
  EXPECT_TRUE(error_of(o).starts_with("dns.origins:"));
}

// ---- rcodes -------------------------------------------------------------------------------------

TEST_F(DnsResolverTest, ZoneTransfersRefused) {
  for (std::uint16_t type : {251, 252}) {
    Reply r = ask(Q{.name = "irohdns.example.", .type = type}, Transport::Tcp);
    EXPECT_EQ(r.rcode(), 5) << type;
    EXPECT_FALSE(r.aa());
    EXPECT_EQ(r.answer.outcome, Outcome::Error);
  }
}

TEST_F(DnsResolverTest, NonInClassRefused) {
  Reply r = ask(Q{.name = "version.bind.", .type = 16, .qclass = 3});
  EXPECT_EQ(r.rcode(), 5);
  EXPECT_EQ(r.qd(), 1);
}

TEST_F(DnsResolverTest, OtherOpcodesNotImplemented) {
  for (std::uint8_t opcode : {1, 2, 4, 5}) {
    Reply r = ask(Q{.name = "irohdns.example.", .type = 6, .opcode = opcode});
    EXPECT_EQ(r.rcode(), 4) << int(opcode);
    EXPECT_EQ(r.opcode(), opcode);
    EXPECT_FALSE(r.aa());
  }
}

TEST_F(DnsResolverTest, StoreErrorIsRefusedAuthoritative) {
  store_fails = true;
  Reply r = ask(from_hex(kQueryD));
  EXPECT_EQ(r.rcode(), 5);
  EXPECT_TRUE(r.aa());
  EXPECT_EQ(r.answer.outcome, Outcome::Error);
}

// ---- malformed queries --------------------------------------------------------------------------

TEST_F(DnsResolverTest, ShortAndResponseMessagesDropped) {
  EXPECT_EQ(ask(Bytes{}).answer.outcome, Outcome::Dropped);
  EXPECT_EQ(ask(Bytes(11, 0)).answer.outcome, Outcome::Dropped);
  Bytes response = from_hex(kQueryD);
  response[2] |= 0x80;
  Reply r = ask(response);
  EXPECT_EQ(r.answer.outcome, Outcome::Dropped);
  EXPECT_EQ(r.answer.size, 0u);
}

TEST_F(DnsResolverTest, MalformedIsFormerrWithoutQuestion) {
  const Bytes d = from_hex(kQueryD);
  std::vector<Bytes> bad;
  Bytes no_question = d;
  no_question[5] = 0;  // QDCOUNT 0 but a question follows
  bad.push_back(no_question);
  Bytes two = d;
  two[5] = 2;  // QDCOUNT 2, one question
  bad.push_back(two);
  Bytes cut(d.begin(), d.end() - 3);  // QTYPE/QCLASS cut
  bad.push_back(cut);
  Bytes header_only(d.begin(), d.begin() + 12);  // QDCOUNT 1, nothing follows
  bad.push_back(header_only);
  Bytes trailing = d;
  trailing.push_back(0);
  bad.push_back(trailing);
  Bytes loop = d;
  loop[12] = 0xc0;  // compression pointer in the question
  loop[13] = 12;
  bad.push_back(loop);
  Bytes zero_question(d.begin(), d.begin() + 12);  // QDCOUNT 0, empty message
  zero_question[5] = 0;
  bad.push_back(zero_question);
  for (std::size_t i = 0; i < bad.size(); ++i) {
    bad[i][0] = 0xab;
    bad[i][1] = 0xcd;
    Reply r = ask(bad[i]);
    EXPECT_EQ(r.answer.outcome, Outcome::Malformed) << i;
    EXPECT_EQ(r.rcode(), 1) << i;
    EXPECT_EQ(r.id(), 0xabcd) << i;
    EXPECT_TRUE(r.qr()) << i;
    EXPECT_FALSE(r.aa()) << i;
    EXPECT_EQ(r.qd(), 0) << i;
    EXPECT_EQ(r.wire.size(), 12u) << i;
  }
}

// ---- EDNS(0) and truncation (§5.4) --------------------------------------------------------------

TEST_F(DnsResolverTest, EdnsAnsweredWithOpt) {
  store(packet_from_payload(kPayloadA));
  Reply r = ask(Q{.name = iroh_name("irohdns.example."), .edns_payload = 1232});
  EXPECT_EQ(r.rcode(), 0);
  EXPECT_EQ(r.an(), 2);
  ASSERT_EQ(r.ar(), 1);
  // OPT is the last 11 bytes: root, type 41, payload, ext-rcode 0, version 0, flags, rdlen 0.
  const Bytes tail(r.wire.end() - 11, r.wire.end());
  EXPECT_EQ(tail, (Bytes{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}));
  Reply with_do =
      ask(Q{.name = "irohdns.example.", .type = 6, .edns_payload = 100, .edns_do = true});
  const Bytes tail_do(with_do.wire.end() - 11, with_do.wire.end());
  // Payload max(100, 512); DO copied.
  EXPECT_EQ(tail_do, (Bytes{0, 0, 41, 0x02, 0x00, 0, 0, 0x80, 0, 0, 0}));
}

TEST_F(DnsResolverTest, EdnsVersionAboveZeroIsBadvers) {
  Reply r = ask(Q{.name = "irohdns.example.", .type = 6, .edns_payload = 1232, .edns_version = 1});
  EXPECT_EQ(r.answer.rcode, 16);
  EXPECT_EQ(r.answer.outcome, Outcome::Error);
  EXPECT_EQ(r.rcode(), 0);  // low bits; the high bits are in the OPT RR
  EXPECT_EQ(r.an(), 0);
  ASSERT_EQ(r.ar(), 1);
  const Bytes tail(r.wire.end() - 11, r.wire.end());
  EXPECT_EQ(tail, (Bytes{0, 0, 41, 0x04, 0xd0, 1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(r.view().rcode, 16);
}

class DnsTruncationTest : public DnsResolverTest {
 protected:
  void SetUp() override {
    // Ten 80-byte TXT records: ~1 KB of answers (the DNS message stays under 1000 bytes).
    std::vector<pkarr::Record> records;
    for (int i = 0; i < 10; ++i) {
      records.push_back(pkarr::Record::make_txt("_iroh." + std::string(kZ32), 30,
                                                {"addr=" + std::string(72, 'a' + i) + ":1"}));
    }
    store(sign(records));
  }
};

TEST_F(DnsTruncationTest, UdpWithoutEdnsCutAt512) {
  Reply r = ask(Q{.name = iroh_name("irohdns.example.")});
  EXPECT_TRUE(r.tc());
  EXPECT_TRUE(r.answer.truncated);
  EXPECT_LE(r.wire.size(), 512u);
  EXPECT_GT(r.an(), 0);
  EXPECT_LT(r.an(), 10);
  // Cut at the last whole record: the message parses and holds exactly AN records.
  EXPECT_EQ(r.view().answers.size(), r.an());
  EXPECT_EQ(r.answer.outcome, Outcome::Success);
}

TEST_F(DnsTruncationTest, SmallEdnsTruncatesWithOpt) {
  Reply r = ask(Q{.name = iroh_name("irohdns.example."), .edns_payload = 600});
  EXPECT_TRUE(r.tc());
  EXPECT_LE(r.wire.size(), 600u);
  EXPECT_EQ(r.ar(), 1);
  EXPECT_EQ(r.view().answers.size(), r.an());
}

TEST_F(DnsTruncationTest, LargeEdnsTcpAndHttpsNeverTruncate) {
  for (Transport t : {Transport::Udp, Transport::Tcp, Transport::Https}) {
    const bool udp = t == Transport::Udp;
    Reply r = ask(Q{.name = iroh_name("irohdns.example."),
                    .edns_payload = udp ? std::optional<std::uint16_t>(4096) : std::nullopt},
                  t);
    EXPECT_FALSE(r.tc());
    EXPECT_EQ(r.an(), 10);
    EXPECT_GT(r.wire.size(), 512u);
  }
}

// Mixed case: still cut at whole records.
TEST_F(DnsTruncationTest, MixedCaseTruncation) {
  Reply r = ask(Q{.name = "_IROH." + std::string(kZ32) + ".irohdns.example."});
  EXPECT_TRUE(r.tc());
  EXPECT_LE(r.wire.size(), 512u);
  EXPECT_EQ(r.view().answers.size(), r.an());
}

// Issue 19 item 5: a mixed-case (0x20) query name must not turn name compression off. The owners
// stay lower-case (§5.3), so the first is written once in full and the others point to it: the
// answer is at most one owner name longer than for the lower-case query.
TEST_F(DnsTruncationTest, MixedCaseQueryIsStillCompressed) {
  const std::string lower = iroh_name("irohdns.example.");
  const std::string mixed = "_IrOh." + std::string(kZ32) + ".IROHdns.Example.";
  Reply l = ask(Q{.name = lower}, Transport::Tcp);
  Reply m = ask(Q{.name = mixed}, Transport::Tcp);
  ASSERT_EQ(l.an(), 10);
  ASSERT_EQ(m.an(), 10);
  const std::size_t owner_size = lower.size() + 1;  // wire form of the FQDN
  // (Uncompressed, each of the 10 owners would add owner_size - 2 bytes.)
  EXPECT_LE(m.wire.size(), l.wire.size() + owner_size);
  ResponseView v = m.view();
  ASSERT_EQ(v.answers.size(), 10u);
  for (const auto& a : v.answers) EXPECT_EQ(a.name, lower);
  EXPECT_EQ(v.question_name, mixed);  // echoed as asked
}

// The negative answer's SOA owner is the origin, lower-case, even when the question spells it in
// another case (it is then written in full rather than pointing into the question).
TEST_F(DnsResolverTest, MixedCaseNegativeAnswerKeepsLowerCaseSoaOwner) {
  Reply r = ask(Q{.name = "NoSuchName.IrohDns.Example.", .type = 1});
  EXPECT_EQ(r.rcode(), 3);
  ASSERT_EQ(r.ns(), 1);
  auto v = view_response(r.wire);
  ASSERT_TRUE(v);
  // view_response only decodes answers: check the owner bytes right after the question.
  const std::size_t at = make(Q{.name = "NoSuchName.IrohDns.Example.", .type = 1}).size();
  const Bytes origin = {7,   'i', 'r', 'o', 'h', 'd', 'n', 's', 7,
                        'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};
  ASSERT_GE(r.wire.size(), at + origin.size());
  EXPECT_TRUE(std::equal(origin.begin(), origin.end(), r.wire.begin() + at));
  // The lower-case question gets a pointer into the question instead.
  Reply l = ask(Q{.name = "nosuchname.irohdns.example.", .type = 1});
  EXPECT_EQ(l.wire[at], 0xc0);
  // The record written in full also keeps its RDATA names (the SOA's mname and rname) whole:
  // a few bytes, once per answer.
  EXPECT_LE(r.wire.size(), l.wire.size() + origin.size() + 16);
}

// ---- DoH JSON helpers ---------------------------------------------------------------------------

TEST(DnsJsonHelpers, MakeQueryMatchesVectorD) {
  auto q =
      make_query(JsonQuery{.name = "_iroh." + std::string(kZ32) + ".irohdns.example.", .type = 16});
  ASSERT_TRUE(q);
  EXPECT_EQ(*q, from_hex(kQueryD));
  auto relative =
      make_query(JsonQuery{.name = "_iroh." + std::string(kZ32) + ".irohdns.example", .type = 16});
  EXPECT_EQ(relative, q);
  EXPECT_FALSE(make_query(JsonQuery{.name = ""}));
  EXPECT_FALSE(make_query(JsonQuery{.name = std::string(64, 'a') + ".com."}));
}

TEST(DnsJsonHelpers, ParseRrtype) {
  EXPECT_EQ(parse_rrtype("TXT"), 16);
  EXPECT_EQ(parse_rrtype("txt"), 16);
  EXPECT_EQ(parse_rrtype("aaaa"), 28);
  EXPECT_EQ(parse_rrtype("16"), 16);
  EXPECT_EQ(parse_rrtype("65535"), 65535);
  EXPECT_FALSE(parse_rrtype("65536"));
  EXPECT_FALSE(parse_rrtype("nope"));
  EXPECT_FALSE(parse_rrtype(""));
}

}  // namespace
}  // namespace iroh::dns
