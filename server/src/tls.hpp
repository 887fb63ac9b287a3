// Server TLS context of the HTTPS listener: TLS 1.2 (AEAD ECDHE suites only) and TLS 1.3.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "iroh/config.hpp"

namespace iroh::server {

// Loads tls.manual_cert_path / tls.manual_key_path. Throws config::ConfigError naming the key.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const config::Config& config);
// The same for any TLS section (the lookup listener's own, issue 17); errors name
// `<section>.<key>` in `source`.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const config::TlsConfig& tls,
                                                                   const std::string& source,
                                                                   const std::string& section);

// The same from PEM text (certificate chain, private key). Throws std::runtime_error when the
// PEM does not parse or the key does not match the certificate.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const std::string& chain_pem,
                                                                   const std::string& key_pem);

// Whole file as text; throws std::runtime_error naming the file.
std::string read_text_file(const std::string& path);

// SHA-256 of the leaf certificate in `chain_pem`, lowercase hex ("" if it does not parse). For
// log lines: says which certificate is in use without printing it.
std::string certificate_fingerprint(const std::string& chain_pem);

}  // namespace iroh::server
