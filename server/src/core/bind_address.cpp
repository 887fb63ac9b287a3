#include "core/bind_address.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
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

}  // namespace iroh::server
