// libFuzzer target: the pkarr codec on untrusted bytes (PUT bodies, stored packets, DNS payloads,
// z32 path segments). Nothing may crash; whatever parses must survive a round trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "iroh/pkarr.hpp"

using namespace iroh::pkarr;

namespace {

void check_records(const std::vector<Record>& records) {
  for (auto compression : {NameCompression::Compressed, NameCompression::Uncompressed}) {
    auto rebuilt = build_dns(records, compression);
    if (auto* dns = std::get_if<Bytes>(&rebuilt)) {
      auto reparsed = parse_dns(*dns);
      if (!std::holds_alternative<std::vector<Record>>(reparsed)) std::abort();
      if (std::get<std::vector<Record>>(reparsed).size() != records.size()) std::abort();
    }
  }
  (void)parse_endpoint_info(records);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan input(data, size);

  auto packet = SignedPacket::from_bytes(input);
  if (auto* p = std::get_if<SignedPacket>(&packet)) {
    const auto answers = p->answers();
    check_records(answers);
    for (const auto& z : zone_records(*p)) (void)lookup({z}, z.relative_name, z.record.type);
    (void)endpoint_info(*p);
    auto again = SignedPacket::from_relay_payload(p->public_key(), p->relay_payload());
    if (!std::holds_alternative<SignedPacket>(again)) std::abort();
  }

  // Signatures stop almost every mutated input above, so the DNS parser gets the bytes directly.
  auto records = parse_dns(input);
  if (auto* r = std::get_if<std::vector<Record>>(&records)) check_records(*r);

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto bytes = z32_decode(text)) {
    if (z32_encode(*bytes) != text) std::abort();  // strict decoding = canonical encoding
  }
  if (auto key = key_from_z32(text)) {
    if (key_to_z32(*key) != text) std::abort();
  }
  return 0;
}
