// Turns a configured listen address ("[::]:3340", "*:3478", "localhost:80") into an IP address:
// one resolver for every listener (TCP and UDP) so they all read the config the same way.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "iroh/config.hpp"

namespace iroh::server {

// Throws boost::system::system_error naming `key` (e.g. "stun_bind_addr") if the host does not
// resolve.
boost::asio::ip::address resolve_bind_host(const config::SocketAddr& addr, std::string_view key);

template <class Endpoint>
Endpoint resolve_bind_endpoint(const config::SocketAddr& addr, std::string_view key) {
  return Endpoint(resolve_bind_host(addr, key), addr.port);
}

// A listener made of several SO_REUSEPORT sockets (one per worker or per UDP socket) lets any
// later socket of the same user join it: a second daemon started on the same port by mistake
// would silently take part of the traffic instead of failing. So before forming such a group the
// address is bound once without SO_REUSEPORT (TCP with SO_REUSEADDR, so TIME_WAIT leftovers do not
// count): that fails the way a single bind would when anyone holds the port, and turns a port of
// 0 into one concrete free port for every socket of the group. The probe is closed again before
// returning. Throws boost::system::system_error naming `key` and the address.
std::uint16_t claim_listen_port(const boost::asio::ip::address& ip, std::uint16_t port, bool tcp,
                                std::string_view key);

template <class Endpoint>
Endpoint claim_listen_endpoint(const Endpoint& endpoint, std::string_view key) {
  constexpr bool tcp = std::is_same_v<typename Endpoint::protocol_type, boost::asio::ip::tcp>;
  return Endpoint(endpoint.address(),
                  claim_listen_port(endpoint.address(), endpoint.port(), tcp, key));
}

}  // namespace iroh::server
