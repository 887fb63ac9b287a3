// client-lib without I/O: identity files, sealed datagrams, the DNS query/response handling of
// lookups, pkarr timestamps.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "iroh/identity.hpp"
#include "iroh/lookup.hpp"
#include "iroh/sealed.hpp"

namespace {

using namespace iroh::client;
namespace relay = iroh::relay;
namespace pkarr = iroh::pkarr;

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("iroh-client-unit-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::filesystem::path operator/(const char* name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

relay::SecretKey seed_key(std::uint8_t fill) {
  std::array<std::uint8_t, 32> seed{};
  seed.fill(fill);
  return relay::SecretKey::from_seed(seed);
}

TEST(Identity, EncodesAndDecodes) {
  auto key = seed_key(0x2a);
  auto text = encode_secret_key(key);
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += "2a";
  EXPECT_EQ(text, "iroh-secret-key-v1\n" + hex + "\n");
  auto back = decode_secret_key(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->seed, key.seed);
  // Comments, blank lines, CRLF and upper-case hex are fine.
  auto relaxed = decode_secret_key("# mine\r\n\r\niroh-secret-key-v1\r\n" + std::string(64, 'A'));
  ASSERT_TRUE(relaxed);
  EXPECT_EQ(relaxed->seed[0], 0xaa);
  EXPECT_FALSE(decode_secret_key(""));
  EXPECT_FALSE(decode_secret_key(std::string(64, 'a')));                           // no tag
  EXPECT_FALSE(decode_secret_key("iroh-secret-key-v2\n" + std::string(64, 'a')));  // version
  EXPECT_FALSE(decode_secret_key("iroh-secret-key-v1\n" + std::string(63, 'a')));  // length
  EXPECT_FALSE(decode_secret_key("iroh-secret-key-v1\n" + std::string(63, 'a') + "g"));
  EXPECT_FALSE(decode_secret_key("iroh-secret-key-v1\n" + std::string(64, 'a') + "\nextra"));
}

TEST(Identity, SavesWithMode0600AndLoads) {
  TempDir dir;
  auto path = dir / "key";
  auto key = relay::SecretKey::generate();
  save_secret_key(path, key);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(load_secret_key(path).seed, key.seed);
  // No silent overwrite.
  EXPECT_THROW(save_secret_key(path, relay::SecretKey::generate()), IdentityError);
  auto other = relay::SecretKey::generate();
  save_secret_key(path, other, true);
  EXPECT_EQ(load_secret_key(path).seed, other.seed);
}

TEST(Identity, RefusesOpenPermissionsAndGarbage) {
  TempDir dir;
  auto path = dir / "key";
  save_secret_key(path, relay::SecretKey::generate());
  ::chmod(path.c_str(), 0644);
  try {
    load_secret_key(path);
    ADD_FAILURE() << "loaded a world-readable key";
  } catch (const IdentityError& e) {
    EXPECT_NE(std::string(e.what()).find("0644"), std::string::npos) << e.what();
  }
  auto garbage = dir / "garbage";
  std::ofstream(garbage) << "hello\n";
  ::chmod(garbage.c_str(), 0600);
  EXPECT_THROW(load_secret_key(garbage), IdentityError);
  EXPECT_THROW(load_secret_key(dir / "missing"), IdentityError);
}

TEST(Sealed, RoundTripAndFormat) {
  auto alice = seed_key(1);
  auto bob = seed_key(2);
  relay::Bytes plain{'h', 'e', 'l', 'l', 'o'};
  auto sealed = seal(alice, bob.public_key(), plain);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->size(), plain.size() + kSealedOverhead);
  EXPECT_EQ((*sealed)[0], kSealedVersion);
  auto opened = open_sealed(bob, alice.public_key(), *sealed);
  ASSERT_TRUE(std::holds_alternative<relay::Bytes>(opened));
  EXPECT_EQ(std::get<relay::Bytes>(opened), plain);
  // Fresh nonce every time.
  EXPECT_NE(*seal(alice, bob.public_key(), plain), *sealed);
  // The plaintext does not appear in the sealed bytes.
  EXPECT_EQ(std::search(sealed->begin(), sealed->end(), plain.begin(), plain.end()), sealed->end());
  // Empty plaintext is allowed (the sealed datagram is not empty).
  auto empty = seal(alice, bob.public_key(), {});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(std::get<relay::Bytes>(open_sealed(bob, alice.public_key(), *empty)).empty());
}

TEST(Sealed, RejectsForgeriesAndBadInput) {
  auto alice = seed_key(1);
  auto bob = seed_key(2);
  auto mallory = seed_key(3);
  relay::Bytes plain(100, 7);
  auto sealed = *seal(alice, bob.public_key(), plain);
  // Wrong claimed sender (a relay rewriting src), wrong recipient, altered bytes.
  EXPECT_EQ(std::get<OpenError>(open_sealed(bob, mallory.public_key(), sealed)), OpenError::Forged);
  EXPECT_EQ(std::get<OpenError>(open_sealed(mallory, alice.public_key(), sealed)),
            OpenError::Forged);
  for (std::size_t i : {std::size_t{1}, std::size_t{30}, sealed.size() - 1}) {
    auto altered = sealed;
    altered[i] ^= 1;
    EXPECT_EQ(std::get<OpenError>(open_sealed(bob, alice.public_key(), altered)), OpenError::Forged)
        << "byte " << i;
  }
  auto other_version = sealed;
  other_version[0] = 2;
  EXPECT_EQ(std::get<OpenError>(open_sealed(bob, alice.public_key(), other_version)),
            OpenError::UnsupportedVersion);
  EXPECT_EQ(
      std::get<OpenError>(open_sealed(bob, alice.public_key(), relay::ByteSpan(sealed).first(40))),
      OpenError::Truncated);
  // Too large for one datagram once sealed.
  EXPECT_FALSE(seal(alice, bob.public_key(), relay::Bytes(kMaxSealedPlaintext + 1)));
  auto largest = seal(alice, bob.public_key(), relay::Bytes(kMaxSealedPlaintext));
  ASSERT_TRUE(largest);
  EXPECT_EQ(largest->size(), relay::kMaxDatagramContents);
}

TEST(Sealed, ChannelInteroperatesWithFreeFunctions) {
  auto alice = seed_key(1);
  auto bob = seed_key(2);
  SealedChannel a(alice, 2);
  SealedChannel b(bob, 2);
  relay::Bytes plain(1000, 9);
  for (int i = 0; i < 5; ++i) {  // more peers than the cache holds
    auto peer = seed_key(static_cast<std::uint8_t>(10 + i));
    EXPECT_TRUE(a.seal(peer.public_key(), plain));
  }
  auto sealed = *a.seal(bob.public_key(), plain);
  EXPECT_EQ(std::get<relay::Bytes>(b.open(alice.public_key(), sealed)), plain);
  EXPECT_EQ(std::get<relay::Bytes>(open_sealed(bob, alice.public_key(), sealed)), plain);
  auto by_function = *seal(bob, alice.public_key(), plain);
  EXPECT_EQ(std::get<relay::Bytes>(a.open(bob.public_key(), by_function)), plain);
}

TEST(Lookup, DnsNameAndQuery) {
  auto key = seed_key(0x2a);
  auto z32 = pkarr::key_to_z32(key.public_key());
  EXPECT_EQ(iroh_dns_name(key.public_key(), "."), "_iroh." + z32 + ".");
  EXPECT_EQ(iroh_dns_name(key.public_key(), ""), "_iroh." + z32 + ".");
  EXPECT_EQ(iroh_dns_name(key.public_key(), "irohdns.example."),
            "_iroh." + z32 + ".irohdns.example.");
  EXPECT_EQ(iroh_dns_name(key.public_key(), "irohdns.example"),
            "_iroh." + z32 + ".irohdns.example.");

  // Vector D of address-lookup.md §12 (ID 0, RD=1, TXT, no EDNS).
  auto vector_key = relay::SecretKey::from_seed(
      std::array<std::uint8_t, 32>{0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
                                   0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
                                   0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60});
  auto query = build_txt_query(iroh_dns_name(vector_key.public_key(), "irohdns.example."), 0);
  std::string hex;
  for (auto b : query) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  EXPECT_EQ(hex,
            "000001000001000000000000055f69726f68343437706a6f79636e7372666d78696b6d39356a68313379"
            "38386538716e687a75356b756e676a707879657067743761386b7270790769726f68646e73076578616d"
            "706c650000100001");
  EXPECT_THROW(build_txt_query("bad..name", 1), LookupError);
}

// A response to `query` whose answer section holds `records`, flags NOERROR + AA (or `rcode`).
pkarr::Bytes make_response(const pkarr::Bytes& query, const std::vector<pkarr::Record>& records,
                           std::uint8_t rcode = 0) {
  auto answers = std::get<pkarr::Bytes>(pkarr::build_dns(records));
  pkarr::Bytes out(query.begin(), query.end());
  out[2] = 0x85;  // QR, AA, RD
  out[3] = rcode;
  out[7] = answers[7];  // ANCOUNT (low byte is enough here)
  out.insert(out.end(), answers.begin() + 12, answers.end());
  return out;
}

TEST(Lookup, ParsesTxtResponses) {
  auto key = seed_key(5);
  auto name = iroh_dns_name(key.public_key(), "irohdns.example.");
  auto query = build_txt_query(name, 0x1234);
  pkarr::EndpointInfo info;
  info.relay_urls = {"http://relay.example:3340/"};
  info.addrs = {"192.0.2.1:4433"};
  auto records = pkarr::endpoint_records(key.public_key(), info);
  for (auto& r : records) r.name = name;
  auto response = make_response(query, records);
  EXPECT_EQ(parse_txt_response(response, query), info);

  auto expect_kind = [&](const pkarr::Bytes& bytes, LookupError::Kind kind) {
    try {
      parse_txt_response(bytes, query);
      ADD_FAILURE() << "accepted";
    } catch (const LookupError& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
    }
  };
  expect_kind(make_response(query, {}, 3), LookupError::Kind::NotFound);  // NXDOMAIN
  expect_kind(make_response(query, {}), LookupError::Kind::NotFound);     // NODATA
  expect_kind(make_response(query, {}, 2), LookupError::Kind::DnsError);  // SERVFAIL
  auto other_id = response;
  other_id[1] ^= 1;
  expect_kind(other_id, LookupError::Kind::DnsError);
  auto not_response = response;
  not_response[2] &= 0x7f;
  expect_kind(not_response, LookupError::Kind::DnsError);
  auto other_name = response;
  other_name[20] ^= 0x01;
  expect_kind(other_name, LookupError::Kind::DnsError);
  // 0x20 case randomisation of the question is fine.
  auto mixed_case = response;
  mixed_case[14] = 'I';
  EXPECT_EQ(parse_txt_response(mixed_case, query), info);
  // A TXT string without '=' is not an endpoint record.
  auto bad = make_response(query, {pkarr::Record::make_txt(name, 30, {"garbage"})});
  expect_kind(bad, LookupError::Kind::BadRecord);
  expect_kind(pkarr::Bytes(5, 0), LookupError::Kind::DnsError);
}

TEST(Lookup, TimestampsStrictlyIncrease) {
  auto previous = next_pkarr_timestamp();
  for (int i = 0; i < 1000; ++i) {
    auto next = next_pkarr_timestamp();
    ASSERT_GT(next, previous);
    previous = next;
  }
  auto key = seed_key(7);
  pkarr::EndpointInfo info;
  info.relay_urls = {"https://relay.example./"};
  auto a = sign_endpoint_packet(key, info);
  auto b = sign_endpoint_packet(key, info);
  EXPECT_TRUE(b.more_recent_than(a));
  EXPECT_EQ(std::get<pkarr::EndpointInfo>(pkarr::endpoint_info(b)), info);
}

}  // namespace
