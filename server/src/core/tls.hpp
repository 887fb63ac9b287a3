// Server TLS context of the HTTPS listener: TLS 1.2 (AEAD ECDHE suites only) and TLS 1.3.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

namespace iroh::server {

// The suites the HTTPS listeners offer, in the order the server picks from (its order wins over
// the client's: core/tls.cpp says why). TLS 1.2: ECDHE key exchange with AEAD ciphers only (no
// CBC, no static RSA, no DHE); TLS 1.3 suites are all AEAD, listed so a changed OpenSSL default
// cannot add others. The relay benchmark's nginx baselines use the same lists
// (loadtest/relay_openloop/), so every TLS comparison negotiates what the relay does.
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// A certificate chain and its private key, PEM text. Which one the daemon serves is picked once,
// at the top (certificate.hpp), and handed to every service that speaks TLS (issue 14).
struct PemPair {
  std::string chain_pem;
  std::string key_pem;
};

// From PEM text (certificate chain, private key). Throws std::runtime_error when the PEM does not
// parse or the key does not match the certificate. The relay's HTTPS listeners add the ACME
// TLS-ALPN-01 hook on top (certificate.hpp make_https_context).
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const std::string& chain_pem,
                                                                   const std::string& key_pem);

// Whole file as text; throws std::runtime_error naming the file.
std::string read_text_file(const std::string& path);

// SHA-256 of the leaf certificate in `chain_pem`, lowercase hex ("" if it does not parse). For
// log lines: says which certificate is in use without printing it.
std::string certificate_fingerprint(const std::string& chain_pem);

}  // namespace iroh::server
