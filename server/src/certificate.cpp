#include "certificate.hpp"

#include <stdexcept>

#include "acme/certificate_store.hpp"
#include "acme/tls_alpn.hpp"
#include "iroh/quic/tls.hpp"

namespace iroh::server {

PemPair pick_certificate(const config::TlsConfig& tls, const std::string& source,
                         const std::string& section) {
  if (tls.cert_mode == config::CertMode::LetsEncrypt) {
    // The cached ACME certificate, or a temporary self-signed one until the ACME service
    // (acme/acme_service.hpp) installs the first issued certificate.
    return acme::startup_certificate(tls);
  }
  if (tls.cert_mode == config::CertMode::SelfSigned) {
    auto pem = quic::generate_self_signed_certificate(tls.hostname.empty() ? "localhost"
                                                                           : tls.hostname[0]);
    if (!pem) throw std::runtime_error("cannot generate a self-signed certificate");
    return PemPair{std::move(pem->certificate), std::move(pem->private_key)};
  }
  PemPair pem;
  try {
    pem.chain_pem = read_text_file(tls.manual_cert_path.string());
  } catch (const std::exception& e) {
    throw config::ConfigError(source, 0, section + ".manual_cert_path",
                              std::string("cannot load certificate chain: ") + e.what());
  }
  try {
    pem.key_pem = read_text_file(tls.manual_key_path.string());
  } catch (const std::exception& e) {
    throw config::ConfigError(source, 0, section + ".manual_key_path",
                              std::string("cannot load private key: ") + e.what());
  }
  try {
    (void)make_server_tls_context(pem.chain_pem, pem.key_pem);  // parses and matches the pair
  } catch (const std::exception& e) {
    throw config::ConfigError(
        source, 0, section + ".manual_cert_path",
        tls.manual_cert_path.string() + " / " + tls.manual_key_path.string() + ": " + e.what());
  }
  return pem;
}

std::shared_ptr<boost::asio::ssl::context> make_https_context(const PemPair& pem) {
  auto ctx = make_server_tls_context(pem.chain_pem, pem.key_pem);
  acme::TlsAlpnChallenges::attach(ctx->native_handle());
  return ctx;
}

}  // namespace iroh::server
