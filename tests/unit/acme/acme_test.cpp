// ACME client building blocks: JWK + thumbprint (checked against values computed with
// Python's `cryptography`), ES256 JWS (verified with OpenSSL), CSRs, certificate inspection and
// renewal time, the cert_dir cache and the ACME config keys (URL parsing: tests/unit/http/
// http_client_test.cpp).
#include <gtest/gtest.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "acme/acme_crypto.hpp"
#include "acme/certificate_store.hpp"
#include "acme/tls_alpn.hpp"
#include "certificate.hpp"
#include "core/tls.hpp"
#include "iroh/config.hpp"
#include "iroh/encoding.hpp"
#include "iroh/quic/tls.hpp"

namespace acme = iroh::server::acme;
using nlohmann::json;

namespace {

// Generated with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`; the JWK and
// thumbprint below come from Python's cryptography package (RFC 7638 canonical JSON, SHA-256).
constexpr const char* kFixedKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgch8cp/y31aYCKNBu
jaz+97RlyDBEqRim5TpfhH06a6ihRANCAARok4NjVcmq2z71ISNnil/1bWBUXFCu
UrzZn+wDaxXDTaqIbeig2H4w195F0uqS/Mo3dviSLEFAy7lWSSxjDbMv
-----END PRIVATE KEY-----
)";
constexpr const char* kFixedJwk =
    R"({"crv":"P-256","kty":"EC","x":"aJODY1XJqts-9SEjZ4pf9W1gVFxQrlK82Z_sA2sVw00",)"
    R"("y":"qoht6KDYfjDX3kXS6pL8yjd2-JIsQUDLuVZJLGMNsy8"})";
constexpr const char* kFixedThumbprint = "qbf7KwBzuRliRLOOpDhHNK4oI2RaLQGTpXAc1HfGcis";

