// libFuzzer: relay frame decoders (both directions, both versions) and their re-encode round trip.
#include <cstdlib>

#include "iroh/relay_proto.hpp"

using namespace iroh::relay;

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

bool same_datagram(const Datagram& a, const Datagram& b) {
  return a.peer == b.peer && a.ecn == b.ecn && a.segment_size == b.segment_size &&
         std::equal(a.contents.begin(), a.contents.end(), b.contents.begin(), b.contents.end());
}

bool same_server_frame(const ServerFrame& a, const ServerFrame& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const auto& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, Datagram>) return same_datagram(x, y);
        if constexpr (std::is_same_v<T, EndpointGone>) return x.endpoint == y.endpoint;
        if constexpr (std::is_same_v<T, Ping> || std::is_same_v<T, Pong>) return x.data == y.data;
        if constexpr (std::is_same_v<T, Health>) return x.text == y.text;
        if constexpr (std::is_same_v<T, Restarting>) {
          return x.reconnect_in_ms == y.reconnect_in_ms && x.try_for_ms == y.try_for_ms;
        }
        if constexpr (std::is_same_v<T, Status>) return x.code == y.code;
      },
      a);
}

void check_client(ByteSpan in) {
  const auto verified = decode_client_frame(in);
  const auto skipped = decode_client_frame(in, KeyCheck::Skip);
  const auto* frame = std::get_if<ClientFrame>(&verified);
  if (!frame) {
    // Skipping the key check changes only the InvalidKey outcome.
    if (std::get<DecodeError>(verified) != DecodeError::InvalidKey) {
      require(std::get<DecodeError>(skipped) == std::get<DecodeError>(verified));
    }
    return;
  }
  require(std::holds_alternative<ClientFrame>(skipped));
  if (const auto* d = std::get_if<Datagram>(frame)) {
    require(!d->contents.empty() && d->peer.is_valid_point());
    const auto again = encode_client_datagram(d->peer, d->ecn, d->segment_size, d->contents);
    if (!again) {
      // Only a decodable frame bigger than what encoders produce may fail to re-encode.
      require(1 + 33 + (d->segment_size ? 2 : 0) + d->contents.size() > kMaxPacketSize);
      return;
    }
    const auto back = decode_client_frame(*again);
    require(same_datagram(std::get<Datagram>(std::get<ClientFrame>(back)), *d));
  } else if (const auto* p = std::get_if<Ping>(frame)) {
    const Bytes again = encode_client_frame(*p);
    require(std::get<Ping>(std::get<ClientFrame>(decode_client_frame(again))).data == p->data);
  } else {
    const auto& pong = std::get<Pong>(*frame);
    const Bytes again = encode_client_frame(pong);
    require(std::get<Pong>(std::get<ClientFrame>(decode_client_frame(again))).data == pong.data);
  }
}

void check_server(ByteSpan in, ProtocolVersion version) {
  const auto verified = decode_server_frame(in, version);
  const auto skipped = decode_server_frame(in, version, KeyCheck::Skip);
  const auto* frame = std::get_if<ServerFrame>(&verified);
  if (!frame) {
    if (std::get<DecodeError>(verified) != DecodeError::InvalidKey) {
      require(std::get<DecodeError>(skipped) == std::get<DecodeError>(verified));
    }
    return;
  }
  require(std::holds_alternative<ServerFrame>(skipped));
  const auto again = encode_server_frame(*frame, version);
  if (!again) {
    // Only oversize datagrams / Health texts are decodable but not encodable.
    require(std::holds_alternative<Datagram>(*frame) || std::holds_alternative<Health>(*frame));
    require(in.size() >= kMaxPacketSize);
    return;
  }
  require(again->size() <= kMaxPacketSize);
  const auto back = decode_server_frame(*again, version);
  require(same_server_frame(std::get<ServerFrame>(back), *frame));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan in(data, size);
  check_client(in);
  check_server(in, ProtocolVersion::V1);
  check_server(in, ProtocolVersion::V2);
  (void)read_varint(in);
  return 0;
}
