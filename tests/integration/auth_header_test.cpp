// The TLS keying-material header x-iroh-relay-client-auth-v1 (spec relay.md §4.3) must prove the
// key it names: a header signed by another key, with a corrupted signature, a suffix that is not
// the exporter's, or keying material exported with another label or context is ignored and the
// server falls back to the challenge (§4.1): a ServerChallenge, never ServerConfirmsAuth. Checked
// with the Beast test client and with a client written against OpenSSL's SSL_* API directly.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"
#include "integration/tls_fixture.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::EndpointId;
using relay::SecretKey;

constexpr std::string_view kWrongLabel = "iroh-relay handshake v2";

// TLS exporter output as §4.3 defines it, but with any label and context.
std::array<std::uint8_t, 32> export_ekm(SSL* ssl, std::string_view label,
                                        const EndpointId& context) {
  std::array<std::uint8_t, 32> ekm{};
  if (SSL_export_keying_material(ssl, ekm.data(), ekm.size(), label.data(), label.size(),
                                 context.bytes.data(), context.bytes.size(), 1) != 1) {
    ADD_FAILURE() << "SSL_export_keying_material failed";
  }
  return ekm;
}

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
       auto ekm = export_ekm(ssl, relay::kExporterLabel, k.claimed.public_key());
       auto auth = relay::sign_key_material(k.other, ekm);
       auth.public_key = k.claimed.public_key();
       return relay::encode_auth_header(auth);
     }},
    {"CorruptedSignature",
     [](SSL* ssl, const Keys& k) {
       auto ekm = export_ekm(ssl, relay::kExporterLabel, k.claimed.public_key());
       auto auth = relay::sign_key_material(k.claimed, ekm);
       auth.signature[17] ^= 0x01;
       return relay::encode_auth_header(auth);
     }},
    {"WrongExporterSuffix",
     [](SSL* ssl, const Keys& k) {
       auto ekm = export_ekm(ssl, relay::kExporterLabel, k.claimed.public_key());
       auto auth = relay::sign_key_material(k.claimed, ekm);
       auth.suffix[0] ^= 0x80;
       return relay::encode_auth_header(auth);
     }},
    {"WrongExporterLabel",
     [](SSL* ssl, const Keys& k) {
       auto ekm = export_ekm(ssl, kWrongLabel, k.claimed.public_key());
       return relay::encode_auth_header(relay::sign_key_material(k.claimed, ekm));
     }},
    {"WrongExporterContext",
     [](SSL* ssl, const Keys& k) {
       // Keying material bound to another EndpointId, correctly signed by the claimed key.
       auto ekm = export_ekm(ssl, relay::kExporterLabel, k.other.public_key());
       return relay::encode_auth_header(relay::sign_key_material(k.claimed, ekm));
     }},
};

HeaderFn valid_header() {
  return [](SSL* ssl, const Keys& k) {
    auto ekm = export_ekm(ssl, relay::kExporterLabel, k.claimed.public_key());
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

// The raw client: plain socket, SSL_connect, SSL_export_keying_material, hand-written upgrade.
// Returns the first WebSocket message after the 101, or nullopt (with a test failure).
std::optional<Bytes> raw_openssl_first_message(const tcp::endpoint& ep, const HeaderFn& header,
                                               const Keys& keys) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(ep.port());
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::optional<Bytes> out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && SSL_connect(ssl) == 1) {
    std::string req =
        "GET /relay HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: iroh-relay-v2\r\n" +
        std::string(relay::kAuthHeader) + ": " + header(ssl, keys) + "\r\n\r\n";
    if (SSL_write(ssl, req.data(), int(req.size())) == int(req.size())) {
      std::string in;
      char buf[4096];
      for (int i = 0; i < 50; ++i) {
        auto head_end = in.find("\r\n\r\n");
        if (head_end != std::string::npos && in.size() >= head_end + 4 + 2) {
          // Server frames are unmasked; handshake messages are short (7-bit length).
          std::size_t len = std::uint8_t(in[head_end + 5]) & 0x7f;
          if (in.size() >= head_end + 4 + 2 + len) {
            EXPECT_EQ(in.rfind("HTTP/1.1 101", 0), 0u) << in;
            EXPECT_EQ(std::uint8_t(in[head_end + 4]), 0x82);  // FIN + binary
            auto* p = reinterpret_cast<const std::uint8_t*>(in.data()) + head_end + 6;
            out = Bytes(p, p + len);
            break;
          }
        }
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, std::size_t(n));
      }
      if (!out) ADD_FAILURE() << "no WebSocket message after the upgrade: " << in;
    }
  } else {
    ADD_FAILURE() << "TLS connect failed";
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return out;
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
