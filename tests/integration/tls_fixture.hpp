// TLS helpers shared by the integration tests: throwaway self-signed certificates (PEM text),
// atomic file replacement and certificate fingerprints.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "integration/daemon_fixture.hpp"

namespace iroh::test {

struct CertFiles {
  std::string cert_pem;
  std::string key_pem;
};

// A P-256 self-signed certificate for CN=`cn`, valid for a day.
inline CertFiles make_cert(const char* cn) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, pkey, EVP_sha256());
  CertFiles out;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  out.cert_pem.assign(data, std::size_t(n));
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  n = BIO_get_mem_data(b, &data);
  out.key_pem.assign(data, std::size_t(n));
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(pkey);
  return out;
}

inline void write_file(const std::filesystem::path& p, const std::string& text) {
  auto tmp = p.string() + ".tmp";
  std::ofstream(tmp, std::ios::binary) << text;
  std::filesystem::rename(tmp, p);  // atomic, like certbot's deploy hooks
}

// A new directory under the temp dir, unique per process and call.
inline std::filesystem::path unique_temp_dir(const std::string& prefix) {
  auto dir = std::filesystem::temp_directory_path() /
             (prefix + "_" + std::to_string(::getpid()) + "_" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(dir);
  return dir;
}

// test_config() plus HTTPS on 127.0.0.1:0 serving `cert`, written to dir/cert.pem + dir/key.pem
// (manual mode: the daemon re-reads those files when they change).
inline config::Config tls_test_config(const std::filesystem::path& dir, const CertFiles& cert) {
  write_file(dir / "cert.pem", cert.cert_pem);
  write_file(dir / "key.pem", cert.key_pem);
  auto cfg = test_config();
  cfg.dev = false;
  config::TlsConfig tls;
  tls.https_bind_addr = config::SocketAddr{"127.0.0.1", 0};
  tls.manual_cert_path = dir / "cert.pem";
  tls.manual_key_path = dir / "key.pem";
  cfg.tls = tls;
  return cfg;
}

// SHA-256 of the certificate the peer of `ssl` presented ("" if none).
inline std::string fingerprint_of(SSL* ssl) {
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (!peer) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  X509_digest(peer, EVP_sha256(), md, &len);
  X509_free(peer);
  return std::string(reinterpret_cast<char*>(md), len);
}

inline std::string fingerprint_of_pem(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), int(pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  X509_digest(x, EVP_sha256(), md, &len);
  X509_free(x);
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace iroh::test
