#include "acme/tls_alpn.hpp"

#include <openssl/ssl.h>
#include <openssl/tls1.h>

#include <optional>

#include "acme/acme_crypto.hpp"
#include "core/log.hpp"
#include "core/tls.hpp"

namespace iroh::server::acme {

namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return out;
}

std::uint16_t be16(const unsigned char* p) {
  return std::uint16_t((p[0] << 8) | p[1]);
}

// RFC 7301 §3.1 ProtocolNameList: u16 length, then u8-length-prefixed names. Malformed -> false.
bool offers_acme_tls(const unsigned char* p, std::size_t len) {
  if (len < 2 || be16(p) != len - 2) return false;
  for (std::size_t i = 2; i < len;) {
    std::size_t n = p[i];
    if (n == 0 || i + 1 + n > len) return false;
    if (std::string_view(reinterpret_cast<const char*>(p + i + 1), n) == kAcmeTlsAlpn) return true;
    i += 1 + n;
  }
  return false;
}

// RFC 6066 §3 ServerNameList: u16 length, then (u8 type, u16 length, name); the host_name (0).
std::optional<std::string> sni_host(const unsigned char* p, std::size_t len) {
  if (len < 2 || be16(p) != len - 2) return std::nullopt;
  for (std::size_t i = 2; i + 3 <= len;) {
    std::size_t n = be16(p + i + 1);
    if (i + 3 + n > len) return std::nullopt;
    if (p[i] == 0) return lowercase({reinterpret_cast<const char*>(p + i + 3), n});
    i += 3 + n;
  }
  return std::nullopt;
}

// ALPN of a validation context: acme-tls/1 or a fatal no_application_protocol alert.
int select_acme_tls(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                    unsigned int inlen, void*) {
  for (unsigned i = 0; i < inlen;) {
    unsigned n = in[i];
    if (i + 1 + n > inlen) break;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), n) == kAcmeTlsAlpn) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

TlsAlpnChallenges& TlsAlpnChallenges::instance() {
  static TlsAlpnChallenges registry;
  return registry;
}

void TlsAlpnChallenges::publish(const std::string& domain, const std::string& key_authorization) {
  auto [cert, key] = make_tls_alpn_certificate(domain, key_authorization);
  auto ctx = make_server_tls_context(cert, key);
  SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_acme_tls, nullptr);
  std::lock_guard lock(mutex_);
  contexts_[lowercase(domain)] = std::move(ctx);
  pending_.store(contexts_.size(), std::memory_order_relaxed);
}

void TlsAlpnChallenges::withdraw(const std::string& domain) {
  std::lock_guard lock(mutex_);
  contexts_.erase(lowercase(domain));
  pending_.store(contexts_.size(), std::memory_order_relaxed);
}

std::shared_ptr<boost::asio::ssl::context> TlsAlpnChallenges::find(std::string_view domain) const {
  std::lock_guard lock(mutex_);
  auto it = contexts_.find(domain);
  return it == contexts_.end() ? nullptr : it->second;
}

void TlsAlpnChallenges::attach(SSL_CTX* ctx) {
  SSL_CTX_set_client_hello_cb(ctx, on_client_hello, &instance());
}

int TlsAlpnChallenges::on_client_hello(SSL* ssl, int*, void* arg) {
  auto* self = static_cast<TlsAlpnChallenges*>(arg);
  // The common case (no challenge pending) costs one atomic load per handshake.
  if (self->pending() == 0) return SSL_CLIENT_HELLO_SUCCESS;
  const unsigned char* p = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                &len) != 1 ||
      !offers_acme_tls(p, len)) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  std::optional<std::string> host = sni_host(p, len);
  if (!host) return SSL_CLIENT_HELLO_SUCCESS;
  auto ctx = self->find(*host);
  if (!ctx) {
    log::debug("acme: acme-tls/1 ClientHello for ", *host, " without a pending challenge");
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  // SSL_set_SSL_CTX takes its own reference: the context outlives a withdraw() mid-handshake.
  // Certificate and ALPN callback now come from the validation context.
  if (SSL_set_SSL_CTX(ssl, ctx->native_handle()) == nullptr) return SSL_CLIENT_HELLO_ERROR;
  log::debug("acme: answering a tls-alpn-01 validation for ", *host);
  return SSL_CLIENT_HELLO_SUCCESS;
}

bool TlsAlpnChallenges::negotiated(SSL* ssl) {
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &len);
  return len == kAcmeTlsAlpn.size() &&
         std::string_view(reinterpret_cast<const char*>(proto), len) == kAcmeTlsAlpn;
}

}  // namespace iroh::server::acme
