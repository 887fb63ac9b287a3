#include "iroh/dns.hpp"

extern "C" {
#include <libknot/libknot.h>
}
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <sstream>

namespace iroh::dns {
namespace {

constexpr std::uint16_t kRcodeNoError = KNOT_RCODE_NOERROR;
constexpr std::uint16_t kRcodeFormErr = KNOT_RCODE_FORMERR;
constexpr std::uint16_t kRcodeNxDomain = KNOT_RCODE_NXDOMAIN;
constexpr std::uint16_t kRcodeNotImp = KNOT_RCODE_NOTIMPL;
constexpr std::uint16_t kRcodeRefused = KNOT_RCODE_REFUSED;
constexpr std::uint16_t kRcodeBadVers = KNOT_RCODE_BADVERS;

struct PktDeleter {
  void operator()(knot_pkt_t* pkt) const { knot_pkt_free(pkt); }
};
using PktPtr = std::unique_ptr<knot_pkt_t, PktDeleter>;

Bytes dname_bytes(const knot_dname_t* name) {
  return Bytes(name, name + knot_dname_size(name));
}

// Text -> lower-case wire name; throws ZoneOptionsError naming `key`.
Bytes parse_name(const std::string& text, std::string_view key) {
  knot_dname_storage_t wire;
  if (text.empty() || knot_dname_from_str(wire, text.c_str(), sizeof(wire)) == nullptr) {
    throw ZoneOptionsError(std::string(key) + ": '" + text + "' is not a domain name");
  }
  knot_dname_to_lower(wire);
  return dname_bytes(wire);
}

void append_u32(Bytes& out, std::uint32_t value) {
  std::uint8_t buf[4];
  knot_wire_write_u32(buf, value);
  out.insert(out.end(), buf, buf + 4);
}

// "mname rname serial refresh retry expire minimum" -> SOA RDATA.
Bytes parse_soa(const std::string& text, std::uint32_t& minimum) {
  constexpr std::string_view kKey = "dns.default_soa";
  std::istringstream in(text);
  std::vector<std::string> fields;
  for (std::string field; in >> field;) fields.push_back(field);
  if (fields.size() != 7) {
    throw ZoneOptionsError(std::string(kKey) +
                           ": expected 'mname rname serial refresh retry expire minimum', got '" +
                           text + "'");
  }
  Bytes rdata = parse_name(fields[0], kKey);
  const Bytes rname = parse_name(fields[1], kKey);
  rdata.insert(rdata.end(), rname.begin(), rname.end());
  for (std::size_t i = 2; i < 7; ++i) {
    std::uint32_t value = 0;
    const auto [end, ec] =
        std::from_chars(fields[i].data(), fields[i].data() + fields[i].size(), value);
    if (ec != std::errc{} || end != fields[i].data() + fields[i].size()) {
      throw ZoneOptionsError(std::string(kKey) + ": '" + fields[i] +
                             "' is not a 32-bit unsigned number");
    }
    append_u32(rdata, value);
    if (i == 6) minimum = value;
  }
  return rdata;
}

template <std::size_t N>
Bytes parse_address(const std::string& text, int family, std::string_view key) {
  std::uint8_t buf[N];
  if (inet_pton(family, text.c_str(), buf) != 1) {
    throw ZoneOptionsError(std::string(key) + ": '" + text + "' is not an IPv" +
                           (family == AF_INET ? "4" : "6") + " address");
  }
  return Bytes(buf, buf + N);
}

// Writes the response after the header and question: whole resource records until the limit,
// with room kept for the OPT RR. Owner names are compressed by exact bytes only (issue 19 item 5):
// libknot compares case-insensitively, so letting it compress an owner against a mixed-case
// question would give the owner the question's case, while owners are lower-case (§5.3). An
// owner is written as a pointer to an identical suffix of the question or to the same owner
// written earlier; otherwise once in full. Names inside RDATA are compressed by libknot.
class Writer {
 public:
  Writer(std::uint8_t* wire, std::size_t size, std::size_t limit)
      : wire_(wire), size_(size), limit_(limit), question_end_(size) {
    compr_.wire = wire;
    compr_.rrinfo = &rrinfo_;
    compr_.suffix.pos = 0;
    compr_.suffix.labels = 0;
  }

