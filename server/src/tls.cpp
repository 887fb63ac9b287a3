#include "tls.hpp"

#include <openssl/ssl.h>

#include "log.hpp"

namespace iroh::server {

namespace ssl = boost::asio::ssl;

boost::asio::ssl::context make_server_tls_context(const config::Config& config) {
  const auto& tls = *config.tls;
  const std::string source = config.source.string();
  if (tls.cert_mode == config::CertMode::LetsEncrypt) {
    throw config::ConfigError(source, 0, "tls.cert_mode",
                              "LetsEncrypt is not supported by this build yet; use Manual");
  }
  if (tls.cert_mode == config::CertMode::Reloading) {
    log::warn("tls.cert_mode Reloading: certificates are loaded once at startup");
  }
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(native,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  // Idle relay clients should not pin 16 KiB+ TLS buffers each.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);

  boost::system::error_code ec;
  ctx.use_certificate_chain_file(tls.manual_cert_path.string(), ec);
  if (ec) {
    throw config::ConfigError(
        source, 0, "tls.manual_cert_path",
        "cannot load certificate chain " + tls.manual_cert_path.string() + ": " + ec.message());
  }
  ctx.use_private_key_file(tls.manual_key_path.string(), ssl::context::pem, ec);
  if (ec) {
    throw config::ConfigError(
        source, 0, "tls.manual_key_path",
        "cannot load private key " + tls.manual_key_path.string() + ": " + ec.message());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw config::ConfigError(source, 0, "tls.manual_key_path",
                              "private key does not match the certificate");
  }
  return ctx;
}

}  // namespace iroh::server
