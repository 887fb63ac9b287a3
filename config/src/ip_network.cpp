// IpNetwork: the address prefixes of trusted_proxies (issue 19 item 4).
#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

#include "iroh/config.hpp"

namespace iroh::config {

std::optional<IpNetwork> IpNetwork::parse(std::string_view text) {
  IpNetwork network;
  network.text = std::string(text);
  std::string_view host = text;
  std::optional<unsigned> length;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    host = text.substr(0, slash);
    std::string_view digits = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
      return std::nullopt;
    }
    length = value;
  }
  const std::string host_text(host);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host_text.c_str(), &v4) == 1) {
    if (length && *length > 32) return std::nullopt;
    // ::ffff:a.b.c.d
    network.address[10] = 0xff;
    network.address[11] = 0xff;
    std::memcpy(network.address.data() + 12, &v4, 4);
    network.prefix_len = 96 + length.value_or(32);
  } else if (inet_pton(AF_INET6, host_text.c_str(), &v6) == 1) {
    if (length && *length > 128) return std::nullopt;
    std::memcpy(network.address.data(), &v6, 16);
    network.prefix_len = length.value_or(128);
  } else {
    return std::nullopt;
  }
  // Host bits cleared, so that "10.1.2.3/8" means 10.0.0.0/8.
  for (unsigned bit = network.prefix_len; bit < 128; ++bit) {
    network.address[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return network;
}

bool IpNetwork::contains(const std::array<std::uint8_t, 16>& bytes) const {
  const unsigned whole = prefix_len / 8;
  if (std::memcmp(bytes.data(), address.data(), whole) != 0) return false;
  if (prefix_len % 8 == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> (prefix_len % 8));
  return (bytes[whole] & mask) == address[whole];
}

}  // namespace iroh::config
