// The cryptography of an ACME client (RFC 8555) on OpenSSL EVP: the ES256 account key and its JWK,
// flattened JWS objects (RFC 7515 §7.2.2), the JWK thumbprint for key authorizations (RFC 7638),
// CSRs for finalize, and reading certificates back (validity, names, key match).
// Failures throw std::runtime_error with a reason; nothing here does I/O except the file helpers.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace iroh::server::acme {

// A P-256 private key (account key or certificate key).
class EcKey {
 public:
  static EcKey generate();
  // PKCS#8 / SEC1 PEM. Throws if it is not a P-256 key.
  static EcKey from_pem(std::string_view pem);
  std::string to_pem() const;  // PKCS#8

  // {"crv":"P-256","kty":"EC","x":"...","y":"..."}: members in lexicographic order, no spaces,
  // which is also the RFC 7638 canonical form the thumbprint hashes.
  std::string jwk_json() const;
  std::string thumbprint() const;  // base64url(SHA-256(jwk_json()))
  // ES256 signature of `data`: r || s, 32 bytes each (RFC 7518 §3.4), not DER.
  std::string sign_es256(std::string_view data) const;

  EVP_PKEY* native() const { return key_.get(); }

 private:
  struct Free {
    void operator()(EVP_PKEY* key) const;
  };
  explicit EcKey(EVP_PKEY* key) : key_(key, Free{}) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// A flattened JWS JSON serialization with ES256. The protected header names the key by `kid` (the
// account URL) or, when `kid` is empty (newAccount), embeds the key's JWK. `payload` empty =
// POST-as-GET.
std::string jws_es256(const EcKey& key, std::string_view url, std::string_view nonce,
                      std::string_view payload, std::string_view kid);

// DER PKCS#10 request for `names` (subjectAltName dNSName each, CN = the first), signed by `key`.
std::string make_csr_der(const EcKey& key, const std::vector<std::string>& names);

// RFC 8737 §3: the self-signed validation certificate of a TLS-ALPN-01 challenge for `domain`:
// subjectAltName dNSName = domain only, and the critical id-pe-acmeIdentifier extension
// (1.3.6.1.5.5.7.1.31) holding the SHA-256 of `key_authorization` as a DER OCTET STRING. Fresh
// P-256 key, valid for 7 days. Returns (certificate PEM, key PEM).
std::pair<std::string, std::string> make_tls_alpn_certificate(std::string_view domain,
                                                              std::string_view key_authorization);
// The extension's OID in dotted form.
inline constexpr const char* kAcmeIdentifierOid = "1.3.6.1.5.5.7.1.31";

// What the renewal logic needs to know about a PEM chain's leaf certificate.
struct CertificateInfo {
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::string issuer;  // one-line RFC 2253 form
  std::string serial;  // hex
};
// Parses the first certificate of `chain_pem`. Throws on unreadable PEM.
CertificateInfo certificate_info(std::string_view chain_pem);
// True if the leaf certificate covers every name (RFC 6125 host matching) and matches the key.
bool certificate_matches(std::string_view chain_pem, std::string_view key_pem,
                         const std::vector<std::string>& names);

// The moment to renew: when less than a third of the lifetime, at most 30 days, is left.
std::chrono::system_clock::time_point renewal_time(const CertificateInfo& info);

// Writes `content` to `path` atomically (temporary file in the same directory, fsync, rename)
// with permissions `mode` (e.g. 0600 for keys). Throws std::runtime_error.
void write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode);
// The whole file, or nullopt if it does not exist. Throws on read errors.
std::optional<std::string> read_file_if_exists(const std::filesystem::path& path);

}  // namespace iroh::server::acme