// Verifies an ES256 (r || s) signature with OpenSSL's DER-based ECDSA API.
bool verify_es256(const acme::EcKey& key, const std::string& data, const std::string& sig) {
  if (sig.size() != 64) return false;
  ECDSA_SIG* ecdsa = ECDSA_SIG_new();
  ECDSA_SIG_set0(ecdsa, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(ecdsa, &der);
  ECDSA_SIG_free(ecdsa);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.native()) == 1 &&
            EVP_DigestVerify(ctx, der, std::size_t(der_len),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  return ok;
}

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("acme_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

unsigned file_mode(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

// A JWS member (RFC 7515 §7.2.2) decoded to its text; "" if it is not base64url.
std::string b64_text(std::string_view member) {
  auto bytes = iroh::encoding::base64url_decode(member);
  return bytes ? std::string(bytes->begin(), bytes->end()) : std::string();
}

}  // namespace

TEST(AcmeKey, JwkAndThumbprintMatchAnIndependentImplementation) {
  acme::EcKey key = acme::EcKey::from_pem(kFixedKey);
  EXPECT_EQ(key.jwk_json(), kFixedJwk);
  EXPECT_EQ(key.thumbprint(), kFixedThumbprint);
  // PEM round trip keeps the key.
  EXPECT_EQ(acme::EcKey::from_pem(key.to_pem()).thumbprint(), kFixedThumbprint);
}

TEST(AcmeKey, RejectsKeysThatAreNotP256) {
  EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(ed, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, ed, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, std::size_t(n));
  BIO_free(bio);
  EVP_PKEY_free(ed);
  EXPECT_THROW(acme::EcKey::from_pem(pem), std::runtime_error);
  EXPECT_THROW(acme::EcKey::from_pem("not a key"), std::runtime_error);
}

TEST(AcmeJws, NewAccountFormEmbedsTheJwkAndVerifies) {
  acme::EcKey key = acme::EcKey::generate();
  std::string jws = acme::jws_es256(key, "https://ca.test/new-acct", "nonce-1",
                                    R"({"termsOfServiceAgreed":true})", "");
  json doc = json::parse(jws);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.size(), 3u);
  json header = json::parse(b64_text(doc["protected"].get<std::string>()));
  EXPECT_EQ(header["alg"], "ES256");
  EXPECT_EQ(header["nonce"], "nonce-1");
  EXPECT_EQ(header["url"], "https://ca.test/new-acct");
  EXPECT_EQ(header["jwk"], json::parse(key.jwk_json()));
  EXPECT_FALSE(header.contains("kid"));
  EXPECT_EQ(b64_text(doc["payload"].get<std::string>()), R"({"termsOfServiceAgreed":true})");
  std::string signing_input =
      doc["protected"].get<std::string>() + "." + doc["payload"].get<std::string>();
  std::string sig = b64_text(doc["signature"].get<std::string>());
  EXPECT_TRUE(verify_es256(key, signing_input, sig));
  EXPECT_FALSE(verify_es256(key, signing_input + "x", sig));
}

TEST(AcmeJws, KidFormAndPostAsGet) {
  acme::EcKey key = acme::EcKey::from_pem(kFixedKey);
  std::string jws =
      acme::jws_es256(key, "https://ca.test/order/1", "n2", "", "https://ca.test/acct/7");
  json doc = json::parse(jws);
  json header = json::parse(b64_text(doc["protected"].get<std::string>()));
  EXPECT_EQ(header["kid"], "https://ca.test/acct/7");
  EXPECT_FALSE(header.contains("jwk"));
  EXPECT_EQ(doc["payload"], "");  // POST-as-GET: empty payload (RFC 8555 §6.3)
  std::string sig = b64_text(doc["signature"].get<std::string>());
  EXPECT_TRUE(verify_es256(key, doc["protected"].get<std::string>() + ".", sig));
  EXPECT_THROW(acme::jws_es256(key, "https://x\n", "n", "", ""), std::runtime_error);
}

TEST(AcmeCsr, NamesEveryHostAndIsSignedByTheKey) {
  acme::EcKey key = acme::EcKey::generate();
  std::string der = acme::make_csr_der(key, {"relay.example.com", "b.example.com"});
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, long(der.size()));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_REQ_verify(req, key.native()), 1);
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
  EXPECT_EQ(EVP_PKEY_eq(pub, key.native()), 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  ASSERT_NE(exts, nullptr);
  std::vector<std::string> names;
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
    auto* gens = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext));
    for (int j = 0; j < sk_GENERAL_NAME_num(gens); ++j) {
      GENERAL_NAME* gen = sk_GENERAL_NAME_value(gens, j);
      if (gen->type == GEN_DNS) {
        names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gen->d.dNSName)),
                           ASN1_STRING_length(gen->d.dNSName));
      }
    }
    GENERAL_NAMES_free(gens);
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  EXPECT_EQ(names, (std::vector<std::string>{"relay.example.com", "b.example.com"}));
  EXPECT_THROW(acme::make_csr_der(key, {}), std::runtime_error);
  EXPECT_THROW(acme::make_csr_der(key, {"a.example,DNS:evil.example"}), std::runtime_error);
}

TEST(AcmeCertificate, InfoMatchAndRenewalTime) {
  auto pem = iroh::quic::generate_self_signed_certificate("relay.example");
  ASSERT_TRUE(pem);
  acme::CertificateInfo info = acme::certificate_info(pem->certificate);
  EXPECT_LT(info.not_before, std::chrono::system_clock::now());
  EXPECT_GT(info.not_after, std::chrono::system_clock::now() + std::chrono::days(300));
  EXPECT_NE(info.issuer.find("CN=relay.example"), std::string::npos);
  EXPECT_FALSE(info.serial.empty());
  // A year-long certificate: renewal 30 days before expiry (the cap), not a third before.
  EXPECT_EQ(acme::renewal_time(info), info.not_after - std::chrono::days(30));

  EXPECT_TRUE(acme::certificate_matches(pem->certificate, pem->private_key, {"relay.example"}));
  EXPECT_TRUE(acme::certificate_matches(pem->certificate, pem->private_key, {"localhost"}));
  EXPECT_FALSE(acme::certificate_matches(pem->certificate, pem->private_key, {"other.example"}));
  auto other = iroh::quic::generate_self_signed_certificate("relay.example");
  EXPECT_FALSE(acme::certificate_matches(pem->certificate, other->private_key, {"relay.example"}));
  EXPECT_THROW(acme::certificate_info("garbage"), std::runtime_error);
}

