// libFuzzer target for the QAD connection state machine before address validation: the input is
// a script of Initial packets (payloads the fuzzer chooses, correctly protected by the harness so
// they reach the frame and TLS layers), raw datagrams and clock advances. Besides not crashing,
// the connection must never send more than 3x what it received (RFC 9000 §8.1), and every
// packet it sends must open with the server's Initial keys when it is an Initial.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "iroh/quic/connection.hpp"
#include "iroh/quic/packet.hpp"
#include "iroh/quic/tls.hpp"

namespace quic = iroh::quic;

namespace {

std::shared_ptr<quic::ServerCredentials> credentials() {
  static const std::shared_ptr<quic::ServerCredentials> shared = [] {
    auto pem = quic::generate_self_signed_certificate("localhost");
    std::string error;
    return pem ? quic::ServerCredentials::from_pem(*pem, error) : nullptr;
  }();
  return shared;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto creds = credentials();
  if (!creds) return 0;
  const quic::Bytes dcid = {1, 2, 3, 4, 5, 6, 7, 8};
  const quic::Bytes scid = {9, 10, 11, 12};
  const auto keys = quic::derive_initial_keys(dcid);
  quic::PacketHeader first;
  first.type = quic::PacketType::Initial;
  first.version = quic::kVersion1;
  first.dcid = dcid;
  first.scid = scid;
  const quic::UdpEndpoint peer(boost::asio::ip::make_address_v4("192.0.2.1"), 4242);
  auto now = quic::Clock::time_point{} + std::chrono::hours(1);
  const quic::StatelessResetKey reset_key{};  // fixed: runs must be reproducible
  quic::QadConnection connection(creds, first, peer, quic::Bytes(8, 0xaa), {}, reset_key, now);

  std::size_t received = 0;
  std::size_t sent = 0;
  std::uint64_t pn = 0;
  std::size_t pos = 0;
  for (int step = 0; step < 32 && pos + 3 <= size; ++step) {
    const std::uint8_t kind = data[pos];
    std::size_t length = (static_cast<std::size_t>(data[pos + 1]) << 8) | data[pos + 2];
    pos += 3;
    length = std::min(length, size - pos);
    const quic::ByteSpan chunk(data + pos, length);
    pos += length;
    switch (kind % 3) {
      case 0: {  // protected Initial carrying the chunk as its payload, padded to 1200 bytes
        if (chunk.empty() || chunk.size() > 1100) break;
        const quic::Bytes header = quic::build_long_header(
            quic::PacketType::Initial, quic::kVersion1, dcid, scid, {}, pn, 4, chunk.size());
        auto packet = quic::protect_packet(header, 4, pn, chunk, keys.client);
        ++pn;
        if (!packet) break;
        packet->resize(std::max<std::size_t>(packet->size(), 1200), 0);
        received += packet->size();
        connection.on_datagram(*packet, peer, now);
        break;
      }
      case 1:  // clock advance
        now += std::chrono::milliseconds(length * 10 + (chunk.empty() ? 1 : chunk[0]));
        connection.on_timeout(now);
        break;
      default:
        received += chunk.size();
        connection.on_datagram(chunk, peer, now);
        break;
    }
    for (const auto& datagram : connection.take_datagrams(now)) {
      sent += datagram.data.size();
      auto header = quic::parse_packet_header(datagram.data, scid.size());
      if (!header) __builtin_trap();
      if (header->type == quic::PacketType::Initial &&
          !quic::open_packet(quic::ByteSpan(datagram.data).first(header->packet_size), *header,
                             keys.server, 0)) {
        __builtin_trap();
      }
    }
    if (sent > 3 * received) __builtin_trap();
    if (connection.state() == quic::QadConnection::State::Closed) break;
  }
  return 0;
}
