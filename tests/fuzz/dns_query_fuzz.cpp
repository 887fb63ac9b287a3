// libFuzzer target: the authoritative DNS engine (dns/, iroh/dns.hpp) on untrusted query
// messages, over every transport and with small and large output buffers, against zones of
// stored packets. Nothing may crash; every answered query must give a response that parses, fits
// the transport's limit and echoes the query ID.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <vector>

#include "iroh/dns.hpp"

using namespace iroh;

namespace {

pkarr::SignedPacket sign_zone(std::uint8_t seed_byte, std::size_t records) {
  std::array<std::uint8_t, 32> seed{};
  seed.fill(seed_byte);
  const relay::SecretKey key = relay::SecretKey::from_seed(seed);
  const std::string z32 = pkarr::key_to_z32(key.public_key());
  std::vector<pkarr::Record> answers;
  for (std::size_t i = 0; i < records; ++i) {
    answers.push_back(pkarr::Record::make_txt(
        "_iroh." + z32, 30, {"addr=10.0.0." + std::to_string(i) + ":1" + std::string(60, 'x')}));
  }
  pkarr::Record a;
  a.name = "www." + z32;
  a.type = pkarr::kTypeA;
  a.ttl = 60;
  a.rdata = {10, 0, 0, 1};
  answers.push_back(a);
  auto packet = pkarr::SignedPacket::sign_records(key, 1700000000000000, answers);
  return std::get<pkarr::SignedPacket>(packet);
}

struct Fixture {
  dns::Resolver resolver{dns::ZoneOptions{
      .origins = {"irohdns.example.", "."},
      .soa = "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600",
      .a = "127.0.0.1",
      .aaaa = "::1",
      .ns = "ns1.irohdns.example."}};
  std::map<pkarr::PublicKey, std::shared_ptr<const dns::PkarrZone>> zones;
  dns::ZoneLookup lookup;

  Fixture() {
    for (auto [seed, count] : {std::pair{1, 2}, std::pair{2, 10}}) {
      auto packet = sign_zone(static_cast<std::uint8_t>(seed), static_cast<std::size_t>(count));
      zones[packet.public_key()] = dns::PkarrZone::from_packet(packet);
    }
    lookup = [this](const pkarr::PublicKey& key) {
      auto it = zones.find(key);
      if (it == zones.end()) return dns::ZoneLookupResult{};
      return dns::ZoneLookupResult{dns::ZoneStatus::Found, it->second};
    };
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  static std::vector<std::uint8_t> out(dns::kMaxMessageSize);
  const dns::ByteSpan query(data, size);
  for (dns::Transport t : {dns::Transport::Udp, dns::Transport::Tcp, dns::Transport::Https}) {
    for (std::size_t buffer : {std::size_t{512}, dns::kMaxMessageSize}) {
      const dns::Answer a =
          fixture.resolver.resolve(query, t, fixture.lookup, std::span(out.data(), buffer));
      if (a.outcome == dns::Outcome::Dropped) {
        if (a.size != 0) std::abort();
        continue;
      }
      if (a.size < dns::kHeaderSize || a.size > buffer) std::abort();
      if (out[0] != data[0] || out[1] != data[1]) std::abort();
      if (!dns::view_response(dns::ByteSpan(out.data(), a.size))) std::abort();
    }
  }
  return 0;
}
