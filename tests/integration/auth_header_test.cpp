// The TLS keying-material header x-iroh-relay-client-auth-v1 (spec relay.md §4.3) must prove the
// key it names: a header signed by another key, with a corrupted signature, a suffix that is not
// the exporter's, or keying material exported with another label or context is ignored and the
// server falls back to the challenge (§4.1): a ServerChallenge, never ServerConfirmsAuth. Checked
// with the Beast test client and with a client written against OpenSSL's SSL_* API directly.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <filesystem>
#include <functional>

#include "integration/daemon_fixture.hpp"
#include "integration/raw_tls_client.hpp"
#include "integration/relay_server_test_client.hpp"
#include "integration/tls_fixture.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::EndpointId;
using relay::SecretKey;

constexpr std::string_view kWrongLabel = "iroh-relay handshake v2";

// Keys of one test: `claimed` is the EndpointId the header names, `other` some other key.
struct Keys {
  SecretKey claimed = SecretKey::generate();
  SecretKey other = SecretKey::generate();
};

using HeaderFn = std::function<std::string(SSL*, const Keys&)>;

struct BadHeader {
  const char* name;
  HeaderFn header;
};
// Keeps the ctest names readable (gtest would print the bytes of the struct).
void PrintTo(const BadHeader& h, std::ostream* os) {
  *os << h.name;
}

// Every header here names keys.claimed; none of them proves it.
const BadHeader kBadHeaders[] = {
    {"SignedByAnotherKey",
     [](SSL* ssl, const Keys& k) {
       auto ekm = export_keying_material(ssl, relay::kExporterLabel, k.claimed.public_key());
       auto auth = relay::sign_key_material(k.other, ekm);
       auth.public_key = k.claimed.public_key();
       return relay::encode_auth_header(auth);
     }},
    {"CorruptedSignature",
     [](SSL* ssl, const Keys& k) {
       auto ekm = export_keying_material(ssl, relay::kExporterLabel, k.claimed.public_key());
       auto auth = relay::sign_key_material(k.claimed, ekm);
       auth.signature[17] ^= 0x01;
       return relay::encode_auth_header(auth);
     }},
    {"WrongExporterSuffix",
     [](SSL* ssl, const Keys& k) {
       auto ekm = export_keying_material(ssl, relay::kExporterLabel, k.claimed.public_key());
       auto auth = relay::sign_key_material(k.claimed, ekm);
       auth.suffix[0] ^= 0x80;
       return relay::encode_auth_header(auth);
     }},
    {"WrongExporterLabel",
     [](SSL* ssl, const Keys& k) {
       auto ekm = export_keying_material(ssl, kWrongLabel, k.claimed.public_key());
       return relay::encode_auth_header(relay::sign_key_material(k.claimed, ekm));
     }},
    {"WrongExporterContext",
     [](SSL* ssl, const Keys& k) {
       // Keying material bound to another EndpointId, correctly signed by the claimed key.
       auto ekm = export_keying_material(ssl, relay::kExporterLabel, k.other.public_key());
       return relay::encode_auth_header(relay::sign_key_material(k.claimed, ekm));
     }},
};

HeaderFn valid_header() {
  return [](SSL* ssl, const Keys& k) {
    auto ekm = export_keying_material(ssl, relay::kExporterLabel, k.claimed.public_key());
    return relay::encode_auth_header(relay::sign_key_material(k.claimed, ekm));
  };
}

bool is_challenge(const Bytes& message) {
  auto decoded = relay::decode_handshake(message);
  auto* msg = std::get_if<relay::HandshakeMessage>(&decoded);
  return msg && std::holds_alternative<relay::ServerChallenge>(*msg);
}

class AuthHeaderTest : public ::testing::TestWithParam<BadHeader> {
 protected:
  void SetUp() override {
    dir_ = unique_temp_dir("auth_header_test");
    daemon_ = start_daemon(tls_test_config(dir_, make_cert("localhost")));
    client_ctx_.set_verify_mode(ssl::verify_none);
  }
  void TearDown() override {
    daemon_->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  tcp::endpoint ep() const { return *daemon_->https_endpoint(); }

  std::filesystem::path dir_;
  std::unique_ptr<server::Daemon> daemon_;
  ssl::context client_ctx_{ssl::context::tls_client};
};

// The control: the same helper with an honest header is accepted without a challenge, so the
// refusals below are the server's checks and not a broken test client.
TEST_F(AuthHeaderTest, ValidHeaderIsConfirmed) {
  Keys keys;
  TlsRelayTestClient c(client_ctx_);
  auto header = valid_header();
  ASSERT_FALSE(c.connect(
      ep(), UpgradeOptions{}.with_auth_header([&](SSL* ssl) { return header(ssl, keys); })));
  EXPECT_EQ(c.read(), kConfirm);
}

TEST_P(AuthHeaderTest, FallsBackToChallenge) {
  Keys keys;
  TlsRelayTestClient c(client_ctx_);
  ASSERT_FALSE(c.connect(ep(), UpgradeOptions{}.with_auth_header(
                                   [&](SSL* ssl) { return GetParam().header(ssl, keys); })));
  auto first = c.read();
  ASSERT_TRUE(first) << c.last_error().message();
  EXPECT_NE(*first, kConfirm) << "header accepted although it does not prove the key";
  ASSERT_TRUE(is_challenge(*first));
  EXPECT_EQ(daemon_->client_count(), 0u);
  // The challenge still works for the key the header named.
  auto auth = relay::decode_handshake(*first);
  auto challenge = std::get<relay::ServerChallenge>(std::get<relay::HandshakeMessage>(auth));
  ASSERT_TRUE(c.write(relay::encode(
      relay::HandshakeMessage{relay::sign_challenge(keys.claimed, challenge.challenge)})));
  EXPECT_EQ(c.read(), kConfirm);
  EXPECT_TRUE(c.ping_barrier());
}

// The raw client (raw_tls_client.hpp): plain socket, SSL_connect, SSL_export_keying_material,
// hand-written upgrade. Returns the first WebSocket message after the 101, or nullopt (with a
// test failure).
std::optional<Bytes> raw_openssl_first_message(const tcp::endpoint& ep, const HeaderFn& header,
                                               const Keys& keys) {
  RawTlsClient c(ep.port());
  if (!c.connected()) {
    ADD_FAILURE() << "TLS connect failed";
    return std::nullopt;
  }
  const auto upgrade = c.relay_upgrade(header(c.ssl(), keys));
  if (!upgrade.first_message) {
    ADD_FAILURE() << "no WebSocket message after the upgrade: " << upgrade.head;
    return std::nullopt;
  }
  EXPECT_EQ(upgrade.head.rfind("HTTP/1.1 101", 0), 0u) << upgrade.head;
  EXPECT_EQ(upgrade.first_byte, 0x82);  // FIN + binary
  return upgrade.first_message;
}

TEST_F(AuthHeaderTest, RawOpenSslValidHeaderIsConfirmed) {
  Keys keys;
  EXPECT_EQ(raw_openssl_first_message(ep(), valid_header(), keys), kConfirm);
}

TEST_P(AuthHeaderTest, RawOpenSslFallsBackToChallenge) {
  Keys keys;
  auto first = raw_openssl_first_message(ep(), GetParam().header, keys);
  ASSERT_TRUE(first);
  EXPECT_NE(*first, kConfirm) << "header accepted although it does not prove the key";
  EXPECT_TRUE(is_challenge(*first));
}

INSTANTIATE_TEST_SUITE_P(Refused, AuthHeaderTest, ::testing::ValuesIn(kBadHeaders),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace iroh::test
