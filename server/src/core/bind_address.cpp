#include "core/bind_address.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <string>

namespace iroh::server {

boost::asio::ip::address resolve_bind_host(const config::SocketAddr& addr, std::string_view key) {
  namespace asio = boost::asio;
  std::string host = addr.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "*") host = "::";
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (!ec) return ip;
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(host, std::to_string(addr.port),
                                  asio::ip::tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    throw boost::system::system_error(ec ? ec : asio::error::host_not_found,
                                      std::string(key) + ": cannot resolve " + addr.to_string());
  }
  return results.begin()->endpoint().address();
}

std::uint16_t claim_listen_port(const boost::asio::ip::address& ip, std::uint16_t port, bool tcp,
                                std::string_view key) {
  namespace asio = boost::asio;
  asio::io_context io;
  boost::system::error_code ec;
  const auto fail = [&](const char* what) {
    // Without the source location Boost appends to what(): operators read this line.
    throw boost::system::system_error(
        boost::system::error_code(ec.value(), ec.category()),
        std::string(key) + ": cannot " + what + " " + (tcp ? "tcp " : "udp ") +
            (ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string()) + ":" +
            std::to_string(port));
  };
  const auto probe = [&](auto socket, auto endpoint) -> std::uint16_t {
    socket.open(endpoint.protocol(), ec);
    if (ec) fail("open a socket for");
    // For UDP, SO_REUSEADDR would let two sockets share the port, which is what we test for.
    if (tcp) socket.set_option(asio::socket_base::reuse_address(true), ec);
    if (ip.is_v6()) socket.set_option(asio::ip::v6_only(false), ec);
    ec.clear();
    socket.bind(endpoint, ec);
    if (ec) fail("bind");
    return socket.local_endpoint().port();
  };
  if (tcp) return probe(asio::ip::tcp::socket(io), asio::ip::tcp::endpoint(ip, port));
  return probe(asio::ip::udp::socket(io), asio::ip::udp::endpoint(ip, port));
}

}  // namespace iroh::server
