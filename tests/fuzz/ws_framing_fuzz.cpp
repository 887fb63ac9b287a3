// Feeds arbitrary bytes, as a relay client's stream after the upgrade, to the WebSocket frame
// header parser of the relay data plane (server/src/relay/ws_framing.hpp, RFC 6455 §5.2) and checks
// what the reader relies on: no read past the bytes given, NeedMore always asks for more than it
// has, an accepted header lies inside the input with its mask, and control frames are small.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "relay/ws_framing.hpp"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace ws = iroh::server::ws;
  // A copy of exactly `size` bytes, so ASan flags any read past the end.
  std::vector<std::uint8_t> stream(data, data + size);
  std::size_t at = 0;
  while (at < stream.size()) {
    ws::ClientHeader header;
    std::size_t need = 0;
    const char* error = nullptr;
    const std::size_t left = stream.size() - at;
    const ws::Parse result = ws::parse_client_header(stream.data() + at, left, header, need, error);
    if (result == ws::Parse::NeedMore) {
      check(need > left);
      break;
    }
    if (result == ws::Parse::Error) {
      check(error != nullptr);
      break;
    }
    check(header.header_len == 6 || header.header_len == 8 || header.header_len == 14);
    check(header.header_len <= left);
    check(header.mask == stream.data() + at + header.header_len - 4);
    if (header.opcode & 0x8) check(header.fin && header.payload_len <= 125);
    const std::size_t body_left = left - header.header_len;
    if (header.payload_len > body_left) break;  // the reader would wait for the rest
    const auto len = static_cast<std::size_t>(header.payload_len);
    std::uint8_t* payload = stream.data() + at + header.header_len;
    ws::unmask(payload, len, header.mask);
    ws::unmask(payload, len, header.mask);  // masking twice is the identity
    check(std::equal(payload, payload + len, data + at + header.header_len));
    at += header.header_len + len;
  }
  // The server's own header for a payload of the input's size parses back as that size once
  // masked (the client direction differs only in the mask bit and key).
  std::uint8_t out[ws::kMaxServerHeader + 4];
  const std::size_t n = ws::encode_server_header(ws::kBinary, size, out);
  check(n >= 2 && n <= ws::kMaxServerHeader);
  out[1] |= 0x80;
  out[n] = out[n + 1] = out[n + 2] = out[n + 3] = 0x5a;
  ws::ClientHeader back;
  std::size_t need = 0;
  const char* error = nullptr;
  check(ws::parse_client_header(out, n + 4, back, need, error) == ws::Parse::Ok);
  check(back.payload_len == size && back.fin && back.opcode == ws::kBinary);
  return 0;
}
