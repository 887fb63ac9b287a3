// docs/mesh.md §4-§5.
#include "iroh/mesh_proto.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace iroh::mesh {

namespace {

constexpr std::size_t kHelloLen = 1 + 16 + 32;
constexpr std::size_t kAuthLen = 16 + 32 + 32;
constexpr std::size_t kAcceptLen = 32;
constexpr std::size_t kPresentLen = 32 + 8;
constexpr std::size_t kGoneLen = 32;

template <std::size_t N>
void put(Bytes& out, const std::array<std::uint8_t, N>& a) {
  out.insert(out.end(), a.begin(), a.end());
}

template <std::size_t N>
void take(ByteSpan& in, std::array<std::uint8_t, N>& a) {
  std::memcpy(a.data(), in.data(), N);
  in = in.subspan(N);
}

// A Forward's body (dst || frame): the embedded frame must be a datagram a client can take
// (relay.md §5.5); the version does not matter for datagrams.
relay::DecodeResult<Forward> decode_forward(ByteSpan in) {
  if (in.size() < 32) return DecodeError::Truncated;
  Forward f;
  take(in, f.dst.bytes);
  auto inner = relay::decode_server_frame(in, relay::ProtocolVersion::V2, relay::KeyCheck::Skip);
  if (auto* err = std::get_if<DecodeError>(&inner)) return *err;
  if (!std::holds_alternative<relay::Datagram>(std::get<relay::ServerFrame>(inner))) {
    return DecodeError::WrongDirection;
  }
  f.frame = in;
  return f;
}

}  // namespace

Bytes encode_forward(const EndpointId& dst, ByteSpan relay_frame) {
  Bytes out;
  out.reserve(1 + 32 + relay_frame.size());
  out.push_back(static_cast<std::uint8_t>(FrameType::Forward));
  put(out, dst.bytes);
  out.insert(out.end(), relay_frame.begin(), relay_frame.end());
  return out;
}

void append_to_batch(Bytes& batch, ByteSpan forward_message) {
  if (batch.empty()) batch.push_back(static_cast<std::uint8_t>(FrameType::ForwardBatch));
  const auto body = forward_message.subspan(1);  // without the Forward type byte
  const auto n = static_cast<std::uint32_t>(body.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    batch.push_back(static_cast<std::uint8_t>(n >> shift));
  batch.insert(batch.end(), body.begin(), body.end());
}

Bytes encode(const Frame& frame) {
  Bytes out;
  std::visit(
      [&out](const auto& f) {
        using T = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<T, Hello>) {
          out.push_back(static_cast<std::uint8_t>(FrameType::Hello));
          out.push_back(f.version);
          put(out, f.node);
          put(out, f.nonce);
        } else if constexpr (std::is_same_v<T, Auth>) {
          out.push_back(static_cast<std::uint8_t>(FrameType::Auth));
          put(out, f.node);
          put(out, f.nonce);
          put(out, f.mac);
        } else if constexpr (std::is_same_v<T, Accept>) {
          out.push_back(static_cast<std::uint8_t>(FrameType::Accept));
          put(out, f.mac);
        } else if constexpr (std::is_same_v<T, Present>) {
          out.push_back(static_cast<std::uint8_t>(FrameType::Present));
          put(out, f.endpoint.bytes);
          for (int shift = 56; shift >= 0; shift -= 8) {
            out.push_back(static_cast<std::uint8_t>(f.generation >> shift));
          }
        } else if constexpr (std::is_same_v<T, Gone>) {
          out.push_back(static_cast<std::uint8_t>(FrameType::Gone));
          put(out, f.endpoint.bytes);
        } else if constexpr (std::is_same_v<T, Synced>) {
          out.push_back(static_cast<std::uint8_t>(FrameType::Synced));
        } else if constexpr (std::is_same_v<T, ForwardBatch>) {
          for (const auto& fw : f.forwards) append_to_batch(out, encode_forward(fw.dst, fw.frame));
        } else {
          out = encode_forward(f.dst, f.frame);
        }
      },
      frame);
  return out;
}

relay::DecodeResult<Frame> decode(ByteSpan message) {
  if (message.empty()) return DecodeError::Empty;
  const auto type = message[0];
  ByteSpan in = message.subspan(1);
  auto exact = [&in](std::size_t n) { return in.size() == n; };
  switch (static_cast<FrameType>(type)) {
    case FrameType::Hello: {
      if (!exact(kHelloLen)) return DecodeError::BadLength;
      Hello h;
      h.version = in[0];
      in = in.subspan(1);
      take(in, h.node);
      take(in, h.nonce);
      return h;
    }
    case FrameType::Auth: {
      if (!exact(kAuthLen)) return DecodeError::BadLength;
      Auth a;
      take(in, a.node);
      take(in, a.nonce);
      take(in, a.mac);
      return a;
    }
    case FrameType::Accept: {
      if (!exact(kAcceptLen)) return DecodeError::BadLength;
      Accept a;
      take(in, a.mac);
      return a;
    }
    case FrameType::Present: {
      if (!exact(kPresentLen)) return DecodeError::BadLength;
      Present p;
      take(in, p.endpoint.bytes);
      for (int i = 0; i < 8; ++i) p.generation = (p.generation << 8) | in[std::size_t(i)];
      return p;
    }
    case FrameType::Gone: {
      if (!exact(kGoneLen)) return DecodeError::BadLength;
      Gone g;
      take(in, g.endpoint.bytes);
      return g;
    }
    case FrameType::Forward: {
      auto f = decode_forward(in);
      if (auto* err = std::get_if<DecodeError>(&f)) return *err;
      return std::get<Forward>(f);
    }
    case FrameType::ForwardBatch: {
      // §5.1: (length u32 || Forward body)+; one bad element refuses the whole message.
      if (in.empty()) return DecodeError::BadLength;
      ForwardBatch b;
      while (!in.empty()) {
        if (in.size() < 4) return DecodeError::Truncated;
        const std::size_t n =
            std::size_t{in[0]} << 24 | std::size_t{in[1]} << 16 | std::size_t{in[2]} << 8 | in[3];
        in = in.subspan(4);
        if (n > in.size()) return DecodeError::Truncated;
        auto f = decode_forward(in.first(n));
        if (auto* err = std::get_if<DecodeError>(&f)) return *err;
        b.forwards.push_back(std::get<Forward>(f));
        in = in.subspan(n);
      }
      return b;
    }
    case FrameType::Synced:
      if (!exact(0)) return DecodeError::BadLength;
      return Synced{};
  }
  return DecodeError::UnknownType;
}

Mac link_mac(ByteSpan psk, Role role, const Hello& hello, const NodeId& dialer_node,
             const Nonce& dialer_nonce) {
  static constexpr std::string_view kDialer = "iroh-relay mesh v1 dialer";
  static constexpr std::string_view kAcceptor = "iroh-relay mesh v1 acceptor";
  const std::string_view label = role == Role::Dialer ? kDialer : kAcceptor;
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, psk.data(), psk.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(label.data()),
                                label.size());
  crypto_auth_hmacsha256_update(&st, hello.nonce.data(), hello.nonce.size());
  crypto_auth_hmacsha256_update(&st, dialer_nonce.data(), dialer_nonce.size());
  crypto_auth_hmacsha256_update(&st, hello.node.data(), hello.node.size());
  crypto_auth_hmacsha256_update(&st, dialer_node.data(), dialer_node.size());
  Mac mac{};
  crypto_auth_hmacsha256_final(&st, mac.data());
  return mac;
}

bool mac_equal(const Mac& a, const Mac& b) {
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace iroh::mesh