  void reserve(std::size_t bytes) { reserved_ += bytes; }
  void release(std::size_t bytes) { reserved_ -= bytes; }
  std::size_t size() const { return size_; }
  bool truncated() const { return truncated_; }

  // One RR; false (and TC) when it does not fit, or when the record cannot be encoded.
  bool put(const knot_dname_t* owner, std::uint16_t type, std::uint16_t rclass, std::uint32_t ttl,
           ByteSpan rdata) {
    if (truncated_) return false;
    knot_rrset_t rr;
    knot_rrset_init(&rr, const_cast<knot_dname_t*>(owner), type, rclass, ttl);
    if (knot_rrset_add_rdata(&rr, rdata.data(), static_cast<std::uint16_t>(rdata.size()),
                             nullptr) != KNOT_EOK) {
      return false;
    }
    const bool ok = put(rr);
    knot_rdataset_clear(&rr.rrs, nullptr);
    return ok;
  }

  // `reserved_space`: the OPT RR, written into the room kept for it even after truncation.
  bool put(const knot_rrset_t& rr, bool reserved_space = false) {
    if (truncated_ && !reserved_space) return false;
    const std::size_t room = limit_ > size_ + reserved_ ? limit_ - size_ - reserved_ : 0;
    std::memset(&rrinfo_, 0, sizeof(rrinfo_));
    const std::uint16_t target = owner_target(rr.owner);
    // With a target libknot writes the owner as a pointer to it (the owner hint); without one
    // no compression context, so the owner is written as it is.
    knot_compr_t* compr = nullptr;
    if (target != 0) {
      knot_compr_hint_set(&rrinfo_, KNOT_COMPR_HINT_OWNER, target, 2);
      compr = &compr_;
    }
    const std::size_t at = size_;
    const int written =
        knot_rrset_to_wire_extra(&rr, wire_ + size_, static_cast<std::uint16_t>(room), 0, compr, 0);
    if (written < 0) {
      if (written == KNOT_ESPACE && !reserved_space) truncated_ = true;
      return false;
    }
    size_ += static_cast<std::size_t>(written);
    if (target == 0 && *rr.owner != '\0' && at < KNOT_WIRE_PTR_MAX) {
      owner_at_ = static_cast<std::uint16_t>(at);
      owner_ = dname_bytes(rr.owner);
    }
    return true;
  }

 private:
  // Where an exact copy of `owner` already is in the message (a suffix of the question name, or
  // the last owner written in full); 0 = nowhere.
  std::uint16_t owner_target(const knot_dname_t* owner) const {
    if (*owner == '\0') return 0;  // the root: one byte, nothing to gain
    const std::size_t size = knot_dname_size(owner);
    if (owner_at_ != 0 && owner_.size() == size && std::memcmp(owner_.data(), owner, size) == 0) {
      return owner_at_;
    }
    // The question name is the raw bytes of the query's (no pointers: knot_pkt_parse accepted it
    // as the first name of the message); walk its label suffixes.
    std::size_t pos = kHeaderSize;
    while (pos < question_end_ && wire_[pos] != 0 && wire_[pos] < 0x40) {
      const std::size_t rest = question_end_ - pos;
      if (rest >= size && std::memcmp(wire_ + pos, owner, size) == 0) {
        return static_cast<std::uint16_t>(pos);
      }
      pos += 1 + wire_[pos];
    }
    return 0;
  }