TEST(AcmeCertificate, ShortLivedCertificatesRenewWithAThirdLeft) {
  acme::CertificateInfo info;
  info.not_before = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
  info.not_after = info.not_before + std::chrono::seconds(90);
  EXPECT_EQ(acme::renewal_time(info), info.not_before + std::chrono::seconds(60));
  info.not_after = info.not_before + std::chrono::days(90);  // Let's Encrypt today
  EXPECT_EQ(acme::renewal_time(info), info.not_before + std::chrono::days(60));
}

TEST(AcmeStore, AtomicWritesAndPersistentAccountKey) {
  auto dir = temp_dir("store");
  acme::CertificateStore store(dir / "certs");
  EXPECT_FALSE(store.load_certificate());
  acme::EcKey account = store.load_or_create_account_key();
  EXPECT_EQ(file_mode(store.account_key_path()), 0600u);
  EXPECT_EQ(file_mode(store.dir()), 0700u);
  EXPECT_EQ(store.load_or_create_account_key().thumbprint(), account.thumbprint());

  auto pem = iroh::quic::generate_self_signed_certificate("relay.example");
  store.save_certificate({pem->certificate, pem->private_key});
  EXPECT_EQ(file_mode(store.key_path()), 0600u);
  auto loaded = store.load_certificate();
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->chain_pem, pem->certificate);
  EXPECT_EQ(loaded->key_pem, pem->private_key);
  EXPECT_FALSE(std::filesystem::exists(store.key_path().string() + ".tmp"));

  // startup_certificate: the cache when it covers the names, else a temporary certificate.
  iroh::config::TlsConfig tls;
  tls.cert_mode = iroh::config::CertMode::LetsEncrypt;
  tls.cert_dir = store.dir();
  tls.hostname = {"relay.example"};
  EXPECT_EQ(acme::startup_certificate(tls).chain_pem, pem->certificate);
  tls.hostname = {"renamed.example"};
  acme::PemPair temporary = acme::startup_certificate(tls);
  EXPECT_NE(temporary.chain_pem, pem->certificate);
  EXPECT_TRUE(
      acme::certificate_matches(temporary.chain_pem, temporary.key_pem, {"renamed.example"}));

  // A damaged account key is reported, not silently replaced (that would orphan the account).
  std::ofstream(store.account_key_path()) << "damaged";
  EXPECT_THROW(store.load_or_create_account_key(), std::runtime_error);
  std::filesystem::remove_all(dir);
}

TEST(AcmeConfig, DirectoryAndCaFileKeys) {
  using iroh::config::parse_yaml;
  const std::string base =
      "tls:\n  cert_mode: letsencrypt\n  hostname: a.example\n"
      "  contact: a@example.com\n";
  EXPECT_EQ(parse_yaml(base, "t").tls->acme_directory_url,
            "https://acme-v02.api.letsencrypt.org/directory");
  EXPECT_EQ(parse_yaml(base + "  prod_tls: false\n", "t").tls->acme_directory_url,
            "https://acme-staging-v02.api.letsencrypt.org/directory");
  auto cfg = parse_yaml(base + "  acme_directory_url: https://127.0.0.1:14000/dir\n", "t");
  EXPECT_EQ(cfg.tls->acme_directory_url, "https://127.0.0.1:14000/dir");
  EXPECT_TRUE(cfg.tls->acme_ca_file.empty());
  try {
    parse_yaml(base + "  acme_directory_url: http://ca.test/dir\n", "relay.yaml");
    FAIL() << "http:// accepted";
  } catch (const iroh::config::ConfigError& e) {
    EXPECT_EQ(e.line(), 5);
    EXPECT_EQ(e.key(), "tls.acme_directory_url");
  }
  try {
    parse_yaml(base + "  acme_ca_file: /nonexistent/ca.pem\n", "relay.yaml");
    FAIL() << "missing CA file accepted";
  } catch (const iroh::config::ConfigError& e) {
    EXPECT_EQ(e.key(), "tls.acme_ca_file");
  }
  auto dir = temp_dir("config");
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "ca.pem") << "x";
  cfg = parse_yaml(base + "  acme_ca_file: " + (dir / "ca.pem").string() + "\n", "t");
  EXPECT_EQ(cfg.tls->acme_ca_file, dir / "ca.pem");
  std::filesystem::remove_all(dir);
}

