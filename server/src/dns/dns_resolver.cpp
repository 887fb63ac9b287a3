#include "dns_resolver.hpp"

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

  bool put_negative_soa(Writer& w, const Bytes& origin) const {
    // RFC 2308 §3: the negative-caching TTL is the smaller of the SOA TTL and its minimum.
    return w.put(origin.data(), KNOT_RRTYPE_SOA, KNOT_CLASS_IN, std::min(kSoaTtl, soa_minimum),
                 soa_rdata);
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
  const Impl& z = *impl_;
  Answer answer;
  if (query.size() < kHeaderSize || query.size() > kMaxMessageSize ||
      knot_wire_get_qr(query.data()) || out.size() < kHeaderSize) {
    return answer;  // Dropped
  }
  std::uint8_t* wire = out.data();

  // Header shared by every response: ID, opcode, RD and CD copied, QR=1.
  auto write_header = [&](std::uint16_t rcode, bool aa) {
    std::memset(wire, 0, kHeaderSize);
    knot_wire_set_id(wire, knot_wire_get_id(query.data()));
    knot_wire_set_qr(wire);
    knot_wire_set_opcode(wire, knot_wire_get_opcode(query.data()));
    if (knot_wire_get_rd(query.data())) knot_wire_set_rd(wire);
    if (knot_wire_get_cd(query.data())) knot_wire_set_cd(wire);
    if (aa) knot_wire_set_aa(wire);
    knot_wire_set_rcode(wire, static_cast<std::uint8_t>(KNOT_EDNS_RCODE_LO(rcode)));
    answer.rcode = rcode;
  };
  auto formerr = [&] {
    write_header(kRcodeFormErr, false);
    answer.outcome = Outcome::Malformed;
    answer.size = kHeaderSize;
    return answer;
  };

  // knot_pkt_parse may rewrite the wire (it strips a TSIG RR): it gets a private copy.
  std::uint8_t copy[kMaxMessageSize];
  std::memcpy(copy, query.data(), query.size());
  PktPtr pkt(knot_pkt_new(copy, static_cast<std::uint16_t>(query.size()), nullptr));
  if (!pkt) return formerr();
  if (knot_pkt_parse(pkt.get(), 0) != KNOT_EOK || knot_wire_get_qdcount(copy) != 1 ||
      pkt->qname_size == 0) {
    return formerr();
  }

  const Impl::Question q{knot_pkt_qname(pkt.get()), pkt->qname_size, knot_pkt_qtype(pkt.get()),
                         knot_pkt_qclass(pkt.get())};
  const knot_rrset_t* opt = pkt->opt_rr;

  std::size_t limit = std::min<std::size_t>(out.size(), kMaxMessageSize);
  if (transport == Transport::Udp) {
    const std::size_t requested =
        opt ? std::max<std::size_t>(knot_edns_get_payload(opt), kClassicUdpSize) : kClassicUdpSize;
    limit = std::min(limit, requested);
  }
  const std::size_t question_size = knot_pkt_question_size(pkt.get());
  if (kHeaderSize + question_size > limit) {
    // Not even the question fits the requester's limit: header only, TC set.
    write_header(kRcodeNoError, false);
    knot_wire_set_tc(wire);
    answer.truncated = true;
    answer.outcome = Outcome::NotFound;
    answer.size = kHeaderSize;
    return answer;
  }
  // Question echoed with the original case.
  std::memcpy(wire + kHeaderSize, knot_pkt_wire_qname(pkt.get()), question_size);
  knot_wire_set_qdcount(wire, 1);

  Writer w(wire, kHeaderSize + question_size, limit);
  knot_rrset_t response_opt;
  bool has_opt = false;
  if (opt != nullptr) {
    const std::uint16_t payload = static_cast<std::uint16_t>(
        std::max<std::size_t>(knot_edns_get_payload(opt), kClassicUdpSize));
    if (knot_edns_init(&response_opt, payload, 0, KNOT_EDNS_VERSION, nullptr) == KNOT_EOK) {
      has_opt = true;
      if (knot_edns_do(opt)) knot_edns_set_do(&response_opt);
      w.reserve(knot_edns_wire_size(&response_opt));
    }
  }

  std::uint16_t rcode = kRcodeNoError;
  bool aa = false;
  std::uint16_t ancount = 0, nscount = 0;
  std::size_t matched = 0;

  if (opt != nullptr && knot_edns_get_version(opt) != KNOT_EDNS_VERSION) {
    rcode = kRcodeBadVers;
  } else if (knot_wire_get_opcode(query.data()) != KNOT_OPCODE_QUERY) {
    rcode = kRcodeNotImp;
  } else if (q.type == KNOT_RRTYPE_AXFR || q.type == KNOT_RRTYPE_IXFR ||
             q.rclass != KNOT_CLASS_IN) {
    rcode = kRcodeRefused;
  } else if (const auto match = z.match_origin(q.name); !match) {
    rcode = kRcodeRefused;
  } else {
    aa = true;
    const Bytes& origin = z.origins[match->first];
    const int depth = match->second;
    bool exists = false;
    if (depth == 0) {
      // The apex: static records.
      exists = true;
      if (q.type == KNOT_RRTYPE_SOA) {
        if (w.put(q.name, KNOT_RRTYPE_SOA, KNOT_CLASS_IN, kSoaTtl, z.soa_rdata)) ++ancount;
        matched = 1;
        if (z.ns_rdata && w.put(q.name, KNOT_RRTYPE_NS, KNOT_CLASS_IN, kNsTtl, *z.ns_rdata)) {
          ++nscount;
        }
      } else if (const auto& rdata = z.static_rdata(q.type); rdata) {
        const std::uint32_t ttl = q.type == KNOT_RRTYPE_NS ? kNsTtl : kAddressTtl;
        if (w.put(q.name, q.type, KNOT_CLASS_IN, ttl, *rdata)) ++ancount;
        matched = 1;
      }
    } else {
      // K = the label directly left of the origin, R = the labels left of K.
      const knot_dname_t* key_label = q.name;
      for (int i = 0; i < depth - 1; ++i) key_label = knot_wire_next_label(key_label, nullptr);
      // Strict z32 of 32 bytes. Unlike pkarr::key_from_z32 this skips the Ed25519 point check
      // (a field exponentiation, most of the CPU time of a query): no packet can be stored for a
      // key that is not a point (PUT checks it), so the store finds nothing and the answer is
      // NXDOMAIN with the SOA, exactly what the static zone gives for such a name.
      std::optional<pkarr::PublicKey> key;
      if (*key_label == pkarr::kZ32KeyLength) {
        const auto bytes = pkarr::z32_decode(
            std::string_view(reinterpret_cast<const char*>(key_label + 1), *key_label));
        if (bytes && bytes->size() == pkarr::kPublicKeySize) {
          key.emplace();
          std::copy(bytes->begin(), bytes->end(), key->bytes.begin());
        }
      }
      if (key) {
        knot_dname_storage_t relative_wire;
        const std::size_t prefix = static_cast<std::size_t>(key_label - q.name);
        std::memcpy(relative_wire, q.name, prefix);
        relative_wire[prefix] = 0;
        knot_dname_txt_storage_t relative_text;
        std::string_view relative;
        if (knot_dname_to_str(relative_text, relative_wire, sizeof(relative_text)) != nullptr) {
          relative = relative_text;
          if (relative.ends_with('.')) relative.remove_suffix(1);
        }
        const ZoneLookupResult found = zones ? zones(*key) : ZoneLookupResult{};
        if (found.status == ZoneStatus::Error) {
          rcode = kRcodeRefused;
        } else if (found.status == ZoneStatus::Found && found.zone) {
          for (const pkarr::ZoneRecord& r : found.zone->records) {
            if (r.relative_name != relative) continue;
            exists = true;
            if (r.record.type != q.type) continue;
            ++matched;
            if (w.put(q.name, r.record.type, r.record.rclass, r.record.ttl, r.record.rdata)) {
              ++ancount;
              answer.min_ttl = ancount == 1 ? r.record.ttl : std::min(answer.min_ttl, r.record.ttl);
            }
          }
          if (!exists) exists = pkarr::name_exists(found.zone->records, relative);
        }
      } else {
        exists = z.static_name_exists(q.name);
      }
    }
    if (rcode == kRcodeNoError && matched == 0) {
      if (!exists) rcode = kRcodeNxDomain;
      if (z.put_negative_soa(w, origin)) ++nscount;
    }
  }

  write_header(rcode, aa);
  if (w.truncated()) knot_wire_set_tc(wire);
  knot_wire_set_qdcount(wire, 1);
  knot_wire_set_ancount(wire, ancount);
  knot_wire_set_nscount(wire, nscount);
  std::size_t size = w.size();
  if (has_opt) {
    knot_edns_set_ext_rcode(&response_opt, static_cast<std::uint8_t>(KNOT_EDNS_RCODE_HI(rcode)));
    const std::size_t opt_size = knot_edns_wire_size(&response_opt);
    w.release(opt_size);
    if (w.put(response_opt, true)) knot_wire_set_arcount(wire, 1);
    size = w.size();
    knot_rrset_clear(&response_opt, nullptr);
  }
  answer.size = size;
  answer.answers = ancount;
  answer.truncated = w.truncated();
  if (rcode == kRcodeNoError) {
    answer.outcome = matched > 0 ? Outcome::Success : Outcome::NotFound;
  } else if (rcode == kRcodeNxDomain) {
    answer.outcome = Outcome::NotFound;
  } else {
    answer.outcome = Outcome::Error;
  }
  return answer;
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
