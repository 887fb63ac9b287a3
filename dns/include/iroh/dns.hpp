// The authoritative DNS engine of the address lookup service (spec address-lookup.md §5.3, §5.4):
// one query message in, one response message out, answered from the static records of the
// configured origins and from the zones of stored pkarr packets. Pure: no sockets, no store, no
// metrics; the caller passes a zone-lookup function. Wire format through libknot.
//
// Behaviour (iroh-dns-server's, with the RFC-correct improvements of §13):
//  * FORMERR (no question echoed) for unparsable messages and QDCOUNT != 1, NOTIMP for opcodes
//    other than QUERY, BADVERS for EDNS versions > 0, REFUSED for AXFR/IXFR, for classes other
//    than IN and for names outside every origin; these have AA=0.
//  * The first origin O (configured order) that is an ancestor-or-self of the query name picks
//    the zone. `<K>.<O>` with K a z32 public key is the key's pkarr zone: the RRset of the query
//    type at the query name, owner lower-cased, TTLs as published, packet order. The apex O holds
//    the static SOA/NS/A/AAAA records.
//  * Negative answers carry the SOA of the matched origin (TTL = min(SOA TTL, SOA minimum),
//    RFC 2308): NODATA (NOERROR) when the name exists with other types or is an empty
//    non-terminal of a stored zone (RFC 8020), NXDOMAIN otherwise. Zone store failure: REFUSED.
//  * EDNS(0): an OPT RR answers an OPT RR (version 0, payload max(requested, 512), DO copied).
//    UDP responses are limited to the requester's EDNS size, or 512 bytes without EDNS; a
//    response that does not fit is cut after the last whole record and gets TC=1.
//  * Header: ID, opcode, RD and CD copied; QR=1, AA=1 for zone answers, RA=0, AD=0. The question
//    is echoed with its original case.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "iroh/pkarr.hpp"

namespace iroh::dns {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::size_t kMaxMessageSize = 65535;
inline constexpr std::size_t kClassicUdpSize = 512;  // RFC 1035 limit without EDNS
// Static record TTLs (§5.2).
inline constexpr std::uint32_t kSoaTtl = 1209600;
inline constexpr std::uint32_t kNsTtl = 43200;
inline constexpr std::uint32_t kAddressTtl = 3600;

// The static part of the zones: config keys enable_dns / dns.* (origins, default_soa, rr_*).
struct ZoneOptions {
  std::vector<std::string> origins{"."};  // FQDNs; a missing trailing dot is implied
  std::string soa = "ns1.example. hostmaster.example. 0 10800 3600 604800 3600";
  std::optional<std::string> a;     // IPv4 text
  std::optional<std::string> aaaa;  // IPv6 text
  std::optional<std::string> ns;    // FQDN
};

// Invalid ZoneOptions; what() = "<key>: <reason>", e.g. "dns.default_soa: ...".
class ZoneOptionsError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The parsed zone of one stored packet (pkarr::zone_records) and the packet it came from, so that
// a cache can tell whether the store holds a different packet now.
struct PkarrZone {
  std::uint64_t timestamp_us = 0;
  std::array<std::uint8_t, pkarr::kSignatureSize> signature{};
  std::vector<pkarr::ZoneRecord> records;

  static std::shared_ptr<const PkarrZone> from_packet(const pkarr::SignedPacket& packet);
  bool same_packet(const pkarr::SignedPacket& packet) const;
};

enum class ZoneStatus { Found, NotFound, Error };
struct ZoneLookupResult {
  ZoneStatus status = ZoneStatus::NotFound;
  std::shared_ptr<const PkarrZone> zone;  // set when Found
};
// Called at most once per query, only for names under `<z32>.<origin>`.
using ZoneLookup = std::function<ZoneLookupResult(const pkarr::PublicKey&)>;

enum class Transport { Udp, Tcp, Https };

enum class Outcome {
  Dropped,    // not answered: shorter than a DNS header, or QR=1 (nothing written)
  Malformed,  // FORMERR written (unparsable, QDCOUNT != 1); DoH answers 400 instead
  Success,    // NOERROR with at least one answer
  NotFound,   // NXDOMAIN, or NOERROR without answers (NODATA)
  Error,      // any other rcode: NOTIMP, REFUSED, BADVERS
};

struct Answer {
  Outcome outcome = Outcome::Dropped;
  std::size_t size = 0;       // response bytes written to `out`
  std::uint16_t rcode = 0;    // extended rcode (BADVERS = 16)
  std::size_t answers = 0;    // answer RRs written
  bool truncated = false;     // TC set
  std::uint32_t min_ttl = 0;  // smallest answer TTL (valid when answers > 0)
};

class Resolver {
 public:
  // Throws ZoneOptionsError.
  explicit Resolver(const ZoneOptions& options);
  ~Resolver();
  Resolver(Resolver&&) noexcept;
  Resolver& operator=(Resolver&&) noexcept;

  // Answers `query` into `out`. UDP responses are limited to min(out.size(), the requester's
  // size); TCP and DoH ones to min(out.size(), 65535), so give those a kMaxMessageSize buffer.
  // Thread-safe (const, no shared mutable state).
  Answer resolve(ByteSpan query, Transport transport, const ZoneLookup& zones,
                 std::span<std::uint8_t> out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- DoH JSON helpers (spec §6.1) ---------------------------------------------------------------

struct JsonQuery {
  std::string name;        // presentation format; a missing trailing dot is implied
  std::uint16_t type = 1;  // A
  bool rd = true;
  bool cd = false;
  bool ad = false;  // iroh-dns-server's quirk: `do=true` sets AD in the query
};
// A query message (ID 0, one question, no EDNS); nullopt if the name is not a valid domain name.
std::optional<Bytes> make_query(const JsonQuery& query);
// "TXT", "txt", "16" -> 16; nullopt for unknown mnemonics and numbers > 65535.
std::optional<std::uint16_t> parse_rrtype(std::string_view text);

struct ResponseRecord {
  std::string name;  // FQDN with trailing dot
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;
  std::string data;  // TXT: character-strings concatenated (raw bytes); others: zone-file text
};
struct ResponseView {
  std::uint16_t rcode = 0;
  bool tc = false, rd = false, ra = false, ad = false, cd = false;
  std::string question_name;
  std::uint16_t question_type = 0;
  std::vector<ResponseRecord> answers;
};
// Decodes a response produced by Resolver::resolve (for the JSON format); nullopt if malformed.
std::optional<ResponseView> view_response(ByteSpan response);

}  // namespace iroh::dns
