// libFuzzer target for the QAD server's QUIC codec: headers, Initial packet opening, frames and
// transport parameters must never crash or hang on arbitrary bytes.
#include <cstddef>
#include <cstdint>

#include "iroh/quic/crypto.hpp"
#include "iroh/quic/packet.hpp"

namespace quic = iroh::quic;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const quic::ByteSpan in(data, size);
  quic::ByteSpan rest = in;
  // Walk the datagram like the server does: one packet after another.
  for (int i = 0; i < 8 && !rest.empty(); ++i) {
    auto header = quic::parse_packet_header(rest, 8);
    if (!header || header->packet_size == 0 || header->packet_size > rest.size()) break;
    if (header->version == quic::kVersion1 && header->type == quic::PacketType::Initial) {
      const auto keys = quic::derive_initial_keys(header->dcid);
      auto opened = quic::open_packet(rest.first(header->packet_size), *header, keys.client, 0);
      if (opened) (void)quic::parse_frames(opened->payload);
    }
    rest = rest.subspan(header->packet_size);
  }
  (void)quic::parse_frames(in);
  (void)quic::decode_transport_parameters(in);
  return 0;
}
