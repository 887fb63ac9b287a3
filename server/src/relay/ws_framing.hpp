// WebSocket framing for the relay phase (RFC 6455 §5.2). After the upgrade the relay frames
// WebSocket itself instead of through Beast, so that one read can yield many frames and one write
// can carry many: server frames are unmasked and never fragmented; client frames must be masked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace iroh::server::ws {

inline constexpr std::uint8_t kContinuation = 0x0;
inline constexpr std::uint8_t kText = 0x1;
inline constexpr std::uint8_t kBinary = 0x2;
inline constexpr std::uint8_t kClose = 0x8;
inline constexpr std::uint8_t kPing = 0x9;
inline constexpr std::uint8_t kPong = 0xA;
// Longest server frame header: 2 bytes + 64-bit length.
inline constexpr std::size_t kMaxServerHeader = 10;

// Writes the header of an unmasked, final server frame into `out` (kMaxServerHeader bytes of
// room); returns its length.
inline std::size_t encode_server_header(std::uint8_t opcode, std::size_t len, std::uint8_t* out) {
  out[0] = std::uint8_t(0x80 | opcode);
  if (len < 126) {
    out[1] = std::uint8_t(len);
    return 2;
  }
  if (len <= 0xFFFF) {
    out[1] = 126;
    out[2] = std::uint8_t(len >> 8);
    out[3] = std::uint8_t(len);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = std::uint8_t(std::uint64_t(len) >> (56 - 8 * i));
  return 10;
}

// XORs `data` with the 4-byte masking key (RFC 6455 §5.3), 64 bytes per step in 16-byte vectors
// (GCC/Clang vector extensions: SSE2 on any x86-64, NEON on arm64), so unmasking a 1200-byte
// datagram is ~20 steps rather than 150 (issue 13: it was the reader's largest own cost).
inline void unmask(std::uint8_t* data, std::size_t len, const std::uint8_t* key) {
  using Block = std::uint8_t __attribute__((vector_size(16)));
  Block k;
  for (std::size_t j = 0; j < sizeof k; ++j) k[j] = key[j % 4];
  std::size_t i = 0;
  for (; i + 4 * sizeof k <= len; i += 4 * sizeof k) {
    Block a, b, c, d;  // four registers: loads, XORs and stores without a trip through the stack
    std::memcpy(&a, data + i, sizeof a);
    std::memcpy(&b, data + i + 16, sizeof b);
    std::memcpy(&c, data + i + 32, sizeof c);
    std::memcpy(&d, data + i + 48, sizeof d);
    a ^= k;
    b ^= k;
    c ^= k;
    d ^= k;
    std::memcpy(data + i, &a, sizeof a);
    std::memcpy(data + i + 16, &b, sizeof b);
    std::memcpy(data + i + 32, &c, sizeof c);
    std::memcpy(data + i + 48, &d, sizeof d);
  }
  for (; i + sizeof k <= len; i += sizeof k) {
    Block v;
    std::memcpy(&v, data + i, sizeof v);
    v ^= k;
    std::memcpy(data + i, &v, sizeof v);
  }
  for (; i < len; ++i) data[i] ^= key[i % 4];
}

struct ClientHeader {
  bool fin = false;
  std::uint8_t opcode = 0;
  std::uint64_t payload_len = 0;
  std::size_t header_len = 0;  // including the 4-byte masking key
  const std::uint8_t* mask = nullptr;
};

enum class Parse { NeedMore, Ok, Error };

// Parses the header of a client frame at data[0..n). NeedMore: `need` holds the bytes required
// before calling again. Error: `error` says why (reserved bits, unmasked frame, bad control frame,
// unknown opcode). Message-level rules (continuations, sizes) are the caller's.
inline Parse parse_client_header(const std::uint8_t* data, std::size_t n, ClientHeader& out,
                                 std::size_t& need, const char*& error) {
  need = 2;
  if (n < 2) return Parse::NeedMore;
  const std::uint8_t b0 = data[0], b1 = data[1];
  if (b0 & 0x70) {
    error = "reserved bits set";
    return Parse::Error;
  }
  if (!(b1 & 0x80)) {
    error = "unmasked client frame";
    return Parse::Error;
  }
  out.fin = b0 & 0x80;
  out.opcode = b0 & 0x0F;
  std::uint64_t len = b1 & 0x7F;
  const std::size_t len_bytes = len == 126 ? 2 : len == 127 ? 8 : 0;
  need = 2 + len_bytes + 4;
  if (n < need) return Parse::NeedMore;
  if (len == 126) {
    len = (std::uint64_t(data[2]) << 8) | data[3];
  } else if (len == 127) {
    len = 0;
    for (int i = 2; i < 10; ++i) len = (len << 8) | data[i];
  }
  const bool control = out.opcode & 0x8;
  if (control) {
    if (!out.fin || len > 125) {
      error = "bad control frame";
      return Parse::Error;
    }
    if (out.opcode != kClose && out.opcode != kPing && out.opcode != kPong) {
      error = "unknown opcode";
      return Parse::Error;
    }
  } else if (out.opcode != kContinuation && out.opcode != kText && out.opcode != kBinary) {
    error = "unknown opcode";
    return Parse::Error;
  }
  out.payload_len = len;
  out.header_len = need;
  out.mask = data + 2 + len_bytes;
  return Parse::Ok;
}

}  // namespace iroh::server::ws
