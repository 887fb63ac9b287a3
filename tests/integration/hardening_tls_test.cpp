// Relay TLS (issue 7): certificate reload keeps connections and new ones see the new
// certificate, only modern suites, and header auth (spec relay.md §4.3) from a raw OpenSSL client.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <filesystem>

#include "integration/hardening_fixture.hpp"
#include "integration/raw_tls_client.hpp"
#include "integration/tls_fixture.hpp"

namespace iroh::test {
namespace {

using relay::SecretKey;
using server::Daemon;

// ---- TLS: certificate reload, raw OpenSSL header auth ----------------------------------------

class HardeningTls : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = unique_temp_dir("hardening_test");
    first_ = make_cert("first");
    daemon_ = start_daemon(tls_test_config(dir_, first_));
    client_ctx_.set_verify_mode(ssl::verify_none);
  }
  void TearDown() override {
    daemon_->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::unique_ptr<TlsRelayTestClient> tls_client(const SecretKey& key) {
    auto c = std::make_unique<TlsRelayTestClient>(client_ctx_);
    EXPECT_FALSE(c->connect(*daemon_->https_endpoint(), UpgradeOptions{}.with_auth_header(key)));
    EXPECT_EQ(c->read(), kConfirm);
    return c;
  }
  std::filesystem::path dir_;
  CertFiles first_;
  std::unique_ptr<Daemon> daemon_;
  ssl::context client_ctx_{ssl::context::tls_client};
};

TEST_F(HardeningTls, CertificateReloadKeepsConnectionsNewOnesSeeNewCert) {
  auto old_client = tls_client(SecretKey::generate());
  EXPECT_EQ(fingerprint_of(old_client->stream().next_layer().native_handle()),
            fingerprint_of_pem(first_.cert_pem));

  // A mismatched pair (new cert, old key) is refused; the running certificate stays.
  auto second = make_cert("second");
  EXPECT_THROW(daemon_->reload_certificate(second.cert_pem, first_.key_pem), std::runtime_error);
  EXPECT_THROW(daemon_->reload_certificate("garbage", "garbage"), std::runtime_error);

  // New files on disk: picked up by the mtime/inode poll (every 2 s; bounded wait).
  write_file(dir_ / "key.pem", second.key_pem);
  write_file(dir_ / "cert.pem", second.cert_pem);
  bool switched = eventually(
      [&] {
        TlsRelayTestClient probe(client_ctx_);
        if (probe.connect(*daemon_->https_endpoint())) return false;
        return fingerprint_of(probe.stream().next_layer().native_handle()) ==
               fingerprint_of_pem(second.cert_pem);
      },
      15s);
  EXPECT_TRUE(switched);
  auto new_client = tls_client(SecretKey::generate());
  EXPECT_EQ(fingerprint_of(new_client->stream().next_layer().native_handle()),
            fingerprint_of_pem(second.cert_pem));
  // The connection made before the reload is still relaying.
  EXPECT_TRUE(old_client->ping_barrier());

  // And back via the API (what ACME calls).
  daemon_->reload_certificate(first_.cert_pem, first_.key_pem);
  auto third = tls_client(SecretKey::generate());
  EXPECT_EQ(fingerprint_of(third->stream().next_layer().native_handle()),
            fingerprint_of_pem(first_.cert_pem));
  EXPECT_TRUE(old_client->ping_barrier());
  EXPECT_TRUE(new_client->ping_barrier());
}

TEST_F(HardeningTls, OnlyModernSuites) {
  for (const char* suite :
       {"AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256"}) {
    ssl::context ctx{ssl::context::tls_client};
    ctx.set_verify_mode(ssl::verify_none);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx.native_handle(), suite);
    TlsRelayTestClient c(ctx);
    EXPECT_TRUE(c.connect(*daemon_->https_endpoint())) << suite;
  }
  ssl::context ctx{ssl::context::tls_client};
  ctx.set_verify_mode(ssl::verify_none);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_1_VERSION);
  SSL_CTX_set_security_level(ctx.native_handle(), 0);
  TlsRelayTestClient old(ctx);
  EXPECT_TRUE(old.connect(*daemon_->https_endpoint()));
}

// The server's suite order wins (core/tls.cpp says why): AES-128-GCM for a client that lists
// AES-256-GCM first, as OpenSSL's and rustls's defaults do, over TLS 1.3 and TLS 1.2; a client
// that offers only another modern suite still connects with it.
TEST_F(HardeningTls, ServerPicksAes128GcmWhateverTheClientPrefers) {
  auto negotiated = [&](const char* tls13_suites, const char* tls12_ciphers, int max_version) {
    ssl::context ctx{ssl::context::tls_client};
    ctx.set_verify_mode(ssl::verify_none);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), max_version);
    if (tls13_suites) SSL_CTX_set_ciphersuites(ctx.native_handle(), tls13_suites);
    if (tls12_ciphers) SSL_CTX_set_cipher_list(ctx.native_handle(), tls12_ciphers);
    TlsRelayTestClient c(ctx);
    if (c.connect(*daemon_->https_endpoint())) return std::string("connect failed");
    return std::string(SSL_get_cipher_name(c.stream().next_layer().native_handle()));
  };
  EXPECT_EQ(negotiated("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
                       nullptr, TLS1_3_VERSION),
            "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(negotiated("TLS_AES_256_GCM_SHA384", nullptr, TLS1_3_VERSION),
            "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(negotiated("TLS_CHACHA20_POLY1305_SHA256", nullptr, TLS1_3_VERSION),
            "TLS_CHACHA20_POLY1305_SHA256");
  const std::string tls12 = negotiated(nullptr,
                                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                       "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
                                       TLS1_2_VERSION);
  EXPECT_TRUE(tls12 == "ECDHE-ECDSA-AES128-GCM-SHA256" || tls12 == "ECDHE-RSA-AES128-GCM-SHA256")
      << tls12;
}

// Header auth (relay.md §4.3) from a client written against OpenSSL's SSL_* API directly (no
// Asio, no Beast): plain socket, SSL_connect, SSL_export_keying_material, hand-written HTTP
// upgrade and WebSocket frame parsing.
TEST_F(HardeningTls, RawOpenSslClientHeaderAuth) {
  RawTlsClient c(daemon_->https_endpoint()->port());
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(std::string(SSL_get_version(c.ssl())), "TLSv1.3");
  auto key = SecretKey::generate();
  const auto ekm = export_keying_material(c.ssl(), relay::kExporterLabel, key.public_key());
  const auto upgrade =
      c.relay_upgrade(relay::encode_auth_header(relay::sign_key_material(key, ekm)));
  ASSERT_EQ(upgrade.head.rfind("HTTP/1.1 101", 0), 0u) << upgrade.head;
  EXPECT_NE(upgrade.head.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos);
  EXPECT_EQ(upgrade.first_byte, 0x82);  // FIN + binary, unmasked
  // ServerConfirmsAuth: the header proved the key, no challenge.
  EXPECT_EQ(upgrade.first_message, kConfirm);
  EXPECT_EQ(daemon_->client_count(), 1u);
}

}  // namespace
}  // namespace iroh::test