  std::uint8_t* wire_;
  std::size_t size_;
  std::size_t limit_;
  std::size_t question_end_;
  std::size_t reserved_ = 0;
  bool truncated_ = false;
  std::uint16_t owner_at_ = 0;
  Bytes owner_;
  knot_rrinfo_t rrinfo_{};
  knot_compr_t compr_{};
};

}  // namespace

// ---- PkarrZone ----------------------------------------------------------------------------------

std::shared_ptr<const PkarrZone> PkarrZone::from_packet(const pkarr::SignedPacket& packet) {
  auto zone = std::make_shared<PkarrZone>();
  zone->timestamp_us = packet.timestamp_us();
  std::copy(packet.signature().begin(), packet.signature().end(), zone->signature.begin());
  zone->records = pkarr::zone_records(packet);
  return zone;
}

bool PkarrZone::same_packet(const pkarr::SignedPacket& packet) const {
  // The signature covers timestamp and DNS bytes: equal signatures, equal packets.
  return packet.timestamp_us() == timestamp_us &&
         std::equal(signature.begin(), signature.end(), packet.signature().begin());
}

// ---- Resolver -----------------------------------------------------------------------------------

// The steps of one answer, named after Knot DNS's (knot/nameserver/internet.c): prepare the
// response (parse, limits, question, OPT), solve_name (which zone, or which error), solve_answer,
// solve_authority, solve_additional, then finish (header, counts, outcome). Each step writes into
// one Context; the order of the writes is the order of the sections in the message.
struct Resolver::Impl {
  std::vector<Bytes> origins;  // lower-case wire names, configured order
  Bytes soa_rdata;
  std::uint32_t soa_minimum = 0;
  std::optional<Bytes> ns_rdata, a_rdata, aaaa_rdata;

  struct Question {
    const knot_dname_t* name;  // lower-case
    std::size_t name_size;
    std::uint16_t type;
    std::uint16_t rclass;
  };

  // One query being answered.
  struct Context {
    ByteSpan query;
    std::uint8_t* wire;  // the response
    Question q;
    const knot_rrset_t* opt;  // the query's OPT RR, if any
    Writer w;
    knot_rrset_t response_opt{};
    bool has_opt = false;
    std::uint16_t rcode = kRcodeNoError;
    bool aa = false;
    const Bytes* origin = nullptr;  // the matched origin (solve_name)
    int depth = 0;                  // labels of the query name below it
    bool exists = false;            // the query name exists (with any type)
    std::size_t matched = 0;        // RRs of the query type found (written or not)
    std::uint16_t ancount = 0, nscount = 0;
    std::uint32_t min_ttl = 0;
  };

  // The index of the first origin that is an ancestor-or-self of `name` and the number of labels
  // `name` has below it; nullopt if none.
  std::optional<std::pair<std::size_t, int>> match_origin(const knot_dname_t* name) const {
    for (std::size_t i = 0; i < origins.size(); ++i) {
      const int depth = knot_dname_in_bailiwick(name, origins[i].data());
      if (depth >= 0) return std::pair{i, depth};
    }
    return std::nullopt;
  }

  // True if `name` (not an origin) is an ancestor of an origin: an empty non-terminal of the
  // static zone.
  bool static_name_exists(const knot_dname_t* name) const {
    return std::any_of(origins.begin(), origins.end(), [&](const Bytes& o) {
      return knot_dname_in_bailiwick(o.data(), name) >= 0;
    });
  }

  const std::optional<Bytes>& static_rdata(std::uint16_t type) const {
    static const std::optional<Bytes> none;
    switch (type) {
      case KNOT_RRTYPE_NS:
        return ns_rdata;
      case KNOT_RRTYPE_A:
        return a_rdata;
      case KNOT_RRTYPE_AAAA:
        return aaaa_rdata;
      default:
        return none;
    }
  }

  // Header shared by every response: ID, opcode, RD and CD copied, QR=1.
  static void write_header(std::uint8_t* wire, ByteSpan query, std::uint16_t rcode, bool aa) {
    std::memset(wire, 0, kHeaderSize);
    knot_wire_set_id(wire, knot_wire_get_id(query.data()));
    knot_wire_set_qr(wire);
    knot_wire_set_opcode(wire, knot_wire_get_opcode(query.data()));
    if (knot_wire_get_rd(query.data())) knot_wire_set_rd(wire);
    if (knot_wire_get_cd(query.data())) knot_wire_set_cd(wire);
    if (aa) knot_wire_set_aa(wire);
    knot_wire_set_rcode(wire, static_cast<std::uint8_t>(KNOT_EDNS_RCODE_LO(rcode)));
  }

