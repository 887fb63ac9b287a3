// Internal: URL parsing and TLS set-up shared by the relay connection and the HTTP client.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace iroh::client::detail {

struct ParsedUrl {
  bool tls = false;
  std::string host;  // without IPv6 brackets
  bool host_is_ip = false;
  std::uint16_t port = 0;
  std::string host_header;  // Host: value, ":port" only when not the scheme's default
  std::string target;       // path and query, "/" when empty
};

// http:// and ws:// are plain, every other scheme means TLS (relay.md §1). Throws
// RelayClientError(InvalidUrl).
ParsedUrl parse_url(std::string_view text);

// Client context: TLS >= 1.2; verification against `ca_file` or the system roots unless `verify`
// is false. Throws RelayClientError(Tls) when the trust roots cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(
    const std::optional<std::filesystem::path>& ca_file, bool verify);

// SNI (names only) and the host name / IP address the certificate must carry.
void prepare_tls(SSL* ssl, const ParsedUrl& url);

// The handshake error plus, when verification failed, why.
std::string describe_tls_failure(SSL* ssl, const boost::system::error_code& ec);

}  // namespace iroh::client::detail
