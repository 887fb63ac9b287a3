// The ACME cache in tls.cert_dir: the account key (acme-account.key) and the last issued
// certificate chain + key (acme-cert.pem, acme-key.pem). Keys are written 0600, every file
// atomically (temporary + fsync + rename). A crash between the key and the chain write leaves a
// mismatching pair, which load() callers reject (certificate_matches) and reissue.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "acme/acme_crypto.hpp"
#include "core/tls.hpp"
#include "iroh/config.hpp"

namespace iroh::server::acme {

// The chain + key pair of the whole server (core/tls.hpp), under the name this module used first.
using PemPair = server::PemPair;

class CertificateStore {
 public:
  explicit CertificateStore(std::filesystem::path cert_dir);

  // The cached chain + key, if both files exist. Throws std::runtime_error on read errors.
  std::optional<PemPair> load_certificate() const;
  // Creates cert_dir (0700) if needed; writes the key, then the chain.
  void save_certificate(const PemPair& pair) const;
  // The persisted account key, or a new one written to acme-account.key (0600).
  EcKey load_or_create_account_key() const;

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path chain_path() const { return dir_ / "acme-cert.pem"; }
  std::filesystem::path key_path() const { return dir_ / "acme-key.pem"; }
  std::filesystem::path account_key_path() const { return dir_ / "acme-account.key"; }

 private:
  void ensure_dir() const;
  std::filesystem::path dir_;
};

// The certificate the HTTPS listener starts with in LetsEncrypt mode: the cached one when it
// loads, matches its key and covers every tls.hostname (even if it is close to expiry: the ACME
// service renews it right away); otherwise a temporary self-signed certificate, replaced once the
// first certificate is issued. Never throws for a missing or bad cache (logs why).
PemPair startup_certificate(const config::TlsConfig& tls);

}  // namespace iroh::server::acme