  // The response size limit (UDP: the requester's EDNS size, or 512 without EDNS).
  static std::size_t response_limit(const knot_rrset_t* opt, Transport transport,
                                    std::size_t out_size) {
    std::size_t limit = std::min<std::size_t>(out_size, kMaxMessageSize);
    if (transport == Transport::Udp) {
      const std::size_t requested =
          opt ? std::max<std::size_t>(knot_edns_get_payload(opt), kClassicUdpSize)
              : kClassicUdpSize;
      limit = std::min(limit, requested);
    }
    return limit;
  }

  // The OPT RR that answers the query's (version 0, payload max(requested, 512), DO copied); its
  // room is kept from the start so that it is written even when the answer is truncated.
  static void prepare_opt(Context& c) {
    if (c.opt == nullptr) return;
    const std::uint16_t payload = static_cast<std::uint16_t>(
        std::max<std::size_t>(knot_edns_get_payload(c.opt), kClassicUdpSize));
    if (knot_edns_init(&c.response_opt, payload, 0, KNOT_EDNS_VERSION, nullptr) != KNOT_EOK) {
      return;
    }
    c.has_opt = true;
    if (knot_edns_do(c.opt)) knot_edns_set_do(&c.response_opt);
    c.w.reserve(knot_edns_wire_size(&c.response_opt));
  }

  // Which zone answers, or which error (in the order of the module header): false if the query
  // gets only an rcode.
  bool solve_name(Context& c) const {
    if (c.opt != nullptr && knot_edns_get_version(c.opt) != KNOT_EDNS_VERSION) {
      c.rcode = kRcodeBadVers;
    } else if (knot_wire_get_opcode(c.query.data()) != KNOT_OPCODE_QUERY) {
      c.rcode = kRcodeNotImp;
    } else if (c.q.type == KNOT_RRTYPE_AXFR || c.q.type == KNOT_RRTYPE_IXFR ||
               c.q.rclass != KNOT_CLASS_IN) {
      c.rcode = kRcodeRefused;
    } else if (const auto match = match_origin(c.q.name); !match) {
      c.rcode = kRcodeRefused;
    } else {
      c.aa = true;
      c.origin = &origins[match->first];
      c.depth = match->second;
      return true;
    }
    return false;
  }

  void solve_answer(Context& c, const ZoneLookup& zones) const {
    if (c.depth == 0) {
      solve_apex(c);
    } else {
      solve_pkarr(c, zones);
    }
  }

  // The apex: the static records.
  void solve_apex(Context& c) const {
    c.exists = true;
    if (c.q.type == KNOT_RRTYPE_SOA) {
      if (c.w.put(c.q.name, KNOT_RRTYPE_SOA, KNOT_CLASS_IN, kSoaTtl, soa_rdata)) ++c.ancount;
      c.matched = 1;
    } else if (const auto& rdata = static_rdata(c.q.type); rdata) {
      const std::uint32_t ttl = c.q.type == KNOT_RRTYPE_NS ? kNsTtl : kAddressTtl;
      if (c.w.put(c.q.name, c.q.type, KNOT_CLASS_IN, ttl, *rdata)) ++c.ancount;
      c.matched = 1;
    }
  }

  // `R.K.O`: the RRset of the query type at relative name R in the pkarr zone of key K (§5.3).
  void solve_pkarr(Context& c, const ZoneLookup& zones) const {
    // K = the label directly left of the origin, R = the labels left of K.
    const knot_dname_t* key_label = c.q.name;
    for (int i = 0; i < c.depth - 1; ++i) key_label = knot_wire_next_label(key_label, nullptr);
    const auto key = key_of_label(key_label);
    if (!key) {
      c.exists = static_name_exists(c.q.name);
      return;
    }
    const std::string relative = relative_name(c.q.name, key_label);
    const ZoneLookupResult found = zones ? zones(*key) : ZoneLookupResult{};
    if (found.status == ZoneStatus::Error) {
      c.rcode = kRcodeRefused;
      return;
    }
    if (found.status != ZoneStatus::Found || !found.zone) return;
    for (const pkarr::ZoneRecord& r : found.zone->records) {
      if (r.relative_name != relative) continue;
      c.exists = true;
      if (r.record.type != c.q.type) continue;
      ++c.matched;
      if (c.w.put(c.q.name, r.record.type, r.record.rclass, r.record.ttl, r.record.rdata)) {
        ++c.ancount;
        c.min_ttl = c.ancount == 1 ? r.record.ttl : std::min(c.min_ttl, r.record.ttl);
      }
    }
    if (!c.exists) c.exists = pkarr::name_exists(found.zone->records, relative);
  }

