// libFuzzer: handshake message decoder, the keying-material header and EndpointId text forms.
#include <cstdlib>
#include <string_view>

#include "iroh/relay_proto.hpp"

using namespace iroh::relay;

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

bool same_message(const HandshakeMessage& a, const HandshakeMessage& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const auto& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, ServerChallenge>) return x.challenge == y.challenge;
        if constexpr (std::is_same_v<T, ClientAuth>) {
          return x.public_key == y.public_key && x.signature == y.signature;
        }
        if constexpr (std::is_same_v<T, ServerConfirmsAuth>) return true;
        if constexpr (std::is_same_v<T, ServerDeniesAuth>) return x.reason == y.reason;
      },
      a);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan in(data, size);
  const auto decoded = decode_handshake(in);
  if (const auto* msg = std::get_if<HandshakeMessage>(&decoded)) {
    const Bytes again = encode(*msg);
    const auto back = decode_handshake(again);
    require(same_message(std::get<HandshakeMessage>(back), *msg));
  }

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The header decoder is strict, so a decodable value has exactly one encoding.
  if (const auto auth = decode_auth_header(text)) {
    require(encode_auth_header(*auth) == text);
  }
  if (const auto id = EndpointId::parse(text)) {
    require(id->is_valid_point());
    require(EndpointId::parse(id->to_hex()) == id);
  }
  (void)negotiate_subprotocol(text);
  return 0;
}
