#include "iroh/quic/tls.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <string>

namespace iroh::quic {
namespace {

constexpr unsigned kTransportParametersExtension = 0x39;  // RFC 9001 §8.2

// TLS 1.3 only, no middlebox compatibility mode (RFC 9001 §8.4), and only the AEADs the packet
// protection layer implements.
constexpr const char* kPriorities =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "%DISABLE_TLS13_COMPAT_MODE";

std::optional<EncryptionLevel> to_level(gnutls_record_encryption_level_t level) {
  switch (level) {
    case GNUTLS_ENCRYPTION_LEVEL_INITIAL:
      return EncryptionLevel::Initial;
    case GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE:
      return EncryptionLevel::Handshake;
    case GNUTLS_ENCRYPTION_LEVEL_APPLICATION:
      return EncryptionLevel::Application;
    default:
      return std::nullopt;  // 0-RTT is never accepted
  }
}

gnutls_record_encryption_level_t to_gnutls(EncryptionLevel level) {
  switch (level) {
    case EncryptionLevel::Initial:
      return GNUTLS_ENCRYPTION_LEVEL_INITIAL;
    case EncryptionLevel::Handshake:
      return GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE;
    case EncryptionLevel::Application:
      break;
  }
  return GNUTLS_ENCRYPTION_LEVEL_APPLICATION;
}

TlsServerSession* self_of(gnutls_session_t session) {
  return static_cast<TlsServerSession*>(gnutls_session_get_ptr(session));
}

// GnuTLS never does record I/O in QUIC mode; these keep it from touching a socket if it tried.
ssize_t no_push(gnutls_transport_ptr_t, const void*, size_t size) {
  return static_cast<ssize_t>(size);
}
ssize_t no_pull(gnutls_transport_ptr_t ptr, void*, size_t) {
  gnutls_transport_set_errno(static_cast<gnutls_session_t>(ptr), EAGAIN);
  return -1;
}

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
void free_bio(BIO* bio) {
  BIO_free(bio);
}
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, free_bio>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

}  // namespace

std::optional<PemCertificate> generate_self_signed_certificate(std::string_view common_name) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) return std::nullopt;
  std::uint8_t serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return std::nullopt;
  serial_bytes[0] &= 0x7f;
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  if (serial == nullptr) return std::nullopt;
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
  BN_free(serial);
  X509_set_version(cert.get(), X509_VERSION_3);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 60L * 60 * 24 * 365);
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn(common_name);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::string san = "DNS:" + cn + ",DNS:localhost,IP:127.0.0.1,IP:::1";
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  if (ext == nullptr) return std::nullopt;
  X509_add_ext(cert.get(), ext, -1);
  X509_EXTENSION_free(ext);
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return std::nullopt;
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return std::nullopt;
  }
  return PemCertificate{bio_string(cert_bio.get()), bio_string(key_bio.get())};
}

std::shared_ptr<ServerCredentials> ServerCredentials::from_pem(const PemCertificate& pem,
                                                               std::string& error) {
  std::shared_ptr<ServerCredentials> creds(new ServerCredentials());
  if (int rv = gnutls_certificate_allocate_credentials(&creds->credentials_); rv < 0) {
    error = gnutls_strerror(rv);
    return nullptr;
  }
  gnutls_datum_t cert{reinterpret_cast<unsigned char*>(const_cast<char*>(pem.certificate.data())),
                      static_cast<unsigned>(pem.certificate.size())};
  gnutls_datum_t key{reinterpret_cast<unsigned char*>(const_cast<char*>(pem.private_key.data())),
                     static_cast<unsigned>(pem.private_key.size())};
  if (int rv = gnutls_certificate_set_x509_key_mem2(creds->credentials_, &cert, &key,
                                                    GNUTLS_X509_FMT_PEM, nullptr, 0);
      rv < 0) {
    error = std::string("cannot load certificate/key: ") + gnutls_strerror(rv);
    return nullptr;
  }
  return creds;
}

std::shared_ptr<ServerCredentials> ServerCredentials::from_files(
    const std::string& certificate_path, const std::string& key_path, std::string& error) {
  std::shared_ptr<ServerCredentials> creds(new ServerCredentials());
  if (int rv = gnutls_certificate_allocate_credentials(&creds->credentials_); rv < 0) {
    error = gnutls_strerror(rv);
    return nullptr;
  }
  if (int rv =
          gnutls_certificate_set_x509_key_file2(creds->credentials_, certificate_path.c_str(),
                                                key_path.c_str(), GNUTLS_X509_FMT_PEM, nullptr, 0);
      rv < 0) {
    error = "cannot load " + certificate_path + " / " + key_path + ": " + gnutls_strerror(rv);
    return nullptr;
  }
  return creds;
}

ServerCredentials::~ServerCredentials() {
  if (credentials_ != nullptr) gnutls_certificate_free_credentials(credentials_);
}

