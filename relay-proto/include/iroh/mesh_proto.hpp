// Wire codec of the relay mesh link (issue 16, docs/mesh.md): the link handshake (a mutual
// challenge/MAC over a pre-shared key) and the presence / forwarding frames. Pure functions over
// byte spans like relay_proto.hpp: no I/O, errors are values, never throws on bad input.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include "iroh/relay_proto.hpp"

namespace iroh::mesh {

using relay::Bytes;
using relay::ByteSpan;
using relay::DecodeError;
using relay::EndpointId;

// docs/mesh.md §3: the link is a WebSocket on this path of the relay listener, with this
// subprotocol.
inline constexpr std::string_view kPath = "/relay/mesh";
inline constexpr std::string_view kSubprotocol = "iroh-relay-mesh-v1";
inline constexpr std::uint8_t kVersion = 1;

using NodeId = std::array<std::uint8_t, 16>;  // random per process start (§4)
using Nonce = std::array<std::uint8_t, 32>;
using Mac = std::array<std::uint8_t, 32>;

// §5: frame types (the first byte of every WebSocket message on the link).
enum class FrameType : std::uint8_t {
  Hello = 1,         // acceptor -> dialer
  Auth = 2,          // dialer -> acceptor
  Accept = 3,        // acceptor -> dialer
  Present = 4,       // acceptor -> dialer
  Gone = 5,          // acceptor -> dialer
  Forward = 6,       // dialer -> acceptor
  Synced = 7,        // acceptor -> dialer: the presence snapshot is complete
  ForwardBatch = 8,  // dialer -> acceptor: several Forwards in one message (§5.1)
};

struct Hello {
  std::uint8_t version = kVersion;
  NodeId node{};
  Nonce nonce{};
};
struct Auth {
  NodeId node{};
  Nonce nonce{};
  Mac mac{};
};
struct Accept {
  Mac mac{};
};
// An endpoint connected (and active) at the sending node. `generation` orders connections of
// the same id across the mesh: the larger one is the newer connection (§6.2).
struct Present {
  EndpointId endpoint;
  std::uint64_t generation = 0;
};
struct Gone {
  EndpointId endpoint;
};
// A datagram for `dst`, a client of the receiving node. `frame` is the encoded
// RelayToClientDatagram(Batch) of relay.md §5 exactly as the client will receive it; it views
// the input buffer after decoding.
struct Forward {
  EndpointId dst;
  ByteSpan frame;
};

// After the snapshot of Present frames that starts every link (§5.4).
struct Synced {};

// §5.1: Forwards the sender had queued, in order, in one message (one write and one read per
// batch instead of per datagram). Each element is checked as a Forward message would be.
struct ForwardBatch {
  std::vector<Forward> forwards;
};

using Frame = std::variant<Hello, Auth, Accept, Present, Gone, Forward, Synced, ForwardBatch>;

// Present, Gone, Hello, Auth, Accept and Synced have a fixed length (BadLength otherwise); unknown
// types are UnknownType; a Forward needs a destination and a frame that decodes as a server
// datagram (relay.md §5.5; the keys inside are not checked: both come from authenticated sources).
relay::DecodeResult<Frame> decode(ByteSpan message);
Bytes encode(const Frame& frame);
// Forward without building a Frame: dst || frame.
Bytes encode_forward(const EndpointId& dst, ByteSpan relay_frame);
// Appends an encoded Forward message (encode_forward's output) to the ForwardBatch message
// `batch` (started when empty). The caller bounds the batch's size.
void append_to_batch(Bytes& batch, ByteSpan forward_message);
// The bytes append_to_batch adds for a Forward message of `forward_message_size` bytes.
inline constexpr std::size_t batch_element_size(std::size_t forward_message_size) {
  return 4 + forward_message_size - 1;
}

// §4: HMAC-SHA256(psk, label || hello.nonce || dialer_nonce || hello.node || dialer_node), label
// "iroh-relay mesh v1 dialer" for Auth and "iroh-relay mesh v1 acceptor" for Accept.
enum class Role { Dialer, Acceptor };
Mac link_mac(ByteSpan psk, Role role, const Hello& hello, const NodeId& dialer_node,
             const Nonce& dialer_nonce);
// Constant-time comparison.
bool mac_equal(const Mac& a, const Mac& b);

}  // namespace iroh::mesh