TEST(AcmeConfig, ChallengeKey) {
  using iroh::config::AcmeChallenge;
  using iroh::config::parse_yaml;
  const std::string base =
      "tls:\n  cert_mode: letsencrypt\n  hostname: a.example\n"
      "  contact: a@example.com\n";
  EXPECT_EQ(parse_yaml(base, "t").tls->acme_challenge, AcmeChallenge::Http01);
  EXPECT_EQ(parse_yaml(base + "  acme_challenge: tls-alpn-01\n", "t").tls->acme_challenge,
            AcmeChallenge::TlsAlpn01);
  EXPECT_EQ(parse_yaml(base + "  acme_challenge: HTTP-01\n", "t").tls->acme_challenge,
            AcmeChallenge::Http01);
  try {
    parse_yaml(base + "  acme_challenge: dns-01\n", "relay.yaml");
    FAIL() << "dns-01 accepted";
  } catch (const iroh::config::ConfigError& e) {
    EXPECT_EQ(e.line(), 5);
    EXPECT_EQ(e.key(), "tls.acme_challenge");
  }
  // The reference relay's LetsEncrypt mode answers TLS-ALPN-01 (tokio-rustls-acme).
  auto toml = iroh::config::parse_relay_toml(
      "[tls]\ncert_mode = \"LetsEncrypt\"\nhostname = \"a.example\"\ncontact = \"a@example.com\"\n",
      "relay.toml");
  EXPECT_EQ(toml.tls->acme_challenge, AcmeChallenge::TlsAlpn01);
}

namespace {

struct Handshake {
  bool ok = false;
  std::string alpn;
  std::string subject_cn;
  bool acme_extension = false;
  bool acme_extension_critical = false;
  std::string acme_extension_value;  // the DER extnValue
};

// A TLS handshake over an in-memory BIO pair (no sockets) with `server`, offering `alpn` (wire
// format) and `sni`.
Handshake memory_handshake(SSL_CTX* server, const char* sni, const std::string& alpn) {
  Handshake out;
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL* client = SSL_new(client_ctx);
  SSL* srv = SSL_new(server);
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(srv, server_bio, server_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(srv);
  if (sni) SSL_set_tlsext_host_name(client, sni);
  if (!alpn.empty()) {
    SSL_set_alpn_protos(client, reinterpret_cast<const unsigned char*>(alpn.data()),
                        unsigned(alpn.size()));
  }
  for (int i = 0; i < 50 && !out.ok; ++i) {
    int c = SSL_do_handshake(client);
    int s = SSL_do_handshake(srv);
    out.ok = c == 1 && s == 1;
  }
  const unsigned char* proto = nullptr;
  unsigned proto_len = 0;
  SSL_get0_alpn_selected(client, &proto, &proto_len);
  out.alpn.assign(reinterpret_cast<const char*>(proto), proto_len);
  if (X509* peer = SSL_get1_peer_certificate(client)) {
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    out.subject_cn = cn;
    ASN1_OBJECT* oid = OBJ_txt2obj(acme::kAcmeIdentifierOid, 1);
    int index = X509_get_ext_by_OBJ(peer, oid, -1);
    ASN1_OBJECT_free(oid);
    if (index >= 0) {
      X509_EXTENSION* ext = X509_get_ext(peer, index);
      out.acme_extension = true;
      out.acme_extension_critical = X509_EXTENSION_get_critical(ext) == 1;
      const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
      out.acme_extension_value.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                                      std::size_t(ASN1_STRING_length(data)));
    }
    X509_free(peer);
  }
  SSL_free(client);
  SSL_free(srv);
  SSL_CTX_free(client_ctx);
  return out;
}

std::string alpn_wire(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto n : names) {
    out += char(n.size());
    out += n;
  }
  return out;
}

}  // namespace

