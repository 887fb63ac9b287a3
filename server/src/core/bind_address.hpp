// Turns a configured listen address ("[::]:3340", "*:3478", "localhost:80") into an IP address:
// one resolver for every listener (TCP and UDP) so they all read the config the same way.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <string_view>

#include "iroh/config.hpp"

namespace iroh::server {

// Throws boost::system::system_error naming `key` (e.g. "stun_bind_addr") if the host does not
// resolve.
boost::asio::ip::address resolve_bind_host(const config::SocketAddr& addr, std::string_view key);

template <class Endpoint>
Endpoint resolve_bind_endpoint(const config::SocketAddr& addr, std::string_view key) {
  return Endpoint(resolve_bind_host(addr, key), addr.port);
}

}  // namespace iroh::server
