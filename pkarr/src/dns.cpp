// DNS wire format through libknot: knot_pkt_parse for parsing, knot_rrset_to_wire_extra (with or
// without a compression context) for building.
extern "C" {
#include <libknot/libknot.h>
}

#include <algorithm>
#include <cstring>
#include <memory>

#include "iroh/pkarr.hpp"
#include "pkarr_internal.hpp"

namespace iroh::pkarr {
namespace {

struct PktDeleter {
  void operator()(knot_pkt_t* pkt) const { knot_pkt_free(pkt); }
};
using PktPtr = std::unique_ptr<knot_pkt_t, PktDeleter>;

// Owns the owner names and the rdata that knot_rrset_add_rdata allocates.
struct RrsetHolder {
  std::vector<Bytes> owners;
  std::vector<knot_rrset_t> rrsets;
  ~RrsetHolder() {
    for (auto& rr : rrsets) knot_rdataset_clear(&rr.rrs, nullptr);
  }
};

bool txt_consistent(const Record& r) {
  if (r.type != kTypeTxt || r.txt.empty()) return true;
  auto encoded = detail::encode_txt(r.txt);
  return encoded && *encoded == r.rdata;
}

// Converts `r` to a one-RR rrset. Each record gets its own rrset because a knot rdataset sorts and
// de-duplicates its members, which would reorder the records.
const knot_rrset_t* make_rrset(const Record& r, RrsetHolder& holder) {
  if (!txt_consistent(r) || r.rdata.size() > 65535 || r.name.empty()) return nullptr;
  Bytes owner(KNOT_DNAME_MAXLEN, 0);
  if (knot_dname_from_str(owner.data(), r.name.c_str(), owner.size()) == nullptr) return nullptr;
  holder.owners.push_back(std::move(owner));
  knot_rrset_t rr;
  knot_rrset_init(&rr, holder.owners.back().data(), r.type, r.rclass, r.ttl);
  if (knot_rrset_add_rdata(&rr, r.rdata.data(), static_cast<std::uint16_t>(r.rdata.size()),
                           nullptr) != KNOT_EOK) {
    return nullptr;
  }
  holder.rrsets.push_back(rr);
  return &holder.rrsets.back();
}

void write_response_header(std::uint8_t* wire) {
  std::memset(wire, 0, KNOT_WIRE_HEADER_SIZE);
  knot_wire_set_qr(wire);
}

// knot_pkt_put compresses only against the question name and within one RRset, so the records
// are written with knot_rrset_to_wire_extra and one compression context kept across all of them:
// an owner is then compressed against the first owner (offset 12, where the QNAME would be) and
// against the previously written name, which reproduces iroh's layout for its own records
// (vector A; iroh also matches older suffixes, which only matters for 3+ distinct owners).
Result<Bytes> build_wire(const std::vector<Record>& answers, NameCompression compression) {
  if (answers.size() > 65535) return Error::TooLarge;
  // Zero-filled: the compression context reads the (still empty) name at offset 12 first.
  Bytes wire(kMaxDnsSize, 0);
  write_response_header(wire.data());
  std::size_t size = KNOT_WIRE_HEADER_SIZE;
  knot_rrinfo_t rrinfo;
  knot_compr_t compr;
  compr.wire = wire.data();
  compr.rrinfo = &rrinfo;
  compr.suffix.pos = 0;
  compr.suffix.labels = 0;
  knot_compr_t* context = compression == NameCompression::Compressed ? &compr : nullptr;
  RrsetHolder holder;
  holder.rrsets.reserve(answers.size());
  for (const Record& r : answers) {
    const knot_rrset_t* rr = make_rrset(r, holder);
    if (rr == nullptr) return Error::BadRecord;
    std::memset(&rrinfo, 0, sizeof(rrinfo));
    int written = knot_rrset_to_wire_extra(
        rr, wire.data() + size, static_cast<std::uint16_t>(wire.size() - size), 0, context, 0);
    if (written == KNOT_ESPACE) return Error::TooLarge;
    if (written < 0) return Error::BadRecord;
    size += static_cast<std::size_t>(written);
  }
  knot_wire_set_ancount(wire.data(), static_cast<std::uint16_t>(answers.size()));
  wire.resize(size);
  return wire;
}

}  // namespace

namespace detail {

std::optional<Bytes> encode_txt(const std::vector<std::string>& strings) {
  Bytes out;
  for (const std::string& s : strings) {
    if (s.size() > 255) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  return out;
}

std::optional<std::vector<std::string>> decode_txt(ByteSpan rdata) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < rdata.size()) {
    std::size_t len = rdata[pos++];
    if (len > rdata.size() - pos) return std::nullopt;
    out.emplace_back(reinterpret_cast<const char*>(rdata.data() + pos), len);
    pos += len;
  }
  return out;
}

std::string to_lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace detail

Record Record::make_txt(std::string name, std::uint32_t ttl, std::vector<std::string> strings) {
  Record r;
  r.name = std::move(name);
  r.type = kTypeTxt;
  r.rclass = kClassIn;
  r.ttl = ttl;
  // An over-long string leaves rdata empty; build_dns then reports BadRecord (txt != rdata).
  r.rdata = detail::encode_txt(strings).value_or(Bytes{});
  r.txt = std::move(strings);
  return r;
}

Result<Bytes> build_dns(const std::vector<Record>& answers, NameCompression compression) {
  return build_wire(answers, compression);
}

Result<std::vector<Record>> parse_dns(ByteSpan message) {
  if (message.size() < KNOT_WIRE_HEADER_SIZE || message.size() > KNOT_WIRE_MAX_PKTSIZE) {
    return Error::BadDns;
  }
  // knot_pkt_parse may rewrite the wire (it strips a TSIG RR), so it gets a private copy.
  Bytes wire(message.begin(), message.end());
  PktPtr pkt(knot_pkt_new(wire.data(), static_cast<std::uint16_t>(wire.size()), nullptr));
  if (!pkt) return Error::BadDns;
  // KNOT_PF_NOCANON keeps owner names in their original case.
  if (knot_pkt_parse(pkt.get(), KNOT_PF_NOCANON) != KNOT_EOK) return Error::BadDns;

  std::vector<Record> out;
  const knot_pktsection_t* answer = knot_pkt_section(pkt.get(), KNOT_ANSWER);
  knot_dname_txt_storage_t name_text;
  for (std::uint16_t i = 0; i < answer->count; ++i) {
    const knot_rrset_t* rr = knot_pkt_rr(answer, i);
    if (knot_dname_to_str(name_text, rr->owner, sizeof(name_text)) == nullptr) {
      return Error::BadDns;
    }
    for (std::uint16_t j = 0; j < rr->rrs.count; ++j) {
      const knot_rdata_t* rdata = knot_rdataset_at(&rr->rrs, j);
      Record r;
      r.name = name_text;
      r.type = rr->type;
      r.rclass = rr->rclass;
      r.ttl = rr->ttl;
      r.rdata.assign(rdata->data, rdata->data + rdata->len);
      if (r.type == kTypeTxt) {
        auto strings = detail::decode_txt(r.rdata);
        if (!strings) return Error::BadDns;
        r.txt = std::move(*strings);
      }
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace iroh::pkarr