  // Strict z32 of 32 bytes. Unlike pkarr::key_from_z32 this skips the Ed25519 point check (a
  // field exponentiation, most of the CPU time of a query): no packet can be stored for a key
  // that is not a point (PUT checks it), so the store finds nothing and the answer is NXDOMAIN
  // with the SOA, exactly what the static zone gives for such a name.
  static std::optional<pkarr::PublicKey> key_of_label(const knot_dname_t* label) {
    if (*label != pkarr::kZ32KeyLength) return std::nullopt;
    const auto bytes =
        pkarr::z32_decode(std::string_view(reinterpret_cast<const char*>(label + 1), *label));
    if (!bytes || bytes->size() != pkarr::kPublicKeySize) return std::nullopt;
    pkarr::PublicKey key;
    std::copy(bytes->begin(), bytes->end(), key.bytes.begin());
    return key;
  }

  // The labels of `name` left of `key_label` as presentation text without the trailing dot ("" at
  // the key itself), the form of pkarr::ZoneRecord::relative_name.
  static std::string relative_name(const knot_dname_t* name, const knot_dname_t* key_label) {
    knot_dname_storage_t relative_wire;
    const std::size_t prefix = static_cast<std::size_t>(key_label - name);
    std::memcpy(relative_wire, name, prefix);
    relative_wire[prefix] = 0;
    knot_dname_txt_storage_t relative_text;
    if (knot_dname_to_str(relative_text, relative_wire, sizeof(relative_text)) == nullptr) {
      return {};
    }
    std::string_view relative = relative_text;
    if (relative.ends_with('.')) relative.remove_suffix(1);
    return std::string(relative);
  }

  // The apex NS with an SOA answer; the SOA of the origin with a negative answer (NODATA, or
  // NXDOMAIN when the name does not exist).
  void solve_authority(Context& c) const {
    if (c.depth == 0 && c.q.type == KNOT_RRTYPE_SOA && ns_rdata &&
        c.w.put(c.q.name, KNOT_RRTYPE_NS, KNOT_CLASS_IN, kNsTtl, *ns_rdata)) {
      ++c.nscount;
    }
    if (c.rcode != kRcodeNoError || c.matched != 0) return;
    if (!c.exists) c.rcode = kRcodeNxDomain;
    // RFC 2308 §3: the negative-caching TTL is the smaller of the SOA TTL and its minimum.
    if (c.w.put(c.origin->data(), KNOT_RRTYPE_SOA, KNOT_CLASS_IN, std::min(kSoaTtl, soa_minimum),
                soa_rdata)) {
      ++c.nscount;
    }
  }

  // The OPT RR (with the extended rcode bits), into the room kept for it.
  static void solve_additional(Context& c) {
    if (!c.has_opt) return;
    knot_edns_set_ext_rcode(&c.response_opt,
                            static_cast<std::uint8_t>(KNOT_EDNS_RCODE_HI(c.rcode)));
    c.w.release(knot_edns_wire_size(&c.response_opt));
    if (c.w.put(c.response_opt, true)) knot_wire_set_arcount(c.wire, 1);
    knot_rrset_clear(&c.response_opt, nullptr);
  }

