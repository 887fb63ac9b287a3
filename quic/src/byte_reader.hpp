// The bounds-checked reading the packet, frame and transport-parameter codecs share (private to
// quic/src/): one home instead of a copy per codec file.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "iroh/quic/packet.hpp"
#include "iroh/relay_proto.hpp"

namespace iroh::quic::detail {

// The largest value a QUIC variable-length integer holds (RFC 9000 §16).
inline constexpr std::uint64_t kMaxVarint = (std::uint64_t{1} << 62) - 1;

// Bytes of the shortest encoding of `v` (RFC 9000 §16), as relay::write_varint writes it.
inline std::size_t varint_size(std::uint64_t v) {
  if (v < 64) return 1;
  if (v < 16384) return 2;
  if (v < (1u << 30)) return 4;
  return 8;
}

// Sequential reader over a span; every read checks bounds.
class Reader {
 public:
  explicit Reader(ByteSpan in) : in_(in) {}

  bool empty() const { return pos_ >= in_.size(); }
  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return in_.size() - pos_; }

  std::optional<std::uint64_t> varint() {
    auto v = relay::read_varint(in_.subspan(pos_));
    if (!v) return std::nullopt;
    pos_ += v->length;
    return v->value;
  }
  // The next byte without consuming it.
  std::optional<std::uint8_t> peek() const {
    if (empty()) return std::nullopt;
    return in_[pos_];
  }
  std::optional<std::uint8_t> u8() {
    if (remaining() < 1) return std::nullopt;
    return in_[pos_++];
  }
  std::optional<std::uint32_t> u32() {
    if (remaining() < 4) return std::nullopt;
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | in_[pos_++];
    return v;
  }
  std::optional<ByteSpan> bytes(std::uint64_t n) {
    if (n > remaining()) return std::nullopt;
    ByteSpan out = in_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return out;
  }
  template <std::size_t N>
  std::optional<std::array<std::uint8_t, N>> array() {
    auto b = bytes(N);
    if (!b) return std::nullopt;
    std::array<std::uint8_t, N> out{};
    std::copy(b->begin(), b->end(), out.begin());
    return out;
  }

 private:
  ByteSpan in_;
  std::size_t pos_ = 0;
};

}  // namespace iroh::quic::detail