TlsServerSession::TlsServerSession(std::shared_ptr<ServerCredentials> credentials,
                                   Bytes local_transport_parameters, Callbacks callbacks)
    : credentials_(std::move(credentials)),
      local_parameters_(std::move(local_transport_parameters)),
      callbacks_(std::move(callbacks)) {
  auto fail = [this](const char* what, int rv) {
    failed_ = true;
    error_ = std::string(what) + ": " + gnutls_strerror(rv);
  };
  if (int rv = gnutls_init(
          &session_, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET | GNUTLS_NO_END_OF_EARLY_DATA);
      rv < 0) {
    session_ = nullptr;
    fail("gnutls_init", rv);
    return;
  }
  gnutls_session_set_ptr(session_, this);
  gnutls_transport_set_ptr(session_, session_);
  gnutls_transport_set_push_function(session_, no_push);
  gnutls_transport_set_pull_function(session_, no_pull);
  if (int rv = gnutls_priority_set_direct(session_, kPriorities, nullptr); rv < 0) {
    fail("gnutls_priority_set_direct", rv);
    return;
  }
  if (int rv = gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, credentials_->get());
      rv < 0) {
    fail("gnutls_credentials_set", rv);
    return;
  }
  gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(kQadAlpn.data())),
                      static_cast<unsigned>(kQadAlpn.size())};
  if (int rv = gnutls_alpn_set_protocols(session_, &alpn, 1, GNUTLS_ALPN_MANDATORY); rv < 0) {
    fail("gnutls_alpn_set_protocols", rv);
    return;
  }
  gnutls_handshake_set_secret_function(session_, on_secret);
  gnutls_handshake_set_read_function(session_, on_handshake_message);
  gnutls_alert_set_read_function(session_, on_alert);
  if (int rv = gnutls_session_ext_register(
          session_, "QUIC Transport Parameters", kTransportParametersExtension, GNUTLS_EXT_TLS,
          on_transport_parameters, send_transport_parameters, nullptr, nullptr, nullptr,
          GNUTLS_EXT_FLAG_TLS | GNUTLS_EXT_FLAG_CLIENT_HELLO | GNUTLS_EXT_FLAG_EE);
      rv < 0) {
    fail("gnutls_session_ext_register", rv);
    return;
  }
}

TlsServerSession::~TlsServerSession() {
  if (session_ != nullptr) gnutls_deinit(session_);
}

bool TlsServerSession::provide_data(EncryptionLevel level, ByteSpan data) {
  if (failed_ || session_ == nullptr) return false;
  if (!data.empty()) {
    int rv = gnutls_handshake_write(session_, to_gnutls(level), data.data(), data.size());
    if (rv < 0 && gnutls_error_is_fatal(rv)) {
      gnutls_alert_send_appropriate(session_, rv);
      failed_ = true;
      error_ = gnutls_strerror(rv);
      return false;
    }
  }
  if (complete_) return true;  // post-handshake messages are consumed and ignored
  int rv = gnutls_handshake(session_);
  if (rv == 0) {
    // The transport parameters extension is mandatory in QUIC (RFC 9001 §8.2).
    if (!peer_parameters_) {
      alert_ = GNUTLS_A_MISSING_EXTENSION;
      failed_ = true;
      error_ = "client sent no quic_transport_parameters";
      return false;
    }
    complete_ = true;
    return true;
  }
  if (!gnutls_error_is_fatal(rv)) return true;
  gnutls_alert_send_appropriate(session_, rv);
  failed_ = true;
  error_ = gnutls_strerror(rv);
  return false;
}

int TlsServerSession::on_secret(gnutls_session_t session,
                                gnutls_record_encryption_level_t gnutls_level,
                                const void* read_secret, const void* write_secret,
                                size_t secret_size) {
  auto* self = self_of(session);
  auto level = to_level(gnutls_level);
  if (self == nullptr || !level) return 0;
  Aead aead;
  switch (gnutls_cipher_get(session)) {
    case GNUTLS_CIPHER_AES_128_GCM:
      aead = Aead::Aes128Gcm;
      break;
    case GNUTLS_CIPHER_AES_256_GCM:
      aead = Aead::Aes256Gcm;
      break;
    case GNUTLS_CIPHER_CHACHA20_POLY1305:
      aead = Aead::ChaCha20Poly1305;
      break;
    default:
      return -1;
  }
  const Hash hash = gnutls_prf_hash_get(session) == GNUTLS_DIG_SHA384 ? Hash::Sha384 : Hash::Sha256;
  ByteSpan read_span, write_span;
  if (read_secret != nullptr)
    read_span = {static_cast<const std::uint8_t*>(read_secret), secret_size};
  if (write_secret != nullptr) {
    write_span = {static_cast<const std::uint8_t*>(write_secret), secret_size};
  }
  if (self->callbacks_.install_secrets) {
    self->callbacks_.install_secrets(*level, aead, hash, read_span, write_span);
  }
  return 0;
}

int TlsServerSession::on_handshake_message(gnutls_session_t session,
                                           gnutls_record_encryption_level_t gnutls_level,
                                           gnutls_handshake_description_t type, const void* data,
                                           size_t size) {
  auto* self = self_of(session);
  auto level = to_level(gnutls_level);
  if (self == nullptr || !level) return 0;
  if (type == GNUTLS_HANDSHAKE_CHANGE_CIPHER_SPEC) return 0;
  if (self->callbacks_.send_crypto) {
    self->callbacks_.send_crypto(*level, ByteSpan(static_cast<const std::uint8_t*>(data), size));
  }
  return 0;
}

int TlsServerSession::on_alert(gnutls_session_t session, gnutls_record_encryption_level_t,
                               gnutls_alert_level_t, gnutls_alert_description_t description) {
  if (auto* self = self_of(session)) self->alert_ = static_cast<std::uint8_t>(description);
  return 0;
}

int TlsServerSession::on_transport_parameters(gnutls_session_t session, const unsigned char* data,
                                              size_t size) {
  auto* self = self_of(session);
  if (self == nullptr) return -1;
  self->peer_parameters_ = Bytes(data, data + size);
  return 0;
}

int TlsServerSession::send_transport_parameters(gnutls_session_t session, gnutls_buffer_t out) {
  auto* self = self_of(session);
  if (self == nullptr) return -1;
  if (gnutls_buffer_append_data(out, self->local_parameters_.data(),
                                self->local_parameters_.size()) < 0) {
    return -1;
  }
  return static_cast<int>(self->local_parameters_.size());
}

}  // namespace iroh::quic