  static Answer finish(Context& c) {
    write_header(c.wire, c.query, c.rcode, c.aa);
    if (c.w.truncated()) knot_wire_set_tc(c.wire);
    knot_wire_set_qdcount(c.wire, 1);
    knot_wire_set_ancount(c.wire, c.ancount);
    knot_wire_set_nscount(c.wire, c.nscount);
    solve_additional(c);
    Answer answer;
    answer.rcode = c.rcode;
    answer.size = c.w.size();
    answer.answers = c.ancount;
    answer.truncated = c.w.truncated();
    answer.min_ttl = c.min_ttl;
    if (c.rcode == kRcodeNoError) {
      answer.outcome = c.matched > 0 ? Outcome::Success : Outcome::NotFound;
    } else if (c.rcode == kRcodeNxDomain) {
      answer.outcome = Outcome::NotFound;
    } else {
      answer.outcome = Outcome::Error;
    }
    return answer;
  }
};

Resolver::Resolver(const ZoneOptions& options) : impl_(std::make_unique<Impl>()) {
  if (options.origins.empty()) throw ZoneOptionsError("dns.origins: at least one origin needed");
  for (const std::string& origin : options.origins) {
    impl_->origins.push_back(parse_name(origin, "dns.origins"));
  }
  impl_->soa_rdata = parse_soa(options.soa, impl_->soa_minimum);
  if (options.ns) impl_->ns_rdata = parse_name(*options.ns, "dns.rr_ns");
  if (options.a) impl_->a_rdata = parse_address<4>(*options.a, AF_INET, "dns.rr_a");
  if (options.aaaa) impl_->aaaa_rdata = parse_address<16>(*options.aaaa, AF_INET6, "dns.rr_aaaa");
}

Resolver::~Resolver() = default;
Resolver::Resolver(Resolver&&) noexcept = default;
Resolver& Resolver::operator=(Resolver&&) noexcept = default;

Answer Resolver::resolve(ByteSpan query, Transport transport, const ZoneLookup& zones,
                         std::span<std::uint8_t> out) const {
  if (query.size() < kHeaderSize || query.size() > kMaxMessageSize ||
      knot_wire_get_qr(query.data()) || out.size() < kHeaderSize) {
    return Answer{};  // Dropped
  }
  std::uint8_t* wire = out.data();
  auto header_only = [&](std::uint16_t rcode, Outcome outcome) {
    Impl::write_header(wire, query, rcode, false);
    Answer answer;
    answer.rcode = rcode;
    answer.outcome = outcome;
    answer.size = kHeaderSize;
    return answer;
  };

  // knot_pkt_parse may rewrite the wire (it strips a TSIG RR): it gets a private copy.
  std::uint8_t copy[kMaxMessageSize];
  std::memcpy(copy, query.data(), query.size());
  PktPtr pkt(knot_pkt_new(copy, static_cast<std::uint16_t>(query.size()), nullptr));
  if (!pkt || knot_pkt_parse(pkt.get(), 0) != KNOT_EOK || knot_wire_get_qdcount(copy) != 1 ||
      pkt->qname_size == 0) {
    return header_only(kRcodeFormErr, Outcome::Malformed);
  }

  const knot_rrset_t* opt = pkt->opt_rr;
  const std::size_t limit = Impl::response_limit(opt, transport, out.size());
  const std::size_t question_size = knot_pkt_question_size(pkt.get());
  if (kHeaderSize + question_size > limit) {
    // Not even the question fits the requester's limit: header only, TC set.
    Answer answer = header_only(kRcodeNoError, Outcome::NotFound);
    knot_wire_set_tc(wire);
    answer.truncated = true;
    return answer;
  }
  // Question echoed with the original case.
  std::memcpy(wire + kHeaderSize, knot_pkt_wire_qname(pkt.get()), question_size);
  knot_wire_set_qdcount(wire, 1);

  Impl::Context c{.query = query,
                  .wire = wire,
                  .q = {knot_pkt_qname(pkt.get()), pkt->qname_size, knot_pkt_qtype(pkt.get()),
                        knot_pkt_qclass(pkt.get())},
                  .opt = opt,
                  .w = Writer(wire, kHeaderSize + question_size, limit)};
  Impl::prepare_opt(c);
  if (impl_->solve_name(c)) {
    impl_->solve_answer(c, zones);
    impl_->solve_authority(c);
  }
  return Impl::finish(c);
}

// ---- DoH JSON helpers ---------------------------------------------------------------------------

std::optional<Bytes> make_query(const JsonQuery& query) {
  knot_dname_storage_t name;
  if (query.name.empty() ||
      knot_dname_from_str(name, query.name.c_str(), sizeof(name)) == nullptr) {
    return std::nullopt;
  }
  Bytes wire(kHeaderSize + knot_dname_size(name) + 4, 0);
  PktPtr pkt(knot_pkt_new(wire.data(), static_cast<std::uint16_t>(wire.size()), nullptr));
  if (!pkt) return std::nullopt;
  if (knot_pkt_put_question(pkt.get(), name, KNOT_CLASS_IN, query.type) != KNOT_EOK) {
    return std::nullopt;
  }
  if (query.rd) knot_wire_set_rd(wire.data());
  if (query.cd) knot_wire_set_cd(wire.data());
  if (query.ad) knot_wire_set_ad(wire.data());
  wire.resize(pkt->size);
  return wire;
}

std::optional<std::uint16_t> parse_rrtype(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint32_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(value);
  }
  std::string upper(text);
  for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  std::uint16_t type = 0;
  if (knot_rrtype_from_string(upper.c_str(), &type) != 0) return std::nullopt;
  return type;
}

