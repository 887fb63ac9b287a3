#include "acme/certificate_store.hpp"

#include <sys/stat.h>

#include <stdexcept>

#include "core/log.hpp"
#include "iroh/quic/tls.hpp"

namespace iroh::server::acme {

CertificateStore::CertificateStore(std::filesystem::path cert_dir) : dir_(std::move(cert_dir)) {}

void CertificateStore::ensure_dir() const {
  std::error_code ec;
  if (std::filesystem::is_directory(dir_, ec)) return;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create cert_dir " + dir_.string() + ": " + ec.message());
  ::chmod(dir_.c_str(), 0700);
}

std::optional<PemPair> CertificateStore::load_certificate() const {
  std::optional<std::string> chain = read_file_if_exists(chain_path());
  std::optional<std::string> key = read_file_if_exists(key_path());
  if (!chain || !key) return std::nullopt;
  return PemPair{std::move(*chain), std::move(*key)};
}

void CertificateStore::save_certificate(const PemPair& pair) const {
  ensure_dir();
  write_file_atomic(key_path(), pair.key_pem, 0600);
  write_file_atomic(chain_path(), pair.chain_pem, 0644);
}

EcKey CertificateStore::load_or_create_account_key() const {
  if (std::optional<std::string> pem = read_file_if_exists(account_key_path())) {
    try {
      return EcKey::from_pem(*pem);
    } catch (const std::exception& e) {
      // Replacing it silently would orphan the account; make the operator decide.
      throw std::runtime_error("account key " + account_key_path().string() + " is unusable (" +
                               e.what() +
                               "); move it away to create a new "
                               "account");
    }
  }
  ensure_dir();
  EcKey key = EcKey::generate();
  write_file_atomic(account_key_path(), key.to_pem(), 0600);
  log::info("acme: new account key ", account_key_path().string());
  return key;
}

PemPair startup_certificate(const config::TlsConfig& tls) {
  CertificateStore store(tls.cert_dir);
  try {
    if (std::optional<PemPair> cached = store.load_certificate()) {
      if (certificate_matches(cached->chain_pem, cached->key_pem, tls.hostname)) {
        return std::move(*cached);
      }
      log::warn("acme: cached certificate ", store.chain_path().string(),
                " does not match its key or the configured hostnames; not used");
    }
  } catch (const std::exception& e) {
    log::warn("acme: cached certificate not used: ", e.what());
  }
  std::optional<quic::PemCertificate> temporary =
      quic::generate_self_signed_certificate(tls.hostname.empty() ? "localhost" : tls.hostname[0]);
  if (!temporary) throw std::runtime_error("cannot generate a temporary certificate");
  log::info("acme: no certificate yet; HTTPS serves a temporary self-signed one until issuance");
  return PemPair{std::move(temporary->certificate), std::move(temporary->private_key)};
}

}  // namespace iroh::server::acme
