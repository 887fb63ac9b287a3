// Relay clients as raw blocking sockets after the handshake, for open-loop floods: pre-encoded
// masked frames written many per send(), server frames parsed from whatever recv() returns.
// Shared by the flood integration test and loadtest/relay_flood.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "integration/relay_server_test_client.hpp"

namespace iroh::test {

// A client after the relay handshake, as a raw blocking socket.
struct RawClient {
  std::unique_ptr<RelayTestClient> client;  // owns the socket
  int fd = -1;
  relay::SecretKey key = relay::SecretKey::generate();
};

inline RawClient connect_raw(const boost::asio::ip::tcp::endpoint& ep) {
  RawClient out;
  out.client = std::make_unique<RelayTestClient>();
  if (out.client->connect(ep)) throw std::runtime_error("connect failed");
  auto reply = out.client->handshake(out.key);
  if (!reply || reply->empty() || (*reply)[0] != 2) throw std::runtime_error("handshake failed");
  auto& sock = out.client->stream().next_layer();
  out.fd = sock.native_handle();
  sock.non_blocking(false);
  timeval tv{0, 200000};
  ::setsockopt(out.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return out;
}

// A masked client WebSocket frame (mask key 0: valid, and the payload stays as is).
inline void append_ws_frame(std::vector<std::uint8_t>& out, const relay::Bytes& payload) {
  out.push_back(0x82);
  if (payload.size() < 126) {
    out.push_back(std::uint8_t(0x80 | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(0x80 | 126);
    out.push_back(std::uint8_t(payload.size() >> 8));
    out.push_back(std::uint8_t(payload.size()));
  } else {
    out.push_back(0x80 | 127);
    for (int i = 7; i >= 0; --i)
      out.push_back(std::uint8_t(std::uint64_t(payload.size()) >> (8 * i)));
  }
  out.insert(out.end(), 4, 0);
  out.insert(out.end(), payload.begin(), payload.end());
}

// Parses unmasked server frames from a byte stream; calls f(payload) for each binary message.
class ServerFrameParser {
 public:
  template <class F>
  void feed(const std::uint8_t* data, std::size_t n, F&& f) {
    buf_.insert(buf_.end(), data, data + n);
    std::size_t pos = 0;
    for (;;) {
      if (buf_.size() - pos < 2) break;
      std::uint64_t len = buf_[pos + 1] & 0x7F;
      std::size_t head = len == 126 ? 4 : len == 127 ? 10 : 2;
      if (buf_.size() - pos < head) break;
      if (len == 126) len = (std::uint64_t(buf_[pos + 2]) << 8) | buf_[pos + 3];
      if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; ++i) len = (len << 8) | buf_[pos + i];
      }
      if (buf_.size() - pos < head + len) break;
      if ((buf_[pos] & 0x0F) == 0x2) f(buf_.data() + pos + head, std::size_t(len));
      pos += head + len;
    }
    buf_.erase(buf_.begin(), buf_.begin() + std::ptrdiff_t(pos));
  }

 private:
  std::vector<std::uint8_t> buf_;
};

}  // namespace iroh::test
