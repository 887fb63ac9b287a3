// Address helpers shared by every listener and limiter: one definition of how an IPv4 client on a
// dual-stack socket is seen, and of which addresses share one limit. Header-only (Boost.Asio's
// address types are), so the I/O-free QUIC code and its fuzz targets use it without linking.
#pragma once

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <string>

namespace iroh::server::net {

// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2); they are counted,
// logged and reported (QAD, spec §7.1) as the IPv4 address.
inline boost::asio::ip::address unmapped(const boost::asio::ip::address& address) {
  namespace ip = boost::asio::ip;
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, address.to_v6());
  }
  return address;
}

// The 16 bytes of an address, IPv4 as v4-mapped IPv6, so that one table keys both families.
inline std::array<std::uint8_t, 16> v6_bytes(const boost::asio::ip::address& address) {
  namespace ip = boost::asio::ip;
  if (address.is_v4()) return ip::make_address_v6(ip::v4_mapped, address.to_v4()).to_bytes();
  return address.to_v6().to_bytes();
}

// v6_bytes with the host bits cleared: the first `ipv4_prefix` bits of an IPv4 (or v4-mapped)
// address, the first `ipv6_prefix` of an IPv6 one (each clamped to the family's length). Sources
// with the same key share one rate limit (one /64 is one site; issue 19 item 4). The v4-mapped
// prefix ::ffff:0:0/96 is kept whole, so IPv4 keys never collide with IPv6 ones.
inline std::array<std::uint8_t, 16> prefix_key(const boost::asio::ip::address& address,
                                               unsigned ipv4_prefix, unsigned ipv6_prefix) {
  std::array<std::uint8_t, 16> bytes = v6_bytes(address);
  const bool v4 = address.is_v4() || address.to_v6().is_v4_mapped();
  const unsigned bits = v4 ? 96 + std::min(ipv4_prefix, 32u) : std::min(ipv6_prefix, 128u);
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned keep = bits > i * 8 ? std::min(8u, bits - i * 8) : 0;
    bytes[i] &= static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return bytes;
}

// "127.0.0.1:80" / "[::1]:443" for log lines, the one format of every listener (relay, metrics,
// DNS): an IPv4 client on a dual-stack listener is shown as IPv4. Any Asio endpoint (tcp, udp).
template <class Endpoint>
std::string format_endpoint(const Endpoint& ep) {
  const boost::asio::ip::address addr = unmapped(ep.address());
  if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

}  // namespace iroh::server::net
