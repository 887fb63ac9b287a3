// The one place that picks the certificate the daemon serves (issue 14 "picks the certificate
// once"): the daemon calls pick_certificate() once at construction and hands the pair to the
// relay's HTTPS listener, and wiring.cpp hands the same pair to QAD; the ACME service replaces it
// later through Daemon::reload_certificate. Sits at the top with the daemon because it draws on
// acme/ (cached ACME certificate, TLS-ALPN-01) and qad/ (self-signed generation).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "core/tls.hpp"
#include "iroh/config.hpp"

namespace iroh::server {

// The chain + key a TLS section asks for: LetsEncrypt -> the cached ACME certificate, or a
// temporary self-signed one until the first issuance; SelfSigned -> a new self-signed one for the
// first hostname (or localhost); Manual -> manual_cert_path / manual_key_path, checked to match.
// Throws config::ConfigError naming `<section>.<key>` in `source` for files that cannot be used.
PemPair pick_certificate(const config::TlsConfig& tls, const std::string& source,
                         const std::string& section);

// The HTTPS listeners' context for `pem`: core/tls.hpp's settings plus the ACME TLS-ALPN-01
// responder (RFC 8737), so pending validations answer on every HTTPS listener. Throws
// std::runtime_error on bad PEM or a key that does not match.
std::shared_ptr<boost::asio::ssl::context> make_https_context(const PemPair& pem);

}  // namespace iroh::server