TEST(AcmeTlsAlpn, ValidationCertificateCarriesTheCriticalAcmeIdentifier) {
  auto [cert_pem, key_pem] = acme::make_tls_alpn_certificate("Relay.Example", "tok.thumb");
  EXPECT_TRUE(acme::certificate_matches(cert_pem, key_pem, {"relay.example"}));
  EXPECT_FALSE(acme::certificate_matches(cert_pem, key_pem, {"localhost"}));
  EXPECT_THROW(acme::make_tls_alpn_certificate("", "x"), std::runtime_error);
  EXPECT_THROW(acme::make_tls_alpn_certificate("a,DNS:b", "x"), std::runtime_error);
}

TEST(AcmeTlsAlpn, ResponderAnswersOnlyAcmeTlsForAPendingDomain) {
  auto pem = iroh::quic::generate_self_signed_certificate("relay.example");
  ASSERT_TRUE(pem);
  auto relay_ctx = iroh::server::make_https_context({pem->certificate, pem->private_key});
  SSL_CTX* server = relay_ctx->native_handle();
  auto& challenges = acme::TlsAlpnChallenges::instance();
  const std::string acme_tls = alpn_wire({"acme-tls/1"});
  const std::string http11 = alpn_wire({"http/1.1"});

  // Nothing pending: acme-tls/1 gets the relay certificate and no ALPN.
  Handshake h = memory_handshake(server, "relay.example", acme_tls);
  EXPECT_TRUE(h.ok);
  EXPECT_EQ(h.alpn, "");
  EXPECT_FALSE(h.acme_extension);

  challenges.publish("Relay.Example", "token.thumbprint");
  h = memory_handshake(server, "relay.example", acme_tls);
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(h.alpn, "acme-tls/1");
  EXPECT_TRUE(h.acme_extension);
  EXPECT_TRUE(h.acme_extension_critical);
  unsigned char digest[32];
  const std::string key_auth = "token.thumbprint";
  SHA256(reinterpret_cast<const unsigned char*>(key_auth.data()), key_auth.size(), digest);
  EXPECT_EQ(h.acme_extension_value,
            std::string("\x04\x20", 2) + std::string(reinterpret_cast<char*>(digest), 32));

  // Normal clients are unaffected while the challenge is pending.
  for (const std::string& alpn : {http11, std::string()}) {
    h = memory_handshake(server, "relay.example", alpn);
    EXPECT_TRUE(h.ok);
    EXPECT_FALSE(h.acme_extension);
    EXPECT_EQ(h.subject_cn, "relay.example");
  }
  // acme-tls/1 beside http/1.1, another name, or no SNI: the relay certificate.
  h = memory_handshake(server, "other.example", acme_tls);
  EXPECT_FALSE(h.acme_extension);
  h = memory_handshake(server, nullptr, acme_tls);
  EXPECT_FALSE(h.acme_extension);

  challenges.withdraw("relay.example");
  EXPECT_EQ(challenges.pending(), 0u);
  h = memory_handshake(server, "relay.example", acme_tls);
  EXPECT_TRUE(h.ok);
  EXPECT_FALSE(h.acme_extension);
}