std::optional<ResponseView> view_response(ByteSpan response) {
  if (response.size() < kHeaderSize || response.size() > kMaxMessageSize) return std::nullopt;
  Bytes copy(response.begin(), response.end());
  PktPtr pkt(knot_pkt_new(copy.data(), static_cast<std::uint16_t>(copy.size()), nullptr));
  if (!pkt || knot_pkt_parse(pkt.get(), KNOT_PF_NOCANON) != KNOT_EOK) return std::nullopt;
  ResponseView view;
  view.rcode = knot_pkt_ext_rcode(pkt.get());
  view.tc = knot_wire_get_tc(copy.data());
  view.rd = knot_wire_get_rd(copy.data());
  view.ra = knot_wire_get_ra(copy.data());
  view.ad = knot_wire_get_ad(copy.data());
  view.cd = knot_wire_get_cd(copy.data());
  knot_dname_txt_storage_t text;
  if (pkt->qname_size != 0) {
    if (knot_dname_to_str(text, knot_pkt_wire_qname(pkt.get()), sizeof(text)) == nullptr) {
      return std::nullopt;
    }
    view.question_name = text;
    view.question_type = knot_pkt_qtype(pkt.get());
  }
  const knot_pktsection_t* section = knot_pkt_section(pkt.get(), KNOT_ANSWER);
  std::vector<char> dump(65536);
  for (std::uint16_t i = 0; i < section->count; ++i) {
    const knot_rrset_t* rr = knot_pkt_rr(section, i);
    if (knot_dname_to_str(text, rr->owner, sizeof(text)) == nullptr) return std::nullopt;
    for (std::uint16_t j = 0; j < rr->rrs.count; ++j) {
      ResponseRecord record;
      record.name = text;
      record.type = rr->type;
      record.ttl = rr->ttl;
      const knot_rdata_t* rdata = knot_rdataset_at(&rr->rrs, j);
      if (rr->type == KNOT_RRTYPE_TXT) {
        std::size_t pos = 0;
        while (pos < rdata->len) {
          const std::size_t len = rdata->data[pos++];
          if (len > rdata->len - pos) return std::nullopt;
          record.data.append(reinterpret_cast<const char*>(rdata->data + pos), len);
          pos += len;
        }
      } else {
        if (knot_rrset_txt_dump_data(rr, j, dump.data(), dump.size(), &KNOT_DUMP_STYLE_DEFAULT) <
            0) {
          return std::nullopt;
        }
        record.data = dump.data();
      }
      view.answers.push_back(std::move(record));
    }
  }
  return view;
}

}  // namespace iroh::dns
