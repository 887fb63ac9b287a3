// TLS 1.3 for the QAD server through GnuTLS's QUIC interface (RFC 9001 §4): handshake messages
// travel in CRYPTO frames instead of TLS records, secrets are handed to the packet protection
// layer, and alerts become CONNECTION_CLOSE error codes.
#pragma once

#include <gnutls/gnutls.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "iroh/quic/crypto.hpp"

namespace iroh::quic {

inline constexpr std::string_view kQadAlpn = "/iroh-qad/0";

enum class EncryptionLevel { Initial = 0, Handshake = 1, Application = 2 };

// A PEM certificate chain and private key.
struct PemCertificate {
  std::string certificate;
  std::string private_key;
};

// Self-signed P-256 certificate for localhost / 127.0.0.1 / ::1 (dev mode and tests).
std::optional<PemCertificate> generate_self_signed_certificate(std::string_view common_name);

// Server certificate shared by every QAD connection.
class ServerCredentials {
 public:
  // nullptr and `error` set if the PEM data cannot be loaded.
  static std::shared_ptr<ServerCredentials> from_pem(const PemCertificate& pem, std::string& error);
  static std::shared_ptr<ServerCredentials> from_files(const std::string& certificate_path,
                                                       const std::string& key_path,
                                                       std::string& error);
  ~ServerCredentials();
  ServerCredentials(const ServerCredentials&) = delete;
  ServerCredentials& operator=(const ServerCredentials&) = delete;

  gnutls_certificate_credentials_t get() const { return credentials_; }

 private:
  ServerCredentials() = default;
  gnutls_certificate_credentials_t credentials_ = nullptr;
};

// Server side of one QUIC-TLS handshake.
class TlsServerSession {
 public:
  struct Callbacks {
    // Handshake bytes to send in CRYPTO frames at `level`.
    std::function<void(EncryptionLevel level, ByteSpan data)> send_crypto;
    // New packet protection secrets; either side may be empty.
    std::function<void(EncryptionLevel level, Aead aead, Hash hash, ByteSpan read_secret,
                       ByteSpan write_secret)>
        install_secrets;
  };

  TlsServerSession(std::shared_ptr<ServerCredentials> credentials, Bytes local_transport_parameters,
                   Callbacks callbacks);
  ~TlsServerSession();
  TlsServerSession(const TlsServerSession&) = delete;
  TlsServerSession& operator=(const TlsServerSession&) = delete;

  // In-order CRYPTO data received at `level`. false = fatal TLS error; alert() says which.
  bool provide_data(EncryptionLevel level, ByteSpan data);

  bool handshake_complete() const { return complete_; }
  // TLS alert to report as CRYPTO_ERROR (0x100 + alert) after a failure.
  std::uint8_t alert() const { return alert_; }
  const std::optional<Bytes>& peer_transport_parameters() const { return peer_parameters_; }
  std::string error_text() const { return error_; }

 private:
  static int on_secret(gnutls_session_t, gnutls_record_encryption_level_t, const void*, const void*,
                       size_t);
  static int on_handshake_message(gnutls_session_t, gnutls_record_encryption_level_t,
                                  gnutls_handshake_description_t, const void*, size_t);
  static int on_alert(gnutls_session_t, gnutls_record_encryption_level_t, gnutls_alert_level_t,
                      gnutls_alert_description_t);
  static int on_transport_parameters(gnutls_session_t, const unsigned char*, size_t);
  static int send_transport_parameters(gnutls_session_t, gnutls_buffer_t);

  std::shared_ptr<ServerCredentials> credentials_;
  Bytes local_parameters_;
  Callbacks callbacks_;
  gnutls_session_t session_ = nullptr;
  bool complete_ = false;
  bool failed_ = false;
  std::uint8_t alert_ = 80;  // internal_error until GnuTLS names one
  std::optional<Bytes> peer_parameters_;
  std::string error_;
};

}  // namespace iroh::quic
