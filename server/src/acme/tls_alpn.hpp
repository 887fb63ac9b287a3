// The TLS-ALPN-01 responder (RFC 8737): while a challenge for a domain is pending, a ClientHello
// that offers ALPN "acme-tls/1" with that domain as SNI gets the validation certificate
// (acme_crypto.hpp make_tls_alpn_certificate) and the negotiated protocol acme-tls/1; every other
// handshake (ALPN http/1.1 or none, other names, no challenge pending) is untouched.
//
// Process-wide: every server SSL_CTX made by tls.hpp (the relay's HTTPS listener, the lookup
// listener, and each replacement after a certificate reload) consults the one registry, so a
// challenge answers on whichever HTTPS listener the validator reaches.
#pragma once

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace iroh::server::acme {

inline constexpr std::string_view kAcmeTlsAlpn = "acme-tls/1";

class TlsAlpnChallenges {
 public:
  static TlsAlpnChallenges& instance();

  // Serve the validation certificate for `domain` (case-insensitive) until withdraw(). Throws
  // std::runtime_error if the certificate cannot be made.
  void publish(const std::string& domain, const std::string& key_authorization);
  void withdraw(const std::string& domain);
  std::size_t pending() const { return pending_.load(std::memory_order_relaxed); }

  // Installs the ClientHello callback on a server context (tls.cpp does it for every one).
  static void attach(SSL_CTX* ctx);

  // True if the connection negotiated acme-tls/1 (it carries no application data: RFC 8737 §3,
  // the server closes it after the handshake).
  static bool negotiated(SSL* ssl);

 private:
  static int on_client_hello(SSL* ssl, int* alert, void* arg);
  std::shared_ptr<boost::asio::ssl::context> find(std::string_view domain) const;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>, std::less<>> contexts_;
  std::atomic<std::size_t> pending_{0};
};

}  // namespace iroh::server::acme
