// Feeds arbitrary datagrams to the STUN codec and checks the invariants the server relies on:
// no crash, replies fit the caller buffer and the amplification budget, and replies are STUN.
#include <array>
#include <cstdint>
#include <cstdlib>

#include "iroh/stun.hpp"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace iroh::stun;
  const ByteSpan request(data, size);
  const Endpoint sources[] = {
      Endpoint::v4({203, 0, 113, 7}, 40000),
      Endpoint::v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 3478),
      Endpoint::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, 1),
  };
  for (const Endpoint& source : sources) {
    std::array<std::uint8_t, kMaxResponseSize> out{};
    const HandleResult r =
        handle_datagram(request, source, out, {.software = "iroh-relay fuzz", .fingerprint = true});
    if (r.action != Action::Reply) {
      check(r.size == 0);
      continue;
    }
    check(r.is_request);
    check(r.size <= out.size());
    check(r.size <= size + address_attribute_size(source));
    const ByteSpan reply(out.data(), r.size);
    const DecodeResult d = decode(reply);
    check(d.message.has_value());
    const MessageClass cls = class_of(d.message->type);
    check(cls == (r.success() ? MessageClass::SuccessResponse : MessageClass::ErrorResponse));
    if (d.message->has_magic_cookie && d.message->find(attr::kFingerprint)) {
      check(has_valid_fingerprint(reply));
    }
    if (r.success()) {
      const Attribute* a = d.message->has_magic_cookie ? d.message->find(attr::kXorMappedAddress)
                                                       : d.message->find(attr::kMappedAddress);
      check(a != nullptr);
      const auto mapped = d.message->has_magic_cookie
                              ? decode_xor_address(a->value, d.message->transaction)
                              : decode_address(a->value);
      check(mapped.has_value() && *mapped == source.unmapped());
    }
  }
  // The test-side helpers must be just as robust.
  const DecodeResult d = decode(request);
  if (d.message) {
    for (const Attribute& a : d.message->attributes) {
      (void)decode_address(a.value);
      (void)decode_xor_address(a.value, d.message->transaction);
      (void)decode_error_code(a.value);
      (void)decode_unknown_attributes(a.value);
    }
  }
  (void)has_valid_fingerprint(request);
  return 0;
}
