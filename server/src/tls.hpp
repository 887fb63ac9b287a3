// Server TLS context of the HTTPS listener: TLS 1.2 (AEAD ECDHE suites only) and TLS 1.3.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include "iroh/config.hpp"

namespace iroh::server {

// Loads tls.manual_cert_path / tls.manual_key_path. Throws config::ConfigError naming the key.
boost::asio::ssl::context make_server_tls_context(const config::Config& config);

}  // namespace iroh::server
