#include "iroh/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace iroh::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// RFC 8032 test 1 public key, and the same in base32.
constexpr const char* kKeyHex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr const char* kKeyBase32 = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkena";
// The Ed25519 base point.
constexpr const char* kBaseHex = "5866666666666666666666666666666666666666666666666666666666666666";
// y = 2 does not decompress to a curve point.
constexpr const char* kNotAPointHex =
    "0200000000000000000000000000000000000000000000000000000000000000";

// Sets (or unsets) an environment variable for the lifetime of the guard.
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Keeps the tests independent of the environment they run in.
class ConfigTest : public ::testing::Test {
 protected:
  EnvGuard token_{"IROH_RELAY_ACCESS_TOKEN", nullptr};
  EnvGuard bearer_{"IROH_RELAY_HTTP_BEARER_TOKEN", nullptr};
  EnvGuard data_dir_{"IROH_RELAY_DATA_DIR", nullptr};
};

// A scratch directory with a readable certificate and key.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "iroh-config-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
    write("default.crt", "-----BEGIN CERTIFICATE-----\n");
    write("default.key", "-----BEGIN PRIVATE KEY-----\n");
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string error_of(std::string_view yaml, bool dev = false) {
  try {
    parse_yaml(yaml, "test.yaml", dev);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

// ---- SocketAddr ---------------------------------------------------------------------------------

TEST(SocketAddrTest, ParsesAndPrints) {
  auto v4 = SocketAddr::parse("127.0.0.1:80");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 80);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:80");

  auto v6 = SocketAddr::parse("[::]:3340");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::");
  EXPECT_EQ(v6->to_string(), "[::]:3340");

  auto v6full = SocketAddr::parse("[2001:db8::1]:443");
  ASSERT_TRUE(v6full);
  EXPECT_EQ(v6full->host, "2001:db8::1");

  auto star = SocketAddr::parse("*:9090");
  ASSERT_TRUE(star);
  EXPECT_EQ(star->host, "::");
  EXPECT_EQ(star->port, 9090);

  auto name = SocketAddr::parse("localhost:0");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->host, "localhost");
  EXPECT_EQ(name->port, 0);
  EXPECT_EQ(SocketAddr::parse("relay.example.com:65535")->port, 65535);
}

TEST(SocketAddrTest, RejectsMalformed) {
  for (const char* bad : {"",
                          ":80",
                          "127.0.0.1",
                          "127.0.0.1:",
                          "127.0.0.1:65536",
                          "127.0.0.1:-1",
                          "127.0.0.1:8a",
                          "::1:80",
                          "[::1]",
                          "[::1]80",
                          "[::1:80",
                          "[zz::1]:80",
                          "[127.0.0.1]:80",
                          "1.2.3:80",
                          "256.0.0.1:80",
                          "bad_host:80",
                          "-a.example:80",
                          "a..b:80",
                          "host:123456",
                          "host: 80"}) {
    EXPECT_FALSE(SocketAddr::parse(bad)) << bad;
  }
}

// ---- defaults -----------------------------------------------------------------------------------

TEST_F(ConfigTest, EmptyFileGivesReferenceDefaults) {
  Config cfg = parse_yaml("", "empty.yaml");
  EXPECT_EQ(cfg.source, "empty.yaml");
  EXPECT_FALSE(cfg.dev);
  EXPECT_TRUE(cfg.enable_relay);
  EXPECT_EQ(cfg.http_bind_addr.to_string(), "[::]:80");
  EXPECT_FALSE(cfg.tls);
  EXPECT_FALSE(cfg.enable_quic_addr_discovery);
  EXPECT_FALSE(cfg.limits.accept_conn_limit);
  EXPECT_FALSE(cfg.limits.accept_conn_burst);
  EXPECT_FALSE(cfg.limits.client_rx);
  EXPECT_EQ(cfg.limits.max_connections, 65536u);
  EXPECT_EQ(cfg.limits.handshake_timeout, std::chrono::milliseconds(30000));
  EXPECT_EQ(cfg.limits.write_timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(cfg.limits.client_queue_capacity, 512u);
  EXPECT_EQ(cfg.limits.client_queue_bytes, 262144u);
  EXPECT_EQ(cfg.limits.total_queue_bytes, 67108864u);
  EXPECT_EQ(cfg.limits.tcp_notsent_lowat, 131072u);
  EXPECT_TRUE(cfg.enable_metrics);
  EXPECT_EQ(cfg.metrics_bind_addr.to_string(), "[::]:9090");
  EXPECT_EQ(cfg.key_cache_capacity, 1048576u);
  EXPECT_EQ(cfg.relay_threads, 0u);
  EXPECT_EQ(cfg.access.mode, AccessMode::Everyone);
  EXPECT_FALSE(cfg.stun.enabled);
  EXPECT_EQ(cfg.stun.bind_addr.to_string(), "[::]:3478");
  EXPECT_EQ(cfg.data_dir, "/var/lib/iroh-relay");
  EXPECT_EQ(cfg.log_level, "info");
}

// A default-constructed Config (what the daemon uses without a file) matches an empty file.
TEST_F(ConfigTest, DefaultConstructedMatchesEmptyFile) {
  Config constructed;
  Config parsed = parse_yaml("", "empty.yaml");
  EXPECT_EQ(constructed.http_bind_addr, parsed.http_bind_addr);
  EXPECT_EQ(constructed.metrics_bind_addr, parsed.metrics_bind_addr);
  EXPECT_EQ(constructed.stun.bind_addr, parsed.stun.bind_addr);
  EXPECT_EQ(constructed.stun.enabled, parsed.stun.enabled);
  EXPECT_EQ(constructed.data_dir, parsed.data_dir);
  TlsConfig tls;
  Config with_tls = parse_yaml(
      "tls:\n  cert_mode: letsencrypt\n  hostname: a.example\n  contact: a@example.com\n", "t");
  EXPECT_EQ(tls.https_bind_addr, with_tls.tls->https_bind_addr);
  EXPECT_EQ(tls.quic_bind_addr, with_tls.tls->quic_bind_addr);
  EXPECT_EQ(tls.manual_cert_path, with_tls.tls->manual_cert_path);
  EXPECT_EQ(tls.manual_key_path, with_tls.tls->manual_key_path);
}

TEST_F(ConfigTest, CommentOnlyAndEmptyMappingAreEmpty) {
  EXPECT_EQ(parse_yaml("# nothing\n", "x").http_bind_addr.port, 80);
  EXPECT_EQ(parse_yaml("{}\n", "x").http_bind_addr.port, 80);
}

TEST_F(ConfigTest, DerivedAddressesFollowHttpBindAddr) {
  Config cfg = parse_yaml(
      "http_bind_addr: 127.0.0.1:8080\ntls:\n  cert_mode: letsencrypt\n"
      "  hostname: relay.example.com\n  contact: a@example.com\n",
      "t.yaml");
  EXPECT_EQ(cfg.metrics_bind_addr.to_string(), "127.0.0.1:9090");
  EXPECT_EQ(cfg.stun.bind_addr.to_string(), "127.0.0.1:3478");
  ASSERT_TRUE(cfg.tls);
  EXPECT_EQ(cfg.tls->https_bind_addr.to_string(), "127.0.0.1:443");
  EXPECT_EQ(cfg.tls->quic_bind_addr.to_string(), "127.0.0.1:7842");

  Config v6 = parse_yaml("http_bind_addr: \"[::1]:1\"\n", "t.yaml");
  EXPECT_EQ(v6.metrics_bind_addr.to_string(), "[::1]:9090");
  EXPECT_EQ(v6.stun.bind_addr.to_string(), "[::1]:3478");
}

TEST_F(ConfigTest, QuicAddrDefaultsToHostOfHttpsAddr) {
  Config cfg = parse_yaml(
      "tls:\n  cert_mode: LetsEncrypt\n  https_bind_addr: 10.0.0.1:8443\n"
      "  hostname: [a.example.com, b.example.com]\n  contact: a@example.com\n  prod_tls: false\n",
      "t.yaml");
  ASSERT_TRUE(cfg.tls);
  EXPECT_EQ(cfg.tls->cert_mode, CertMode::LetsEncrypt);
  EXPECT_EQ(cfg.tls->https_bind_addr.to_string(), "10.0.0.1:8443");
  EXPECT_EQ(cfg.tls->quic_bind_addr.to_string(), "10.0.0.1:7842");
  EXPECT_EQ(cfg.tls->hostname, (std::vector<std::string>{"a.example.com", "b.example.com"}));
  EXPECT_FALSE(cfg.tls->prod_tls);
  EXPECT_EQ(cfg.tls->contact, "a@example.com");
  EXPECT_EQ(cfg.tls->cert_dir, ".");
  EXPECT_FALSE(cfg.tls->dangerous_http_only);
}

TEST_F(ConfigTest, CertPathsDefaultToCertDir) {
  TempDir dir;
  Config cfg =
      parse_yaml("tls:\n  cert_mode: manual\n  cert_dir: " + dir.path().string() + "\n", "t.yaml");
  ASSERT_TRUE(cfg.tls);
  EXPECT_EQ(cfg.tls->cert_mode, CertMode::Manual);
  EXPECT_EQ(cfg.tls->manual_cert_path, dir.path() / "default.crt");
  EXPECT_EQ(cfg.tls->manual_key_path, dir.path() / "default.key");
  EXPECT_TRUE(cfg.tls->prod_tls);
}

TEST_F(ConfigTest, ExplicitCertPathsAndReloadingMode) {
  TempDir dir;
  auto crt = dir.write("relay.pem", "cert");
  auto key = dir.write("relay.key", "key");
  Config cfg = parse_yaml("tls:\n  cert_mode: Reloading\n  manual_cert_path: " + crt.string() +
                              "\n  manual_key_path: " + key.string() + "\n",
                          "t.yaml");
  ASSERT_TRUE(cfg.tls);
  EXPECT_EQ(cfg.tls->cert_mode, CertMode::Reloading);
  EXPECT_EQ(cfg.tls->manual_cert_path, crt);
  EXPECT_EQ(cfg.tls->manual_key_path, key);
}

TEST_F(ConfigTest, EveryTopLevelKey) {
  Config cfg = parse_yaml(R"(enable_relay: false
http_bind_addr: 127.0.0.1:3340
enable_metrics: false
metrics_bind_addr: 127.0.0.1:9999
key_cache_capacity: 0
relay_threads: 3
enable_stun: true
stun_bind_addr: "*:3479"
data_dir: /tmp/relay-data
log_level: debug
)",
                          "t.yaml");
  EXPECT_EQ(cfg.relay_threads, 3u);
  EXPECT_FALSE(cfg.enable_relay);
  EXPECT_EQ(cfg.http_bind_addr.to_string(), "127.0.0.1:3340");
  EXPECT_FALSE(cfg.enable_metrics);
  EXPECT_EQ(cfg.metrics_bind_addr.to_string(), "127.0.0.1:9999");
  EXPECT_EQ(cfg.key_cache_capacity, 0u);
  EXPECT_TRUE(cfg.stun.enabled);
  EXPECT_EQ(cfg.stun.bind_addr.to_string(), "[::]:3479");
  EXPECT_EQ(cfg.data_dir, "/tmp/relay-data");
  EXPECT_EQ(cfg.log_level, "debug");
}

// ---- --dev --------------------------------------------------------------------------------------

TEST_F(ConfigTest, DevDefault) {
  Config cfg = dev_default();
  EXPECT_TRUE(cfg.dev);
  EXPECT_EQ(cfg.source, "<dev default>");
  EXPECT_TRUE(cfg.enable_relay);
  EXPECT_EQ(cfg.http_bind_addr.to_string(), "[::]:3340");
  EXPECT_FALSE(cfg.tls);
  EXPECT_TRUE(cfg.stun.enabled);
  EXPECT_EQ(cfg.stun.bind_addr.to_string(), "[::]:3478");
  EXPECT_TRUE(cfg.enable_metrics);
  EXPECT_EQ(cfg.metrics_bind_addr.to_string(), "[::]:9090");
  EXPECT_EQ(cfg.data_dir, "./data");
  EXPECT_EQ(cfg.access.mode, AccessMode::Everyone);
}

TEST_F(ConfigTest, DevDataDirFromEnvironment) {
  EnvGuard env("IROH_RELAY_DATA_DIR", "/srv/relay");
  EXPECT_EQ(dev_default().data_dir, "/srv/relay");
  // Only the dev default: a production file keeps its own default.
  EXPECT_EQ(parse_yaml("", "t.yaml").data_dir, "/var/lib/iroh-relay");
}

TEST_F(ConfigTest, DevOnTopOfFile) {
  Config plain = parse_yaml("log_level: warn\n", "t.yaml", true);
  EXPECT_TRUE(plain.dev);
  EXPECT_EQ(plain.http_bind_addr.to_string(), "[::]:3340");
  EXPECT_TRUE(plain.stun.enabled);
  EXPECT_EQ(plain.log_level, "warn");
  EXPECT_EQ(plain.data_dir, "./data");

  Config explicit_addr =
      parse_yaml("http_bind_addr: 127.0.0.1:1234\nenable_stun: false\n", "t.yaml", true);
  EXPECT_EQ(explicit_addr.http_bind_addr.to_string(), "127.0.0.1:1234");
  EXPECT_FALSE(explicit_addr.stun.enabled);
}

TEST_F(ConfigTest, DevWithTlsIsHttpOnlyAndSkipsCertFilesWithoutQad) {
  // The certificate would only be used by QAD, switched off here: missing files are fine.
  Config cfg = parse_yaml(
      "tls:\n  cert_mode: manual\n  cert_dir: /nonexistent-dir\nenable_quic_addr_discovery: "
      "false\n",
      "t.yaml", true);
  ASSERT_TRUE(cfg.tls);
  EXPECT_TRUE(cfg.tls->dangerous_http_only);

  // --dev turns QAD on by default, and with a tls section QAD serves its certificate.
  EXPECT_EQ(error_of("tls:\n  cert_mode: manual\n  cert_dir: /nonexistent-dir\n", true),
            "test.yaml:2: tls.manual_cert_path: cannot read certificate file "
            "\"/nonexistent-dir/default.crt\": No such file or directory");
}

TEST_F(ConfigTest, DevTurnsQadOnWithoutTls) {
  // No tls section: the daemon generates a self-signed certificate for QAD at start.
  Config cfg = parse_yaml("", "t.yaml", true);
  EXPECT_TRUE(cfg.enable_quic_addr_discovery);
  EXPECT_FALSE(cfg.tls);
  EXPECT_TRUE(dev_default().enable_quic_addr_discovery);
}

TEST_F(ConfigTest, DevWithQadAndReadableCert) {
  TempDir dir;
  Config cfg = parse_yaml("tls:\n  cert_mode: manual\n  cert_dir: " + dir.path().string() +
                              "\nenable_quic_addr_discovery: true\n",
                          "t.yaml", true);
  EXPECT_TRUE(cfg.enable_quic_addr_discovery);
  EXPECT_TRUE(cfg.tls->dangerous_http_only);
}

TEST_F(ConfigTest, DevRejectsLetsEncrypt) {
  EXPECT_THAT(error_of("tls:\n  cert_mode: letsencrypt\n  hostname: a.example.com\n"
                       "  contact: a@example.com\n",
                       true),
              StartsWith("test.yaml:2: tls.cert_mode: letsencrypt cannot be used with --dev"));
}

// ---- limits -------------------------------------------------------------------------------------

TEST_F(ConfigTest, Limits) {
  Config cfg = parse_yaml(R"(limits:
  accept_conn_limit: 12.5
  accept_conn_burst: 30
  client:
    rx:
      bytes_per_second: 1000000
      max_burst_bytes: 4096
  max_connections: 100
  handshake_timeout_ms: 5000
  write_timeout_ms: 1500
  client_queue_capacity: 64
  client_queue_bytes: 524288
  total_queue_bytes: 8388608
  tcp_notsent_lowat: 65536
)",
                          "t.yaml");
  EXPECT_DOUBLE_EQ(*cfg.limits.accept_conn_limit, 12.5);
  EXPECT_EQ(*cfg.limits.accept_conn_burst, 30u);
  ASSERT_TRUE(cfg.limits.client_rx);
  EXPECT_EQ(cfg.limits.client_rx->bytes_per_second, 1000000u);
  EXPECT_EQ(cfg.limits.client_rx->max_burst_bytes, 4096u);
  EXPECT_EQ(cfg.limits.max_connections, 100u);
  EXPECT_EQ(cfg.limits.handshake_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(cfg.limits.write_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(cfg.limits.client_queue_capacity, 64u);
  EXPECT_EQ(cfg.limits.client_queue_bytes, 524288u);
  EXPECT_EQ(cfg.limits.total_queue_bytes, 8388608u);
  EXPECT_EQ(cfg.limits.tcp_notsent_lowat, 65536u);
}

TEST_F(ConfigTest, BurstDefaultsToATenthOfRate) {
  Config cfg = parse_yaml("limits:\n  client:\n    rx:\n      bytes_per_second: 12345\n", "t");
  ASSERT_TRUE(cfg.limits.client_rx);
  EXPECT_EQ(cfg.limits.client_rx->max_burst_bytes, 1234u);
  Config minimal = parse_yaml("limits:\n  client:\n    rx:\n      bytes_per_second: 10\n", "t");
  EXPECT_EQ(minimal.limits.client_rx->max_burst_bytes, 1u);
  Config integer_limit = parse_yaml("limits:\n  accept_conn_limit: 7\n", "t");
  EXPECT_DOUBLE_EQ(*integer_limit.limits.accept_conn_limit, 7.0);
}

TEST_F(ConfigTest, LimitErrors) {
  EXPECT_EQ(error_of("relay_threads: 1025\n"),
            "test.yaml:1: relay_threads: out of range: 1025 (allowed 0 to 1024)");
  EXPECT_EQ(error_of("limits:\n  client:\n    rx:\n      max_burst_bytes: 100\n"),
            "test.yaml:4: limits.client.rx.max_burst_bytes: set without bytes_per_second (which "
            "enables the limit)");
  EXPECT_EQ(error_of("limits:\n  client:\n    rx:\n      bytes_per_second: 9\n"),
            "test.yaml:4: limits.client.rx.bytes_per_second: out of range: 9 (must be at least 10: "
            "the refill per 100 ms period would be 0)");
  EXPECT_THAT(error_of("limits:\n  client:\n    rx:\n      bytes_per_second: 0\n"),
              StartsWith("test.yaml:4: limits.client.rx.bytes_per_second: out of range: 0"));
  EXPECT_EQ(error_of("limits:\n  client:\n    rx:\n      bytes_per_second: 4294967296\n"),
            "test.yaml:4: limits.client.rx.bytes_per_second: out of range: 4294967296 (allowed 0 "
            "to 4294967295)");
  EXPECT_THAT(error_of("limits:\n  client:\n    rx:\n      bytes_per_second: 100\n"
                       "      max_burst_bytes: 0\n"),
              StartsWith("test.yaml:5: limits.client.rx.max_burst_bytes: out of range: 0"));
  EXPECT_THAT(error_of("limits:\n  accept_conn_limit: -1\n"),
              StartsWith("test.yaml:2: limits.accept_conn_limit: out of range: -1"));
  EXPECT_THAT(error_of("limits:\n  accept_conn_limit: .nan\n"),
              StartsWith("test.yaml:2: limits.accept_conn_limit: expected a number"));
  EXPECT_THAT(error_of("limits:\n  accept_conn_burst: 0\n"),
              StartsWith("test.yaml:2: limits.accept_conn_burst: out of range: 0"));
  EXPECT_THAT(error_of("limits:\n  max_connections: 0\n"),
              StartsWith("test.yaml:2: limits.max_connections: out of range: 0"));
  EXPECT_THAT(error_of("limits:\n  handshake_timeout_ms: 3600001\n"),
              StartsWith("test.yaml:2: limits.handshake_timeout_ms: out of range: 3600001"));
  EXPECT_THAT(error_of("limits:\n  write_timeout_ms: -5\n"),
              StartsWith("test.yaml:2: limits.write_timeout_ms: expected a non-negative integer, "
                         "found \"-5\""));
  EXPECT_THAT(error_of("limits:\n  client_queue_capacity: 99999999999999999999999\n"),
              StartsWith("test.yaml:2: limits.client_queue_capacity: out of range"));
  // A queue must hold one largest frame.
  EXPECT_THAT(error_of("limits:\n  client_queue_bytes: 65535\n"),
              StartsWith("test.yaml:2: limits.client_queue_bytes: out of range: 65535"));
  EXPECT_THAT(error_of("limits:\n  total_queue_bytes: 0\n"),
              StartsWith("test.yaml:2: limits.total_queue_bytes: out of range: 0"));
  EXPECT_THAT(error_of("limits:\n  tcp_notsent_lowat: 1073741825\n"),
              StartsWith("test.yaml:2: limits.tcp_notsent_lowat: out of range: 1073741825"));
  EXPECT_EQ(error_of("limits:\n  client:\n    tx: {}\n"),
            "test.yaml:3: limits.client.tx: unknown key (known keys here: rx)");
}

// ---- access -------------------------------------------------------------------------------------

TEST_F(ConfigTest, AccessEveryone) {
  EXPECT_EQ(parse_yaml("access: everyone\n", "t").access.mode, AccessMode::Everyone);
}

TEST_F(ConfigTest, AccessAllowlistHexAndBase32) {
  Config cfg = parse_yaml(std::string("access:\n  allowlist:\n    - ") + kKeyHex + "\n    - " +
                              kKeyBase32 + "\n    - " + kBaseHex + "\n",
                          "t");
  EXPECT_EQ(cfg.access.mode, AccessMode::Allowlist);
  ASSERT_EQ(cfg.access.endpoints.size(), 3u);
  EXPECT_EQ(cfg.access.endpoints[0].to_hex(), kKeyHex);
  EXPECT_EQ(cfg.access.endpoints[1], cfg.access.endpoints[0]);
  EXPECT_EQ(cfg.access.endpoints[2].to_hex(), kBaseHex);
}

TEST_F(ConfigTest, AccessDenylist) {
  Config cfg = parse_yaml(std::string("access:\n  denylist: [") + kKeyHex + "]\n", "t");
  EXPECT_EQ(cfg.access.mode, AccessMode::Denylist);
  ASSERT_EQ(cfg.access.endpoints.size(), 1u);
  EXPECT_EQ(cfg.access.endpoints[0].to_hex(), kKeyHex);
}

TEST_F(ConfigTest, AccessSharedToken) {
  Config cfg = parse_yaml("access:\n  shared_token: [token-a, \"token b\"]\n", "t");
  EXPECT_EQ(cfg.access.mode, AccessMode::SharedToken);
  EXPECT_EQ(cfg.access.tokens, (std::vector<std::string>{"token-a", "token b"}));
}

TEST_F(ConfigTest, AccessHttp) {
  Config cfg = parse_yaml(
      "access:\n  http:\n    url: https://auth.example.com/relay\n    bearer_token: s3cret\n", "t");
  EXPECT_EQ(cfg.access.mode, AccessMode::Http);
  EXPECT_EQ(cfg.access.http_url, "https://auth.example.com/relay");
  EXPECT_EQ(cfg.access.http_bearer_token, "s3cret");
  Config no_token = parse_yaml("access:\n  http:\n    url: http://127.0.0.1:1/x\n", "t");
  EXPECT_EQ(no_token.access.http_bearer_token, "");
}

TEST_F(ConfigTest, AccessErrors) {
  EXPECT_EQ(error_of("access:\n  allowlist:\n    - abc\n"),
            "test.yaml:3: access.allowlist[0]: invalid endpoint id \"abc\" (expected 64 hex "
            "characters or 52 base32 characters)");
  EXPECT_EQ(
      error_of(std::string("access:\n  denylist: [") + kKeyHex + ",\n    " + kNotAPointHex + "]\n"),
      std::string("test.yaml:3: access.denylist[1]: invalid endpoint id \"") + kNotAPointHex +
          "\" (not an Ed25519 public key)");
  EXPECT_EQ(error_of("access:\n  shared_token: []\n"),
            "test.yaml:2: access.shared_token: the token list must not be empty");
  EXPECT_EQ(error_of("access:\n  shared_token:\n    - a\n    - \"\"\n"),
            "test.yaml:4: access.shared_token[1]: must not be empty");
  EXPECT_EQ(error_of("access: nobody\n"),
            "test.yaml:1: access: unknown access mode \"nobody\" (expected \"everyone\" or a "
            "mapping with one of allowlist, denylist, shared_token, http, capability_issuers)");
  EXPECT_THAT(error_of("access:\n  allowlist: []\n  denylist: []\n"),
              StartsWith("test.yaml:3: access.denylist: only one access mode may be set"));
  EXPECT_THAT(error_of("access:\n  blocklist: []\n"),
              StartsWith("test.yaml:2: access.blocklist: unknown key"));
  EXPECT_EQ(error_of("access:\n  http:\n    bearer_token: x\n"),
            "test.yaml:2: access.http.url: required key is missing");
  EXPECT_THAT(error_of("access:\n  http:\n    url: ftp://x\n"),
              StartsWith("test.yaml:3: access.http.url: invalid URL \"ftp://x\""));
  EXPECT_THAT(error_of("access:\n  allowlist: " + std::string(kKeyHex) + "\n"),
              StartsWith("test.yaml:2: access.allowlist: expected a list of endpoint ids"));
}

// ---- environment --------------------------------------------------------------------------------

TEST_F(ConfigTest, AccessTokenFromEnvironmentReplacesList) {
  EnvGuard env("IROH_RELAY_ACCESS_TOKEN", "from-env");
  Config cfg = parse_yaml("access:\n  shared_token: [a, b]\n", "t");
  EXPECT_EQ(cfg.access.tokens, (std::vector<std::string>{"from-env"}));
  // The list may be left empty in the file when the token comes from the environment.
  EXPECT_EQ(parse_yaml("access:\n  shared_token: []\n", "t").access.tokens,
            (std::vector<std::string>{"from-env"}));
  // Other modes are unaffected.
  EXPECT_EQ(parse_yaml("access: everyone\n", "t").access.tokens.size(), 0u);
}

TEST_F(ConfigTest, EmptyAccessTokenFromEnvironmentIsAnError) {
  EnvGuard env("IROH_RELAY_ACCESS_TOKEN", "");
  EXPECT_EQ(error_of("access:\n  shared_token: [a]\n"),
            "test.yaml:2: access.shared_token: IROH_RELAY_ACCESS_TOKEN is set but empty");
}

TEST_F(ConfigTest, BearerTokenFromEnvironment) {
  EnvGuard env("IROH_RELAY_HTTP_BEARER_TOKEN", "env-bearer");
  Config cfg =
      parse_yaml("access:\n  http:\n    url: https://a.example\n    bearer_token: file\n", "t");
  EXPECT_EQ(cfg.access.http_bearer_token, "env-bearer");
  Config without = parse_yaml("access:\n  http:\n    url: https://a.example\n", "t");
  EXPECT_EQ(without.access.http_bearer_token, "env-bearer");
}

// ---- error classes ------------------------------------------------------------------------------

TEST_F(ConfigTest, ErrorCarriesItsParts) {
  try {
    parse_yaml("enable_relay: true\nbogus: 1\n", "my.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "my.yaml");
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.key(), "bogus");
    EXPECT_THAT(e.reason(), StartsWith("unknown key"));
    EXPECT_THAT(std::string(e.what()), StartsWith("my.yaml:2: bogus: unknown key (known keys"));
  }
}

TEST_F(ConfigTest, UnknownKeysAreErrorsAtEveryLevel) {
  EXPECT_THAT(error_of("enable_relay: true\n\nenable_relays: true\n"),
              StartsWith("test.yaml:3: enable_relays: unknown key"));
  EXPECT_THAT(error_of("tls:\n  cert_mode: manual\n  certmode: manual\n"),
              StartsWith("test.yaml:3: tls.certmode: unknown key"));
  EXPECT_THAT(error_of("limits:\n  client:\n    rx:\n      bps: 1\n"),
              StartsWith("test.yaml:4: limits.client.rx.bps: unknown key"));
  EXPECT_THAT(error_of("access:\n  http:\n    url: https://x\n    token: y\n"),
              StartsWith("test.yaml:4: access.http.token: unknown key"));
}

TEST_F(ConfigTest, DuplicateKeys) {
  EXPECT_EQ(error_of("log_level: info\nlog_level: debug\n"),
            "test.yaml:2: log_level: duplicate key (first set on line 1)");
}

TEST_F(ConfigTest, WrongTypes) {
  EXPECT_EQ(error_of("enable_relay: yes please\n"),
            "test.yaml:1: enable_relay: expected a boolean (true or false), found \"yes please\"");
  EXPECT_EQ(error_of("enable_metrics: \"true\"\n"),
            "test.yaml:1: enable_metrics: expected a boolean (true or false), found a quoted "
            "string");
  EXPECT_EQ(error_of("key_cache_capacity: \"10\"\n"),
            "test.yaml:1: key_cache_capacity: expected a non-negative integer, found a quoted "
            "string");
  EXPECT_EQ(error_of("key_cache_capacity: [1]\n"),
            "test.yaml:1: key_cache_capacity: expected a non-negative integer, found a list");
  EXPECT_EQ(error_of("key_cache_capacity: 1.5\n"),
            "test.yaml:1: key_cache_capacity: expected a non-negative integer, found \"1.5\"");
  EXPECT_EQ(error_of("log_level:\n"), "test.yaml:1: log_level: expected a string, found nothing");
  EXPECT_EQ(error_of("tls: manual\n"),
            "test.yaml:1: tls: expected a mapping, found a plain scalar");
  EXPECT_EQ(error_of("limits: [1, 2]\n"), "test.yaml:1: limits: expected a mapping, found a list");
  EXPECT_EQ(error_of("log_level: loud\n"),
            "test.yaml:1: log_level: unknown log level \"loud\" (expected trace, debug, info, warn "
            "or error)");
  EXPECT_EQ(error_of("data_dir: \"\"\n"), "test.yaml:1: data_dir: must not be empty");
  EXPECT_EQ(error_of("- a\n- b\n"),
            "test.yaml:1: the file must be a mapping of keys, found a list");
  EXPECT_EQ(error_of("[a]: 1\n"), "test.yaml:1: keys must be plain strings, found a list");
}

TEST_F(ConfigTest, OutOfRange) {
  EXPECT_EQ(error_of("key_cache_capacity: 4294967297\n"),
            "test.yaml:1: key_cache_capacity: out of range: 4294967297 (allowed 0 to 4294967296)");
  EXPECT_EQ(error_of("limits:\n  max_connections: 16777217\n"),
            "test.yaml:2: limits.max_connections: out of range: 16777217 (allowed 1 to 16777216)");
}

TEST_F(ConfigTest, InvalidSocketAddrs) {
  EXPECT_EQ(error_of("http_bind_addr: \"::1:80\"\n"),
            "test.yaml:1: http_bind_addr: invalid socket address \"::1:80\" (expected "
            "\"host:port\", \"[v6]:port\" or \"*:port\")");
  EXPECT_THAT(error_of("metrics_bind_addr: 1.2.3.4:99999\n"),
              StartsWith("test.yaml:1: metrics_bind_addr: invalid socket address"));
  EXPECT_THAT(error_of("stun_bind_addr: 3478\n"),
              StartsWith("test.yaml:1: stun_bind_addr: invalid socket address \"3478\""));
  EXPECT_THAT(error_of("tls:\n  cert_mode: letsencrypt\n  https_bind_addr: nope\n"),
              StartsWith("test.yaml:3: tls.https_bind_addr: invalid socket address"));
  EXPECT_THAT(error_of("tls:\n  cert_mode: letsencrypt\n  quic_bind_addr: \"[::1]\"\n"),
              StartsWith("test.yaml:3: tls.quic_bind_addr: invalid socket address"));
}

TEST_F(ConfigTest, TlsErrors) {
  EXPECT_EQ(error_of("tls:\n  prod_tls: true\n"),
            "test.yaml:1: tls.cert_mode: required key is missing");
  EXPECT_EQ(error_of("tls:\n"), "test.yaml:1: tls.cert_mode: required key is missing");
  EXPECT_EQ(error_of("\ntls:\n  cert_mode: selfsigned\n"),
            "test.yaml:3: tls.cert_mode: unknown certificate mode \"selfsigned\" (expected "
            "manual, reloading or letsencrypt)");
  EXPECT_EQ(error_of("tls:\n  cert_mode: letsencrypt\n  contact: a@example.com\n"),
            "test.yaml:2: tls.hostname: letsencrypt needs at least one hostname");
  EXPECT_EQ(error_of("tls:\n  cert_mode: letsencrypt\n  hostname: [a.example.com]\n"),
            "test.yaml:2: tls.contact: letsencrypt needs a contact address");
  EXPECT_EQ(error_of("tls:\n  cert_mode: letsencrypt\n  hostname: [a.example.com, \"\"]\n"),
            "test.yaml:3: tls.hostname[1]: must not be empty");
}

TEST_F(ConfigTest, QadNeedsTls) {
  EXPECT_EQ(error_of("enable_quic_addr_discovery: true\n"),
            "test.yaml:1: enable_quic_addr_discovery: QUIC address discovery needs a tls section "
            "(it serves QUIC with the relay's certificate)");
  EXPECT_FALSE(parse_yaml("enable_quic_addr_discovery: false\n", "t").enable_quic_addr_discovery);
}

TEST_F(ConfigTest, UnreadableCertFiles) {
  TempDir dir;
  auto crt = dir.write("ok.crt", "cert");
  // Default paths under a directory without them.
  EXPECT_EQ(error_of("tls:\n  cert_mode: manual\n  cert_dir: /nonexistent-dir\n"),
            "test.yaml:2: tls.manual_cert_path: cannot read certificate file "
            "\"/nonexistent-dir/default.crt\": No such file or directory");
  // An explicit key path is reported on its own line.
  EXPECT_EQ(error_of("tls:\n  cert_mode: reloading\n  manual_cert_path: " + crt.string() +
                     "\n  manual_key_path: /nonexistent.key\n"),
            "test.yaml:4: tls.manual_key_path: cannot read private key file "
            "\"/nonexistent.key\": No such file or directory");
  EXPECT_EQ(error_of("tls:\n  cert_mode: manual\n  manual_cert_path: " + dir.path().string() +
                     "\n  manual_key_path: " + crt.string() + "\n"),
            "test.yaml:3: tls.manual_cert_path: cannot read certificate file \"" +
                dir.path().string() + "\": is a directory");
  // LetsEncrypt never reads them.
  EXPECT_NO_THROW(
      parse_yaml("tls:\n  cert_mode: letsencrypt\n  cert_dir: /nonexistent-dir\n"
                 "  hostname: a.example.com\n  contact: a@example.com\n",
                 "t"));
}

TEST_F(ConfigTest, YamlSyntaxErrorsHaveALine) {
  EXPECT_THAT(error_of("enable_relay: true\naccess: [a,\nlog_level: info\n"),
              StartsWith("test.yaml:4: YAML syntax error: "));
  EXPECT_THAT(error_of("a: 1\n  b: 2\n"), StartsWith("test.yaml:2: YAML syntax error: "));
  EXPECT_THAT(error_of("enable_relay: *missing\n"), StartsWith("test.yaml:1: YAML syntax error: "));
  EXPECT_EQ(error_of("enable_relay: true\n---\nenable_relay: false\n"),
            "test.yaml:3: more than one YAML document in the file");
}

TEST_F(ConfigTest, GarbageNeverCrashes) {
  const std::string inputs[] = {std::string("\0\xff\xfe", 3),
                                std::string(5000, '['),
                                std::string(5000, '{'),
                                "a: !!binary xyz\n",
                                "? |\n  x\n: y\n",
                                "&a [*a]\n",
                                "%YAML 9.9\n---\n",
                                "tls: {cert_mode: [manual]}\n",
                                "access: {http: {url: {}}}\n",
                                "limits: {client: 5}\n"};
  for (const auto& input : inputs) {
    try {
      parse_yaml(input, "fuzz.yaml");
    } catch (const ConfigError& e) {
      EXPECT_THAT(std::string(e.what()), StartsWith("fuzz.yaml")) << input.substr(0, 40);
    }
  }
}

// ---- files --------------------------------------------------------------------------------------

TEST_F(ConfigTest, MissingFileNamesTheFile) {
  try {
    load_file("/nonexistent/relay.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(std::string(e.what()), StartsWith("/nonexistent/relay.yaml: cannot read config"));
  }
  TempDir dir;
  EXPECT_THROW(load_file(dir.path()), ConfigError);
}

TEST_F(ConfigTest, LoadFileReportsItsPath) {
  TempDir dir;
  auto path = dir.write("relay.yaml", "enable_relay: true\nlimits:\n  max_connections: nope\n");
  try {
    load_file(path);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path.string() +
                                         ":3: limits.max_connections: expected a non-negative "
                                         "integer, found \"nope\"");
  }
  auto good = dir.write("good.yaml", "http_bind_addr: 127.0.0.1:0\n");
  Config cfg = load_file(good, true);
  EXPECT_EQ(cfg.source, good);
  EXPECT_TRUE(cfg.dev);
  EXPECT_EQ(cfg.http_bind_addr.to_string(), "127.0.0.1:0");
}

TEST_F(ConfigTest, ExampleFileLoads) {
  fs::path example = fs::path(IROH_SOURCE_DIR) / "config" / "relay.example.yaml";
  Config cfg = load_file(example);
  // The example documents the defaults, so it must load to the same values as an empty file.
  Config defaults = parse_yaml("", example.string());
  EXPECT_EQ(cfg.enable_relay, defaults.enable_relay);
  EXPECT_EQ(cfg.http_bind_addr, defaults.http_bind_addr);
  EXPECT_EQ(cfg.tls.has_value(), defaults.tls.has_value());
  EXPECT_EQ(cfg.enable_quic_addr_discovery, defaults.enable_quic_addr_discovery);
  EXPECT_EQ(cfg.limits.max_connections, defaults.limits.max_connections);
  EXPECT_EQ(cfg.limits.handshake_timeout, defaults.limits.handshake_timeout);
  EXPECT_EQ(cfg.limits.write_timeout, defaults.limits.write_timeout);
  EXPECT_EQ(cfg.limits.client_queue_capacity, defaults.limits.client_queue_capacity);
  EXPECT_EQ(cfg.limits.client_queue_bytes, defaults.limits.client_queue_bytes);
  EXPECT_EQ(cfg.limits.total_queue_bytes, defaults.limits.total_queue_bytes);
  EXPECT_EQ(cfg.limits.tcp_notsent_lowat, defaults.limits.tcp_notsent_lowat);
  EXPECT_EQ(cfg.limits.client_rx.has_value(), defaults.limits.client_rx.has_value());
  EXPECT_EQ(cfg.enable_metrics, defaults.enable_metrics);
  EXPECT_EQ(cfg.metrics_bind_addr, defaults.metrics_bind_addr);
  EXPECT_EQ(cfg.key_cache_capacity, defaults.key_cache_capacity);
  EXPECT_EQ(cfg.access.mode, defaults.access.mode);
  EXPECT_EQ(cfg.stun.enabled, defaults.stun.enabled);
  EXPECT_EQ(cfg.stun.bind_addr, defaults.stun.bind_addr);
  EXPECT_EQ(cfg.data_dir, defaults.data_dir);
  EXPECT_EQ(cfg.log_level, defaults.log_level);
  // And with --dev on top.
  Config dev = load_file(example, true);
  EXPECT_TRUE(dev.dev);
}

// Every commented-out key of the example is valid too once uncommented (TLS aside, whose files
// do not exist here): uncomment the tls section with letsencrypt and the limits, then load.
TEST_F(ConfigTest, ExampleFileCommentedKeysAreValid) {
  fs::path example = fs::path(IROH_SOURCE_DIR) / "config" / "relay.example.yaml";
  std::ifstream in(example);
  std::string text, line;
  bool in_tls = false;
  while (std::getline(in, line)) {
    // "# tls:" block lines are "#   key: value"; uncomment them and the limits examples.
    if (line == "# tls:") {
      in_tls = true;
      text += "tls:\n";
      continue;
    }
    if (in_tls && line.rfind("#   ", 0) == 0) {
      std::string body = line.substr(4);
      if (body.rfind("#", 0) == 0) continue;
      // Names a file on the operator's machine, which must exist at load time.
      if (body.rfind("acme_ca_file:", 0) == 0) continue;
      if (body.rfind("cert_mode:", 0) == 0) body = "cert_mode: letsencrypt";
      text += "  " + body + "\n";
      continue;
    }
    in_tls = false;
    for (const char* key :
         {"accept_conn_limit:", "accept_conn_burst:", "bytes_per_second:", "max_burst_bytes:"}) {
      auto pos = line.find(std::string("# ") + key);
      if (pos != std::string::npos) line = line.substr(0, pos) + line.substr(pos + 2);
    }
    text += line + "\n";
  }
  Config cfg = parse_yaml(text, "uncommented example");
  ASSERT_TRUE(cfg.tls);
  EXPECT_EQ(cfg.tls->hostname, (std::vector<std::string>{"relay.example.com"}));
  EXPECT_EQ(cfg.tls->manual_cert_path, "/etc/iroh-relay/relay.crt");
  ASSERT_TRUE(cfg.limits.client_rx);
  EXPECT_EQ(cfg.limits.client_rx->bytes_per_second, 1048576u);
  EXPECT_EQ(cfg.limits.client_rx->max_burst_bytes, 131072u);
  EXPECT_DOUBLE_EQ(*cfg.limits.accept_conn_limit, 100.0);
  EXPECT_EQ(*cfg.limits.accept_conn_burst, 200u);
}

// ---- address lookup (enable_pkarr, pkarr_put_*, zone_store, enable_dns, dns) -------------------

TEST_F(ConfigTest, LookupDefaults) {
  Config cfg = parse_yaml("", "t.yaml");
  EXPECT_FALSE(cfg.pkarr.enabled);
  EXPECT_EQ(cfg.pkarr.put_rate_limit, PutRateLimitMode::Simple);
  EXPECT_EQ(cfg.pkarr.put_burst, 2u);
  EXPECT_DOUBLE_EQ(cfg.pkarr.put_refill_secs, 4.0);
  EXPECT_EQ(cfg.zone_store.path, fs::path("/var/lib/iroh-relay/pkarr.sqlite3"));
  EXPECT_EQ(cfg.zone_store.eviction, std::chrono::seconds(604800));
  EXPECT_EQ(cfg.zone_store.eviction_interval, std::chrono::seconds(10));
  EXPECT_EQ(cfg.zone_store.cache_capacity, 65536u);
  EXPECT_FALSE(cfg.dns.enabled);
  EXPECT_EQ(cfg.dns.bind_addr.to_string(), "[::]:53");
  EXPECT_EQ(cfg.dns.origins, (std::vector<std::string>{"."}));
  EXPECT_EQ(cfg.dns.default_soa, "ns1.example. hostmaster.example. 0 10800 3600 604800 3600");
  EXPECT_FALSE(cfg.dns.rr_a);
  EXPECT_FALSE(cfg.dns.rr_aaaa);
  EXPECT_FALSE(cfg.dns.rr_ns);
  EXPECT_EQ(cfg.dns.tcp_idle_timeout, std::chrono::milliseconds(1000));
  EXPECT_EQ(cfg.dns.max_tcp_connections, 1024u);

  // A default-constructed Config agrees with an empty file.
  Config constructed;
  EXPECT_EQ(constructed.zone_store.path, cfg.zone_store.path);
  EXPECT_EQ(constructed.dns.bind_addr, cfg.dns.bind_addr);
  EXPECT_EQ(constructed.dns.origins, cfg.dns.origins);
  EXPECT_EQ(constructed.dns.default_soa, cfg.dns.default_soa);
  EXPECT_EQ(constructed.pkarr.put_rate_limit, cfg.pkarr.put_rate_limit);
}

TEST_F(ConfigTest, LookupDevDefaults) {
  Config cfg = dev_default();
  EXPECT_TRUE(cfg.pkarr.enabled);
  EXPECT_EQ(cfg.pkarr.put_rate_limit, PutRateLimitMode::Disabled);
  EXPECT_EQ(cfg.zone_store.path, fs::path("./data/pkarr.sqlite3"));
  EXPECT_TRUE(cfg.dns.enabled);
  EXPECT_EQ(cfg.dns.bind_addr.to_string(), "[::]:5300");
  EXPECT_EQ(cfg.dns.origins, (std::vector<std::string>{"irohdns.example.", "."}));
  EXPECT_EQ(cfg.dns.default_soa,
            "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600");
  EXPECT_EQ(cfg.dns.rr_a, "127.0.0.1");
  EXPECT_FALSE(cfg.dns.rr_aaaa);
  EXPECT_EQ(cfg.dns.rr_ns, "ns1.irohdns.example.");

  // Explicit keys win over the dev defaults; "" unsets a dev record.
  Config over = parse_yaml(
      "enable_pkarr: false\npkarr_put_rate_limit: simple\nenable_dns: false\n"
      "dns:\n  rr_a: \"\"\n  rr_ns: \"\"\n",
      "t.yaml", true);
  EXPECT_FALSE(over.pkarr.enabled);
  EXPECT_EQ(over.pkarr.put_rate_limit, PutRateLimitMode::Simple);
  EXPECT_FALSE(over.dns.enabled);
  EXPECT_FALSE(over.dns.rr_a);
  EXPECT_FALSE(over.dns.rr_ns);
  EXPECT_EQ(over.dns.origins, (std::vector<std::string>{"irohdns.example.", "."}));
}

TEST_F(ConfigTest, LookupEveryKey) {
  Config cfg = parse_yaml(R"(http_bind_addr: 127.0.0.1:8080
data_dir: /srv/relay
enable_pkarr: true
pkarr_put_rate_limit: Smart
pkarr_put_burst: 5
pkarr_put_refill_secs: 0.5
zone_store:
  path: /tmp/zones.db
  eviction_secs: 3600
  eviction_interval_secs: 30
  cache_capacity: 0
enable_dns: true
dns:
  bind_addr: "[::1]:5353"
  origins: [Dns.Example.ORG, irohdns.example., "."]
  default_soa: "ns1.example.org. hostmaster.example.org. 1 2 3 4 5"
  rr_a: 203.0.113.10
  rr_aaaa: "2001:db8::10"
  rr_ns: ns1.example.org
  tcp_idle_timeout_ms: 2500
  max_tcp_connections: 10
)",
                          "t.yaml");
  EXPECT_TRUE(cfg.pkarr.enabled);
  EXPECT_EQ(cfg.pkarr.put_rate_limit, PutRateLimitMode::Smart);
  EXPECT_EQ(cfg.pkarr.put_burst, 5u);
  EXPECT_DOUBLE_EQ(cfg.pkarr.put_refill_secs, 0.5);
  EXPECT_EQ(cfg.zone_store.path, fs::path("/tmp/zones.db"));
  EXPECT_EQ(cfg.zone_store.eviction, std::chrono::seconds(3600));
  EXPECT_EQ(cfg.zone_store.eviction_interval, std::chrono::seconds(30));
  EXPECT_EQ(cfg.zone_store.cache_capacity, 0u);
  EXPECT_TRUE(cfg.dns.enabled);
  EXPECT_EQ(cfg.dns.bind_addr.to_string(), "[::1]:5353");
  EXPECT_EQ(cfg.dns.origins,
            (std::vector<std::string>{"dns.example.org.", "irohdns.example.", "."}));
  EXPECT_EQ(cfg.dns.default_soa, "ns1.example.org. hostmaster.example.org. 1 2 3 4 5");
  EXPECT_EQ(cfg.dns.rr_a, "203.0.113.10");
  EXPECT_EQ(cfg.dns.rr_aaaa, "2001:db8::10");
  EXPECT_EQ(cfg.dns.rr_ns, "ns1.example.org.");
  EXPECT_EQ(cfg.dns.tcp_idle_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(cfg.dns.max_tcp_connections, 10u);

  for (const char* mode : {"disabled", "simple", "smart"}) {
    Config m = parse_yaml(std::string("pkarr_put_rate_limit: ") + mode + "\n", "t.yaml");
    EXPECT_EQ(m.pkarr.put_rate_limit, std::string(mode) == "disabled" ? PutRateLimitMode::Disabled
                                      : std::string(mode) == "simple" ? PutRateLimitMode::Simple
                                                                      : PutRateLimitMode::Smart);
  }
}

TEST_F(ConfigTest, LookupDerivedPaths) {
  // The store and the DNS listener follow data_dir and http_bind_addr unless set.
  Config cfg = parse_yaml("http_bind_addr: 127.0.0.1:0\ndata_dir: rel/dir\nzone_store: {}\n", "t");
  EXPECT_EQ(cfg.zone_store.path, fs::path("rel/dir/pkarr.sqlite3"));
  EXPECT_EQ(cfg.dns.bind_addr.to_string(), "127.0.0.1:53");
  Config empty_path = parse_yaml("data_dir: /d\nzone_store:\n  path: \"\"\n", "t");
  EXPECT_EQ(empty_path.zone_store.path, fs::path("/d/pkarr.sqlite3"));
  EXPECT_EQ(parse_yaml("http_bind_addr: 127.0.0.1:0\n", "t", true).dns.bind_addr.to_string(),
            "127.0.0.1:5300");
}

TEST_F(ConfigTest, LookupErrors) {
  EXPECT_EQ(error_of("enable_pkarr: yes please\n"),
            "test.yaml:1: enable_pkarr: expected a boolean (true or false), found \"yes please\"");
  EXPECT_EQ(error_of("enable_dns: 1\n"),
            "test.yaml:1: enable_dns: expected a boolean (true or false), found \"1\"");
  EXPECT_EQ(error_of("pkarr_put_rate_limit: fast\n"),
            "test.yaml:1: pkarr_put_rate_limit: unknown rate limit mode \"fast\" (expected "
            "disabled, simple or smart)");
  EXPECT_EQ(error_of("pkarr_put_rate_limit: [simple]\n"),
            "test.yaml:1: pkarr_put_rate_limit: expected disabled, simple or smart, found a list");
  EXPECT_EQ(error_of("pkarr_put_burst: 0\n"),
            "test.yaml:1: pkarr_put_burst: out of range: 0 (allowed 1 to 1048576)");
  EXPECT_EQ(error_of("pkarr_put_burst: -1\n"),
            "test.yaml:1: pkarr_put_burst: expected a non-negative integer, found \"-1\"");
  EXPECT_EQ(
      error_of("pkarr_put_refill_secs: 0\n"),
      "test.yaml:1: pkarr_put_refill_secs: out of range: 0 (must be a finite number above 0)");
  EXPECT_EQ(error_of("pkarr_put_refill_secs: .nan\n"),
            "test.yaml:1: pkarr_put_refill_secs: expected a number, found \".nan\"");
  EXPECT_EQ(error_of("pkarr_put_refill_secs: 1e9\n"),
            "test.yaml:1: pkarr_put_refill_secs: out of range: 1e9 (allowed up to 31536000 "
            "seconds)");
  EXPECT_EQ(error_of("zone_store: /tmp/x\n"),
            "test.yaml:1: zone_store: expected a mapping, found a plain scalar");
  EXPECT_EQ(error_of("zone_store:\n  eviction: 7days\n"),
            "test.yaml:2: zone_store.eviction: unknown key (known keys here: path, eviction_secs, "
            "eviction_interval_secs, cache_capacity, max_records, backend, postgres_url, "
            "postgres_password_file)");
  EXPECT_EQ(error_of("zone_store:\n  eviction_secs: 0\n"),
            "test.yaml:2: zone_store.eviction_secs: out of range: 0 (allowed 1 to 3153600000)");
  EXPECT_EQ(error_of("zone_store:\n  eviction_interval_secs: 86401\n"),
            "test.yaml:2: zone_store.eviction_interval_secs: out of range: 86401 (allowed 1 to "
            "86400)");
  EXPECT_EQ(error_of("zone_store:\n  cache_capacity: 67108865\n"),
            "test.yaml:2: zone_store.cache_capacity: out of range: 67108865 (allowed 0 to "
            "67108864)");
  EXPECT_EQ(error_of("zone_store:\n  path: [a]\n"),
            "test.yaml:2: zone_store.path: expected a string, found a list");
  EXPECT_EQ(error_of("dns:\n  port: 53\n"),
            "test.yaml:2: dns.port: unknown key (known keys here: bind_addr, origins, "
            "default_soa, rr_a, rr_aaaa, rr_ns, tcp_idle_timeout_ms, max_tcp_connections, "
            "udp_max_payload, rrl_rate, rrl_slip, rrl_ipv4_prefix, rrl_ipv6_prefix, "
            "rrl_table_size)");
  EXPECT_EQ(error_of("dns:\n  bind_addr: 53\n"),
            "test.yaml:2: dns.bind_addr: invalid socket address \"53\" (expected \"host:port\", "
            "\"[v6]:port\" or \"*:port\")");
  EXPECT_EQ(error_of("dns:\n  origins: []\n"),
            "test.yaml:2: dns.origins: at least one origin is required");
  EXPECT_EQ(error_of("dns:\n  origins: example.org\n"),
            "test.yaml:2: dns.origins: expected a list of domain names, found a plain scalar");
  EXPECT_EQ(error_of("dns:\n  origins:\n    - example.org\n    - bad..name\n"),
            "test.yaml:4: dns.origins[1]: invalid domain name \"bad..name\" (empty label)");
  EXPECT_EQ(error_of("dns:\n  origins: [\"a b.example\"]\n"),
            "test.yaml:2: dns.origins[0]: invalid domain name \"a b.example\" (character \" \" "
            "not allowed)");
  EXPECT_EQ(error_of("dns:\n  origins: [" + std::string(64, 'a') + ".example]\n"),
            "test.yaml:2: dns.origins[0]: invalid domain name \"" + std::string(64, 'a') +
                ".example\" (label longer than 63 bytes)");
  EXPECT_EQ(error_of("dns:\n  origins: [example.org, Example.org.]\n"),
            "test.yaml:2: dns.origins[1]: duplicate origin \"example.org.\"");
  EXPECT_EQ(error_of("dns:\n  origins: [\"\"]\n"),
            "test.yaml:2: dns.origins[0]: must not be empty");
  EXPECT_EQ(error_of("dns:\n  default_soa: \"ns1.example. hostmaster.example. 0 1 2 3\"\n"),
            "test.yaml:2: dns.default_soa: expected 7 fields, found 6 (expected \"mname rname "
            "serial refresh retry expire minimum\")");
  EXPECT_EQ(error_of("dns:\n  default_soa: \"ns1.example. hostmaster.example. 0 1 2 3 x\"\n"),
            "test.yaml:2: dns.default_soa: field 7 \"x\" is not a 32-bit unsigned number "
            "(expected \"mname rname serial refresh retry expire minimum\")");
  EXPECT_EQ(
      error_of("dns:\n  default_soa: \"ns1.example. hostmaster.example. 4294967296 1 2 3 4\"\n"),
      "test.yaml:2: dns.default_soa: field 3 \"4294967296\" is not a 32-bit unsigned number "
      "(expected \"mname rname serial refresh retry expire minimum\")");
  EXPECT_EQ(error_of("dns:\n  default_soa: \"ns1..example. hostmaster.example. 0 1 2 3 4\"\n"),
            "test.yaml:2: dns.default_soa: invalid domain name \"ns1..example.\" (empty label) "
            "(expected \"mname rname serial refresh retry expire minimum\")");
  EXPECT_EQ(error_of("dns:\n  rr_a: 2001:db8::1\n"),
            "test.yaml:2: dns.rr_a: invalid IPv4 address \"2001:db8::1\"");
  EXPECT_EQ(error_of("dns:\n  rr_a: 256.1.1.1\n"),
            "test.yaml:2: dns.rr_a: invalid IPv4 address \"256.1.1.1\"");
  EXPECT_EQ(error_of("dns:\n  rr_aaaa: 192.0.2.1\n"),
            "test.yaml:2: dns.rr_aaaa: invalid IPv6 address \"192.0.2.1\"");
  EXPECT_EQ(error_of("dns:\n  rr_ns: \"ns1 .example\"\n"),
            "test.yaml:2: dns.rr_ns: invalid domain name \"ns1 .example\" (character \" \" not "
            "allowed)");
  EXPECT_EQ(error_of("dns:\n  tcp_idle_timeout_ms: 0\n"),
            "test.yaml:2: dns.tcp_idle_timeout_ms: out of range: 0 (allowed 1 to 3600000)");
  EXPECT_EQ(error_of("dns:\n  max_tcp_connections: 0\n"),
            "test.yaml:2: dns.max_tcp_connections: out of range: 0 (allowed 1 to 1048576)");
  EXPECT_EQ(error_of("dns:\n  max_tcp_connections: \"10\"\n"),
            "test.yaml:2: dns.max_tcp_connections: expected a non-negative integer, found a "
            "quoted string");
}

TEST_F(ConfigTest, LookupExampleValuesAreTheDefaults) {
  fs::path example = fs::path(IROH_SOURCE_DIR) / "config" / "relay.example.yaml";
  Config cfg = load_file(example);
  Config defaults = parse_yaml("", example.string());
  EXPECT_EQ(cfg.pkarr.enabled, defaults.pkarr.enabled);
  EXPECT_EQ(cfg.pkarr.put_rate_limit, defaults.pkarr.put_rate_limit);
  EXPECT_EQ(cfg.pkarr.put_burst, defaults.pkarr.put_burst);
  EXPECT_DOUBLE_EQ(cfg.pkarr.put_refill_secs, defaults.pkarr.put_refill_secs);
  EXPECT_EQ(cfg.zone_store.path, defaults.zone_store.path);
  EXPECT_EQ(cfg.zone_store.eviction, defaults.zone_store.eviction);
  EXPECT_EQ(cfg.zone_store.eviction_interval, defaults.zone_store.eviction_interval);
  EXPECT_EQ(cfg.zone_store.cache_capacity, defaults.zone_store.cache_capacity);
  EXPECT_EQ(cfg.zone_store.max_records, defaults.zone_store.max_records);
  ASSERT_EQ(cfg.pkarr.trusted_proxies.size(), defaults.pkarr.trusted_proxies.size());
  for (std::size_t i = 0; i < cfg.pkarr.trusted_proxies.size(); ++i) {
    EXPECT_EQ(cfg.pkarr.trusted_proxies[i].address, defaults.pkarr.trusted_proxies[i].address);
    EXPECT_EQ(cfg.pkarr.trusted_proxies[i].prefix_len,
              defaults.pkarr.trusted_proxies[i].prefix_len);
  }
  EXPECT_EQ(cfg.pkarr.put_rate_limit_ipv6_prefix, defaults.pkarr.put_rate_limit_ipv6_prefix);
  EXPECT_EQ(cfg.pkarr.max_future_skew, defaults.pkarr.max_future_skew);
  EXPECT_EQ(cfg.dns.enabled, defaults.dns.enabled);
  EXPECT_EQ(cfg.dns.bind_addr, defaults.dns.bind_addr);
  EXPECT_EQ(cfg.dns.origins, defaults.dns.origins);
  EXPECT_EQ(cfg.dns.default_soa, defaults.dns.default_soa);
  EXPECT_EQ(cfg.dns.rr_a, defaults.dns.rr_a);
  EXPECT_EQ(cfg.dns.rr_aaaa, defaults.dns.rr_aaaa);
  EXPECT_EQ(cfg.dns.rr_ns, defaults.dns.rr_ns);
  EXPECT_EQ(cfg.dns.tcp_idle_timeout, defaults.dns.tcp_idle_timeout);
  EXPECT_EQ(cfg.dns.max_tcp_connections, defaults.dns.max_tcp_connections);
  EXPECT_EQ(cfg.dns.udp_max_payload, defaults.dns.udp_max_payload);
  EXPECT_EQ(cfg.dns.rrl_rate, defaults.dns.rrl_rate);
  EXPECT_EQ(cfg.dns.rrl_slip, defaults.dns.rrl_slip);
  EXPECT_EQ(cfg.dns.rrl_ipv4_prefix, defaults.dns.rrl_ipv4_prefix);
  EXPECT_EQ(cfg.dns.rrl_ipv6_prefix, defaults.dns.rrl_ipv6_prefix);
  EXPECT_EQ(cfg.dns.rrl_table_size, defaults.dns.rrl_table_size);
  EXPECT_EQ(cfg.limits.qad_new_conn_rate, defaults.limits.qad_new_conn_rate);
  EXPECT_EQ(cfg.limits.qad_per_source_rate, defaults.limits.qad_per_source_rate);
}

// Issue 19 item 9: both QAD limits are on by default; 0 switches one off.
TEST(ConfigQad, NewConnectionRateLimit) {
  Config unset = parse_yaml("limits:\n  max_connections: 5\n", "t");
  EXPECT_DOUBLE_EQ(*unset.limits.qad_new_conn_rate, kDefaultQadNewConnRate);
  EXPECT_FALSE(unset.limits.qad_new_conn_burst);
  EXPECT_DOUBLE_EQ(*unset.limits.qad_per_source_rate, kDefaultQadPerSourceRate);
  EXPECT_FALSE(unset.limits.qad_per_source_burst);
  Config set = parse_yaml(
      "limits:\n  qad_new_conn_rate: 250.5\n  qad_new_conn_burst: 500\n"
      "  qad_per_source_rate: 2\n  qad_per_source_burst: 3\n",
      "t");
  EXPECT_DOUBLE_EQ(*set.limits.qad_new_conn_rate, 250.5);
  EXPECT_EQ(*set.limits.qad_new_conn_burst, 500u);
  EXPECT_DOUBLE_EQ(*set.limits.qad_per_source_rate, 2.0);
  EXPECT_EQ(*set.limits.qad_per_source_burst, 3u);
  Config off = parse_yaml("limits:\n  qad_new_conn_rate: 0\n  qad_per_source_rate: 0.0\n", "t");
  EXPECT_FALSE(off.limits.qad_new_conn_rate);
  EXPECT_FALSE(off.limits.qad_per_source_rate);
  EXPECT_THAT(error_of("limits:\n  qad_new_conn_rate: -1\n"),
              testing::StartsWith("test.yaml:2: limits.qad_new_conn_rate: out of range: -1"));
  EXPECT_THAT(error_of("limits:\n  qad_per_source_rate: \"0\"\n"),
              testing::StartsWith("test.yaml:2: limits.qad_per_source_rate: expected a number"));
  EXPECT_THAT(error_of("limits:\n  qad_per_source_burst: 0\n"),
              testing::StartsWith("test.yaml:2: limits.qad_per_source_burst: out of range: 0"));
}

// Issue 19 item 5: UDP answer size and response-rate limiting.
TEST(ConfigDns, UdpPayloadAndRrl) {
  Config d = parse_yaml("enable_dns: true\n", "t");
  EXPECT_EQ(d.dns.udp_max_payload, 1232u);
  EXPECT_EQ(d.dns.rrl_rate, 50u);
  EXPECT_EQ(d.dns.rrl_slip, 2u);
  EXPECT_EQ(d.dns.rrl_ipv4_prefix, 24u);
  EXPECT_EQ(d.dns.rrl_ipv6_prefix, 56u);
  EXPECT_EQ(d.dns.rrl_table_size, 65536u);
  Config c = parse_yaml(
      "dns:\n  udp_max_payload: 512\n  rrl_rate: 0\n  rrl_slip: 0\n  rrl_ipv4_prefix: 32\n"
      "  rrl_ipv6_prefix: 64\n  rrl_table_size: 1\n",
      "t");
  EXPECT_EQ(c.dns.udp_max_payload, 512u);
  EXPECT_EQ(c.dns.rrl_rate, 0u);
  EXPECT_EQ(c.dns.rrl_slip, 0u);
  EXPECT_EQ(c.dns.rrl_ipv4_prefix, 32u);
  EXPECT_EQ(c.dns.rrl_ipv6_prefix, 64u);
  EXPECT_EQ(c.dns.rrl_table_size, 1u);
  EXPECT_EQ(error_of("dns:\n  udp_max_payload: 511\n"),
            "test.yaml:2: dns.udp_max_payload: out of range: 511 (allowed 512 to 4096)");
  EXPECT_EQ(error_of("dns:\n  udp_max_payload: 65535\n"),
            "test.yaml:2: dns.udp_max_payload: out of range: 65535 (allowed 512 to 4096)");
  EXPECT_EQ(error_of("dns:\n  rrl_ipv4_prefix: 33\n"),
            "test.yaml:2: dns.rrl_ipv4_prefix: out of range: 33 (allowed 8 to 32)");
  EXPECT_EQ(error_of("dns:\n  rrl_ipv6_prefix: 129\n"),
            "test.yaml:2: dns.rrl_ipv6_prefix: out of range: 129 (allowed 16 to 128)");
  EXPECT_EQ(error_of("dns:\n  rrl_table_size: 0\n"),
            "test.yaml:2: dns.rrl_table_size: out of range: 0 (allowed 1 to 16777216)");
  EXPECT_EQ(error_of("dns:\n  rrl_slip: 101\n"),
            "test.yaml:2: dns.rrl_slip: out of range: 101 (allowed 0 to 100)");
}

// Issue 19 item 1: a file without a document is refused instead of becoming the defaults (which
// admit everyone): empty, whitespace only, comments only, a bare null, an empty document marker.
TEST_F(ConfigTest, EmptyDocumentIsAnError) {
  TempDir dir;
  int n = 0;
  for (const char* text : {"", "   \n\t\n\n", "# access:\n#   allowlist: []\n", "~\n", "---\n",
                           "--- # nothing\n...\n"}) {
    auto path = dir.write("empty" + std::to_string(n++) + ".yaml", text);
    try {
      load_file(path);
      FAIL() << "expected a ConfigError for " << testing::PrintToString(std::string(text));
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), path.string() + ": empty document");
      EXPECT_EQ(e.reason(), "empty document");
    }
  }
  // A document with one key is not empty.
  EXPECT_NO_THROW(load_file(dir.write("one.yaml", "# comment\nenable_relay: true\n")));
}

// Issue 19 item 1: which reloads widen access (applied, but logged at WARN).
TEST(ConfigAccess, Widening) {
  auto id = [] {
    return *relay::EndpointId::parse(relay::SecretKey::generate().public_key().to_hex());
  };
  const auto a = id(), b = id(), c = id();
  auto list = [](AccessMode mode, std::vector<relay::EndpointId> ids) {
    AccessConfig c;
    c.mode = mode;
    c.endpoints = std::move(ids);
    return c;
  };
  const AccessConfig everyone;
  const AccessConfig allow_ab = list(AccessMode::Allowlist, {a, b});
  const AccessConfig allow_a = list(AccessMode::Allowlist, {a});
  const AccessConfig allow_ac = list(AccessMode::Allowlist, {a, c});
  const AccessConfig deny_ab = list(AccessMode::Denylist, {a, b});
  const AccessConfig deny_a = list(AccessMode::Denylist, {a});

  EXPECT_EQ(access_widening(allow_ab, everyone), "allowlist (2 ids) -> everyone");
  EXPECT_EQ(access_widening(deny_a, everyone), "denylist (1 id) -> everyone");
  EXPECT_FALSE(access_widening(everyone, everyone));
  EXPECT_FALSE(access_widening(everyone, allow_a));  // narrower
  EXPECT_FALSE(access_widening(allow_ab, allow_a));  // an id removed: narrower
  EXPECT_FALSE(access_widening(allow_ab, allow_ab));
  EXPECT_EQ(access_widening(allow_a, allow_ab), "allowlist (1 id) -> allowlist (2 ids)");
  EXPECT_TRUE(access_widening(allow_ab, allow_ac));  // same length, c is new
  EXPECT_EQ(access_widening(deny_ab, deny_a), "denylist (2 ids) -> denylist (1 id)");
  EXPECT_FALSE(access_widening(deny_a, deny_ab));
  EXPECT_TRUE(access_widening(allow_a, deny_ab));  // another mode: cannot be compared

  AccessConfig tokens1;
  tokens1.mode = AccessMode::SharedToken;
  tokens1.tokens = {"x"};
  AccessConfig tokens2 = tokens1;
  tokens2.tokens = {"x", "y"};
  EXPECT_EQ(access_widening(tokens1, tokens2), "shared_token (1 token) -> shared_token (2 tokens)");
  EXPECT_FALSE(access_widening(tokens2, tokens1));
  AccessConfig http;
  http.mode = AccessMode::Http;
  http.http_url = "http://a/";
  AccessConfig http_open = http;
  http_open.http_fail_open = true;
  EXPECT_EQ(access_widening(http, http_open), "http (http://a/) -> http (http://a/, fail_open)");
  EXPECT_FALSE(access_widening(http_open, http));
  AccessConfig issuers;
  issuers.mode = AccessMode::Capability;
  issuers.capability_issuers = {a, b, c};
  EXPECT_EQ(describe_access(issuers), "capability_issuers (3 issuers)");
}

TEST(ConfigHardening, AccessLimitsLogsShutdown) {
  const std::string key = relay::SecretKey::generate().public_key().to_hex();
  Config c = parse_yaml("access:\n  capability_issuers: [" + key +
                            "]\nlimits:\n  max_connections_per_ip: 8\nlog_format: json\n"
                            "shutdown_grace_secs: 3\n",
                        "t");
  EXPECT_EQ(c.access.mode, AccessMode::Capability);
  ASSERT_EQ(c.access.capability_issuers.size(), 1u);
  EXPECT_EQ(c.access.capability_issuers[0].to_hex(), key);
  EXPECT_EQ(c.limits.max_connections_per_ip, 8u);
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.shutdown_grace, std::chrono::seconds(3));
  Config d = parse_yaml("", "t");
  EXPECT_EQ(d.log_format, "text");
  EXPECT_EQ(d.shutdown_grace, std::chrono::seconds(10));
  EXPECT_FALSE(d.limits.max_connections_per_ip);

  Config h = parse_yaml(
      "access:\n  http:\n    url: http://127.0.0.1:9/a\n    timeout_ms: 250\n"
      "    cache_ttl_secs: 0\n    cache_capacity: 5\n    fail_open: true\n",
      "t");
  EXPECT_EQ(h.access.http_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(h.access.http_cache_ttl, std::chrono::seconds(0));
  EXPECT_EQ(h.access.http_cache_capacity, 5u);
  EXPECT_TRUE(h.access.http_fail_open);

  EXPECT_EQ(error_of("access:\n  capability_issuers: []\n"),
            "test.yaml:2: access.capability_issuers: the issuer list must not be empty");
  EXPECT_THAT(error_of("access:\n  capability_issuers: [nope]\n"),
              testing::StartsWith("test.yaml:2: access.capability_issuers[0]: invalid issuer key"));
  EXPECT_EQ(error_of("log_format: xml\n"),
            "test.yaml:1: log_format: unknown log format \"xml\" (expected text or json)");
  EXPECT_THAT(error_of("shutdown_grace_secs: 99999\n"),
              testing::StartsWith("test.yaml:1: shutdown_grace_secs: out of range"));
  EXPECT_THAT(error_of("limits:\n  max_connections_per_ip: 0\n"),
              testing::StartsWith("test.yaml:2: limits.max_connections_per_ip: out of range"));
  EXPECT_THAT(error_of("access:\n  http:\n    url: http://x/\n    timeout_ms: 0\n"),
              testing::StartsWith("test.yaml:4: access.http.timeout_ms: out of range"));
}

// Issue 15 item 1: zone_store.backend and the postgres_* keys.
TEST_F(ConfigTest, ZoneStoreBackend) {
  Config defaults = parse_yaml("", "t");
  EXPECT_EQ(defaults.zone_store.backend, ZoneStoreBackend::Sqlite);
  EXPECT_TRUE(defaults.zone_store.postgres_url.empty());
  EXPECT_TRUE(defaults.zone_store.postgres_password_file.empty());

  Config cfg = parse_yaml(
      "zone_store:\n  backend: postgres\n  postgres_url: \"postgresql://iroh@127.0.0.1/iroh\"\n",
      "t");
  EXPECT_EQ(cfg.zone_store.backend, ZoneStoreBackend::Postgres);
  EXPECT_EQ(cfg.zone_store.postgres_url, "postgresql://iroh@127.0.0.1/iroh");
  EXPECT_EQ(parse_yaml("zone_store:\n  backend: SQLite\n", "t").zone_store.backend,
            ZoneStoreBackend::Sqlite);

  EXPECT_EQ(error_of("zone_store:\n  backend: mysql\n"),
            "test.yaml:2: zone_store.backend: unknown backend \"mysql\" (expected sqlite or "
            "postgres)");
  EXPECT_EQ(error_of("zone_store:\n  backend: postgres\n"),
            "test.yaml:2: zone_store.postgres_url: required when backend is postgres (a libpq URI "
            "such as \"postgresql://iroh@db.example/iroh\")");
  EXPECT_THAT(error_of("zone_store:\n  backend: postgres\n  postgres_url: \"host=/tmp\"\n"
                       "  postgres_password_file: /nonexistent/pw\n"),
              StartsWith("test.yaml:4: zone_store.postgres_password_file: cannot read "
                         "/nonexistent/pw: "));
}

// Issue 19 item 4: trusted_proxies, the IPv6 key prefix, max_future_skew, zone_store.max_records.
TEST_F(ConfigTest, LookupHostileInputKeys) {
  Config defaults = parse_yaml("", "t");
  EXPECT_EQ(defaults.zone_store.max_records, 1000000u);
  EXPECT_EQ(defaults.pkarr.put_rate_limit_ipv6_prefix, 64u);
  EXPECT_EQ(defaults.pkarr.max_future_skew, std::chrono::seconds(3600));
  ASSERT_EQ(defaults.pkarr.trusted_proxies.size(), 2u);
  auto v4 = [](std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    return std::array<std::uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
  };
  std::array<std::uint8_t, 16> loopback6{};
  loopback6[15] = 1;
  auto trusted = [&](const Config& c, const std::array<std::uint8_t, 16>& a) {
    for (const auto& n : c.pkarr.trusted_proxies) {
      if (n.contains(a)) return true;
    }
    return false;
  };
  EXPECT_TRUE(trusted(defaults, v4(127, 0, 0, 1)));
  EXPECT_TRUE(trusted(defaults, v4(127, 255, 1, 2)));
  EXPECT_TRUE(trusted(defaults, loopback6));
  EXPECT_FALSE(trusted(defaults, v4(128, 0, 0, 1)));
  EXPECT_FALSE(trusted(defaults, v4(10, 0, 0, 1)));

  Config cfg = parse_yaml(
      "trusted_proxies: [\"10.1.2.3/8\", \"2001:db8::/33\", \"192.0.2.7\"]\n"
      "pkarr_put_rate_limit_ipv6_prefix: 56\npkarr_max_future_skew_secs: 0\n"
      "zone_store:\n  max_records: 0\n",
      "t");
  EXPECT_TRUE(trusted(cfg, v4(10, 200, 0, 1)));  // host bits of 10.1.2.3/8 ignored
  EXPECT_FALSE(trusted(cfg, v4(127, 0, 0, 1)));  // the list replaces the default
  EXPECT_TRUE(trusted(cfg, v4(192, 0, 2, 7)));
  EXPECT_FALSE(trusted(cfg, v4(192, 0, 2, 8)));
  std::array<std::uint8_t, 16> in33{0x20, 0x01, 0x0d, 0xb8, 0x7f};
  std::array<std::uint8_t, 16> out33{0x20, 0x01, 0x0d, 0xb8, 0x80};
  EXPECT_TRUE(trusted(cfg, in33));
  EXPECT_FALSE(trusted(cfg, out33));
  EXPECT_EQ(cfg.pkarr.put_rate_limit_ipv6_prefix, 56u);
  EXPECT_EQ(cfg.pkarr.max_future_skew, std::chrono::seconds(0));
  EXPECT_EQ(cfg.zone_store.max_records, 0u);
  EXPECT_TRUE(parse_yaml("trusted_proxies: []\n", "t").pkarr.trusted_proxies.empty());

  EXPECT_EQ(error_of("trusted_proxies: [\"10.0.0.0/33\"]\n"),
            "test.yaml:1: trusted_proxies[0]: invalid address or prefix \"10.0.0.0/33\" "
            "(expected \"192.0.2.1\", \"10.0.0.0/8\" or \"2001:db8::/32\")");
  EXPECT_EQ(error_of("trusted_proxies: [\"proxy.example\"]\n"),
            "test.yaml:1: trusted_proxies[0]: invalid address or prefix \"proxy.example\" "
            "(expected \"192.0.2.1\", \"10.0.0.0/8\" or \"2001:db8::/32\")");
  EXPECT_EQ(error_of("trusted_proxies: 127.0.0.1\n"),
            "test.yaml:1: trusted_proxies: expected a list of addresses or prefixes, found a "
            "plain scalar");
  EXPECT_EQ(error_of("pkarr_put_rate_limit_ipv6_prefix: 0\n"),
            "test.yaml:1: pkarr_put_rate_limit_ipv6_prefix: out of range: 0 (allowed 1 to 128)");
  EXPECT_EQ(error_of("pkarr_put_rate_limit_ipv6_prefix: 129\n"),
            "test.yaml:1: pkarr_put_rate_limit_ipv6_prefix: out of range: 129 (allowed 1 to 128)");
}
}  // namespace
}  // namespace iroh::config

// ---- iroh-relay's and iroh-dns-server's own TOML files (issue 17, docs/migrating.md) -----------

namespace iroh::config {
namespace {

std::string toml_error(std::string_view text, bool dev = false) {
  try {
    parse_relay_toml(text, "relay.toml", dev);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

// Keeps the TOML tests independent of the environment (the YAML fixture's variables, plus the
// ACME and DNS data-dir overrides).
class TomlConfig : public ConfigTest {
 protected:
  EnvGuard acme_url_{"IROH_RELAY_ACME_URL", nullptr};
  EnvGuard acme_ca_{"IROH_RELAY_ACME_CA", nullptr};
  EnvGuard dns_data_{"IROH_DNS_DATA_DIR", nullptr};
};

TEST_F(TomlConfig, EmptyGivesTheReferenceDefaults) {
  Config c = parse_relay_toml("", "relay.toml");
  EXPECT_TRUE(c.enable_relay);
  EXPECT_EQ(c.http_bind_addr.to_string(), "[::]:80");
  EXPECT_FALSE(c.tls);
  EXPECT_FALSE(c.enable_quic_addr_discovery);
  EXPECT_TRUE(c.enable_metrics);
  EXPECT_EQ(c.metrics_bind_addr.to_string(), "[::]:9090");
  EXPECT_EQ(c.access.mode, AccessMode::Everyone);
  EXPECT_FALSE(c.limits.client_rx);
  EXPECT_FALSE(c.limits.accept_conn_limit);
  EXPECT_FALSE(c.stun.enabled);
  EXPECT_FALSE(c.pkarr.enabled);
  EXPECT_FALSE(c.dns.enabled);
  // --dev: port 3340, nothing else switched on (unlike the YAML --dev).
  Config d = parse_relay_toml("", "relay.toml", true);
  EXPECT_EQ(d.http_bind_addr.to_string(), "[::]:3340");
  EXPECT_FALSE(d.stun.enabled);
  EXPECT_FALSE(d.enable_quic_addr_discovery);
}

TEST_F(TomlConfig, EveryKeyLoads) {
  TempDir dir;
  auto cert = dir.write("relay.crt", "x");
  auto key = dir.write("relay.key", "x");
  std::string text = R"(enable_relay = true
http_bind_addr = "127.0.0.1:8080"
enable_quic_addr_discovery = true
enable_metrics = true
metrics_bind_addr = "127.0.0.1:9999"
key_cache_capacity = 4096
access.denylist = [")" +
                     std::string(kKeyHex) + R"(", ")" + kKeyBase32 + R"("]

[tls]
https_bind_addr = "127.0.0.1:8443"
quic_bind_addr = "127.0.0.1:7843"
hostname = ["relay.example.org", "relay2.example.org"]
cert_mode = "Manual"
cert_dir = ")" + dir.path().string() +
                     R"("
manual_cert_path = ")" +
                     cert.string() + R"("
manual_key_path = ")" +
                     key.string() + R"("
prod_tls = false
contact = "ops@example.org"
dangerous_http_only = false

[limits]
accept_conn_limit = 12.5
accept_conn_burst = 20

[limits.client.rx]
bytes_per_second = 400
max_burst_bytes = 800
)";
  Config c = parse_relay_toml(text, "relay.toml");
  EXPECT_TRUE(c.enable_relay);
  EXPECT_EQ(c.http_bind_addr.to_string(), "127.0.0.1:8080");
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->cert_mode, CertMode::Manual);
  EXPECT_EQ(c.tls->https_bind_addr.to_string(), "127.0.0.1:8443");
  EXPECT_EQ(c.tls->quic_bind_addr.to_string(), "127.0.0.1:7843");
  EXPECT_EQ(c.tls->hostname, (std::vector<std::string>{"relay.example.org", "relay2.example.org"}));
  EXPECT_EQ(c.tls->cert_dir, dir.path());
  EXPECT_EQ(c.tls->manual_cert_path, cert);
  EXPECT_EQ(c.tls->manual_key_path, key);
  EXPECT_FALSE(c.tls->prod_tls);
  EXPECT_EQ(c.tls->contact, "ops@example.org");
  EXPECT_FALSE(c.tls->dangerous_http_only);
  EXPECT_TRUE(c.enable_quic_addr_discovery);
  EXPECT_TRUE(c.enable_metrics);
  EXPECT_EQ(c.metrics_bind_addr.to_string(), "127.0.0.1:9999");
  EXPECT_EQ(c.key_cache_capacity, 4096u);
  EXPECT_EQ(c.access.mode, AccessMode::Denylist);
  EXPECT_EQ(c.access.endpoints.size(), 2u);
  EXPECT_EQ(c.limits.accept_conn_limit, 12.5);
  EXPECT_EQ(c.limits.accept_conn_burst, 20u);
  ASSERT_TRUE(c.limits.client_rx);
  EXPECT_EQ(c.limits.client_rx->bytes_per_second, 400u);
  EXPECT_EQ(c.limits.client_rx->max_burst_bytes, 800u);

  // Defaults derived from other keys, as iroh-relay derives them.
  TempDir d2;
  Config m = parse_relay_toml(
      "http_bind_addr = \"127.0.0.2:81\"\n[tls]\ncert_mode = "
      "\"Reloading\"\ncert_dir = \"" +
          d2.path().string() + "\"\n",
      "relay.toml");
  EXPECT_EQ(m.tls->cert_mode, CertMode::Reloading);
  EXPECT_EQ(m.tls->https_bind_addr.to_string(), "127.0.0.2:443");
  EXPECT_EQ(m.tls->quic_bind_addr.to_string(), "127.0.0.2:7842");
  EXPECT_EQ(m.tls->manual_cert_path, d2.path() / "default.crt");
  EXPECT_EQ(m.metrics_bind_addr.to_string(), "127.0.0.2:9090");
  EXPECT_TRUE(m.tls->prod_tls);
}

TEST_F(TomlConfig, AccessModes) {
  EXPECT_EQ(parse_relay_toml("access = \"everyone\"", "r.toml").access.mode, AccessMode::Everyone);
  Config a = parse_relay_toml("access.allowlist = [\"" + std::string(kKeyHex) + "\"]", "r.toml");
  EXPECT_EQ(a.access.mode, AccessMode::Allowlist);
  Config h = parse_relay_toml(
      "access.http = { url = \"https://example.com/foo\", bearer_token = \"foo\" }", "r.toml");
  EXPECT_EQ(h.access.mode, AccessMode::Http);
  EXPECT_EQ(h.access.http_url, "https://example.com/foo");
  EXPECT_EQ(h.access.http_bearer_token, "foo");
  EXPECT_EQ(h.access.http_cache_ttl.count(), 0);  // iroh-relay asks on every connection
  Config t = parse_relay_toml("access.shared_token = [\"token-a\", \"token-b\"]", "r.toml");
  EXPECT_EQ(t.access.mode, AccessMode::SharedToken);
  EXPECT_EQ(t.access.tokens, (std::vector<std::string>{"token-a", "token-b"}));
}

TEST_F(TomlConfig, EnvOverrides) {
  {
    EnvGuard token("IROH_RELAY_ACCESS_TOKEN", "from-env");
    Config t = parse_relay_toml("access.shared_token = [\"a\", \"b\"]", "r.toml");
    EXPECT_EQ(t.access.tokens, std::vector<std::string>{"from-env"});
    // The env token also stands in for an empty list, as in iroh-relay.
    EXPECT_EQ(parse_relay_toml("access.shared_token = []", "r.toml").access.tokens,
              std::vector<std::string>{"from-env"});
  }
  {
    EnvGuard bearer("IROH_RELAY_HTTP_BEARER_TOKEN", "env-bearer");
    Config h = parse_relay_toml(
        "[access.http]\nurl = \"http://127.0.0.1:1/\"\nbearer_token = "
        "\"file\"\n",
        "r.toml");
    EXPECT_EQ(h.access.http_bearer_token, "env-bearer");
  }
  TempDir dir;
  auto ca = dir.write("ca.pem", "x");
  std::string le =
      "[tls]\ncert_mode = \"LetsEncrypt\"\nhostname = \"r.example\"\ncontact = "
      "\"a@example\"\n";
  EXPECT_EQ(parse_relay_toml(le, "r.toml").tls->acme_directory_url,
            "https://acme-v02.api.letsencrypt.org/directory");
  {
    EnvGuard url("IROH_RELAY_ACME_URL", "https://127.0.0.1:14000/dir");
    EnvGuard ca_env("IROH_RELAY_ACME_CA", ca.c_str());
    Config c = parse_relay_toml(le, "r.toml");
    EXPECT_EQ(c.tls->acme_directory_url, "https://127.0.0.1:14000/dir");
    EXPECT_EQ(c.tls->acme_ca_file, ca);
    // The YAML format honours them too.
    Config y = parse_yaml("tls:\n  cert_mode: letsencrypt\n  hostname: r.example\n  contact: a@x\n",
                          "r.yaml");
    EXPECT_EQ(y.tls->acme_directory_url, "https://127.0.0.1:14000/dir");
  }
  {
    EnvGuard url("IROH_RELAY_ACME_URL", "http://insecure/dir");
    EXPECT_THAT(toml_error(le), HasSubstr("IROH_RELAY_ACME_URL: must be an https:// URL"));
  }
  {
    EnvGuard ca_env("IROH_RELAY_ACME_CA", (dir.path() / "missing.pem").c_str());
    EXPECT_THAT(toml_error(le), HasSubstr("IROH_RELAY_ACME_CA: not a readable file"));
  }
}

TEST_F(TomlConfig, ErrorsNameFileLineKeyReason) {
  EXPECT_EQ(toml_error("enable_relay = true\nbogus = 1\n"),
            "relay.toml:2: bogus: unknown key (known keys here: enable_relay, http_bind_addr, tls, "
            "enable_quic_addr_discovery, limits, enable_metrics, metrics_bind_addr, "
            "key_cache_capacity, access, enable_stun, stun_bind_addr); this daemon's other "
            "settings are in its YAML format, "
            "see docs/migrating.md");
  EXPECT_THAT(toml_error("enable_relay = \"yes\"\n"),
              StartsWith("relay.toml:1: enable_relay: expected a boolean (true or false), found a "
                         "string"));
  EXPECT_THAT(toml_error("\n\nenable_relay = \n"), StartsWith("relay.toml:3: TOML syntax error: "));
  EXPECT_THAT(toml_error("[limits]\n\naccept_conn_burst = -1\n"),
              StartsWith("relay.toml:3: limits.accept_conn_burst: out of range: -1"));
  EXPECT_THAT(toml_error("http_bind_addr = \"localhost:80\"\n"),
              StartsWith("relay.toml:1: http_bind_addr: invalid socket address"));
  EXPECT_THAT(toml_error("[tls]\ncert_mode = \"manual\"\n"),
              StartsWith("relay.toml:2: tls.cert_mode: unknown certificate mode \"manual\""));
  EXPECT_THAT(toml_error("[tls]\ncert_mode = \"Manual\"\ncert_dir = \"/nonexistent\"\n"),
              StartsWith("relay.toml:2: tls.manual_cert_path: cannot read certificate file"));
  EXPECT_THAT(toml_error("enable_quic_addr_discovery = true\n"),
              StartsWith("relay.toml:1: enable_quic_addr_discovery: QUIC address discovery needs"));
  EXPECT_THAT(toml_error("[tls]\ncert_mode = \"LetsEncrypt\"\nhostname = \"a\"\n"),
              StartsWith("relay.toml:2: tls.contact: LetsEncrypt needs a contact email"));
  EXPECT_THAT(toml_error("[limits.client.rx]\nmax_burst_bytes = 5\n"),
              StartsWith("relay.toml:2: limits.client.rx.max_burst_bytes: set without"));
  EXPECT_THAT(toml_error("access = \"nobody\"\n"),
              StartsWith("relay.toml:1: access: unknown access mode \"nobody\""));
  EXPECT_THAT(toml_error("access.allowlist = [\"abc\"]\n"),
              StartsWith("relay.toml:1: access.allowlist[0]: invalid endpoint id \"abc\""));
  EXPECT_THAT(toml_error("access.shared_token = []\n"),
              HasSubstr("access.shared_token: the token list must not be empty"));
  EXPECT_THAT(toml_error("access.shared_token = [\"\"]\n"),
              StartsWith("relay.toml:1: access.shared_token[0]: must not be empty"));
  EXPECT_THAT(toml_error("access.http.bearer_token = \"x\"\n"),
              HasSubstr("access.http.url: required key is missing"));
  // This daemon's YAML-only keys are refused, not ignored.
  EXPECT_THAT(toml_error("enable_pkarr = true\n"),
              StartsWith("relay.toml:1: enable_pkarr: unknown key"));
  // Older iroh-relay files' STUN keys run STUN.
  Config stun =
      parse_relay_toml("enable_stun = true\nstun_bind_addr = \"127.0.0.1:3479\"\n", "r.toml");
  EXPECT_TRUE(stun.stun.enabled);
  EXPECT_EQ(stun.stun.bind_addr.to_string(), "127.0.0.1:3479");
  EXPECT_THAT(toml_error("[limits]\nmax_connections = 5\n"),
              StartsWith("relay.toml:2: limits.max_connections: unknown key"));
}

TEST_F(TomlConfig, LoadFileChoosesTheFormatByExtension) {
  TempDir dir;
  auto toml = dir.write("relay.toml", "http_bind_addr = \"127.0.0.1:3340\"\n");
  EXPECT_EQ(load_file(toml).http_bind_addr.to_string(), "127.0.0.1:3340");
  auto yaml = dir.write("relay.yaml", "http_bind_addr: \"127.0.0.1:3341\"\n");
  EXPECT_EQ(load_file(yaml).http_bind_addr.to_string(), "127.0.0.1:3341");
  auto empty = dir.write("empty.toml", "# nothing\n\n");
  EXPECT_THAT(
      [&] {
        try {
          load_file(empty);
        } catch (const ConfigError& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      HasSubstr("empty document"));
}

std::string reference_file(const std::string& name) {
  std::ifstream in(fs::path(IROH_SOURCE_DIR) / "tests/unit/config/reference" / name);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::string dns_error(const std::string& text, Config& base, bool relay_file) {
  try {
    apply_dns_toml(text, "dns.toml", base, relay_file);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_F(TomlConfig, ReferenceDnsDevConfig) {
  const std::string dev = reference_file("iroh-dns-server.config.dev.toml");
  ASSERT_NE(dev.find("[mainline]\nenabled = true"), std::string::npos);
  TempDir dir;
  EnvGuard data("IROH_DNS_DATA_DIR", dir.path().c_str());
  {
    // As shipped, the DHT fallback is on: refused with the reason (issue 17 item 4).
    Config base;
    EXPECT_THAT(dns_error(dev, base, false),
                StartsWith("dns.toml:25: mainline.enabled: not supported: the mainline DHT "
                           "fallback is not implemented"));
  }
  // With mainline off it loads: the daemon becomes the DNS server, on its listeners.
  std::string text = replace_all(dev, "[mainline]\nenabled = true", "[mainline]\nenabled = false");
  Config c;
  apply_dns_toml(text, "dns.toml", c, false);
  EXPECT_TRUE(c.pkarr.enabled);
  EXPECT_TRUE(c.dns.enabled);
  EXPECT_EQ(c.pkarr.put_rate_limit, PutRateLimitMode::Disabled);
  EXPECT_EQ(c.http_bind_addr.to_string(), "127.0.0.1:8080");
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->cert_mode, CertMode::SelfSigned);
  EXPECT_EQ(c.tls->https_bind_addr.to_string(), "127.0.0.1:8443");
  EXPECT_EQ(c.tls->hostname, std::vector<std::string>{"localhost"});
  EXPECT_TRUE(c.lookup_on_http_listener);  // [http] serves lookup too, as in iroh-dns-server
  EXPECT_EQ(c.dns.bind_addr.to_string(), "127.0.0.1:5300");
  EXPECT_EQ(c.dns.origins, (std::vector<std::string>{"irohdns.example.", "."}));
  EXPECT_EQ(c.dns.default_soa,
            "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600");
  EXPECT_EQ(c.dns.rr_a, "127.0.0.1");
  EXPECT_FALSE(c.dns.rr_aaaa);
  EXPECT_EQ(c.dns.rr_ns, "ns1.irohdns.example.");
  EXPECT_EQ(c.data_dir, dir.path());  // IROH_DNS_DATA_DIR
  EXPECT_EQ(c.zone_store.path, dir.path() / "pkarr.sqlite3");
  EXPECT_TRUE(c.enable_metrics);
  EXPECT_EQ(c.metrics_bind_addr.to_string(), "127.0.0.1:9117");

  // Through load_files: the relay endpoint on the DNS server's listeners refuses everyone.
  auto path = dir.write("dns.toml", text);
  Config f = load_files("", path);
  EXPECT_EQ(f.access.mode, AccessMode::Allowlist);
  EXPECT_TRUE(f.access.endpoints.empty());
  EXPECT_EQ(f.source, path);
  // data_dir in the file wins over IROH_DNS_DATA_DIR.
  Config g;
  apply_dns_toml("data_dir = \"/srv/dns\"\n" + text, "dns.toml", g, false);
  EXPECT_EQ(g.data_dir, "/srv/dns");
  EXPECT_EQ(g.tls->cert_dir, "/srv/dns/cert_cache");
}

TEST_F(TomlConfig, ReferenceDnsProdConfig) {
  const std::string prod = reference_file("iroh-dns-server.config.prod.toml");
  TempDir dir;
  EnvGuard data("IROH_DNS_DATA_DIR", dir.path().c_str());
  // As shipped it lacks letsencrypt_contact, which lets_encrypt needs (iroh-dns-server fails
  // at start too).
  Config base;
  EXPECT_THAT(dns_error(prod, base, false),
              StartsWith("dns.toml:8: https.letsencrypt_contact: lets_encrypt needs a contact"));
  // With a contact and moved to loopback ports it loads.
  std::string text =
      replace_all(prod, "letsencrypt_prod = true",
                  "letsencrypt_prod = true\nletsencrypt_contact = \"ops@example.org\"\n"
                  "bind_addr = \"127.0.0.1\"");
  text = replace_all(text, "port = 443", "port = 8443");
  text = replace_all(text, "port = 53\n", "port = 5353\nbind_addr = \"127.0.0.1\"\n");
  Config c;
  apply_dns_toml(text, "dns.toml", c, false);
  EXPECT_EQ(c.pkarr.put_rate_limit, PutRateLimitMode::Smart);
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->cert_mode, CertMode::LetsEncrypt);
  EXPECT_EQ(c.tls->https_bind_addr.to_string(), "127.0.0.1:8443");
  EXPECT_EQ(c.tls->hostname, std::vector<std::string>{"irohdns.example.org"});
  EXPECT_EQ(c.tls->contact, "ops@example.org");
  EXPECT_TRUE(c.tls->prod_tls);
  EXPECT_EQ(c.tls->cert_dir, dir.path() / "cert_cache");
  EXPECT_EQ(c.dns.bind_addr.to_string(), "127.0.0.1:5353");
  EXPECT_EQ(c.dns.origins, (std::vector<std::string>{"irohdns.example.org.", "."}));
  EXPECT_EQ(c.dns.rr_a, "203.0.10.10");
  // No [http]: the daemon keeps its plain listener (captive portal, ACME HTTP-01).
  EXPECT_EQ(c.http_bind_addr.to_string(), "[::]:80");
}

TEST_F(TomlConfig, DnsConfigBesideARelayConfig) {
  TempDir dir;
  EnvGuard data("IROH_DNS_DATA_DIR", dir.path().c_str());
  const std::string dns_section =
      "[dns]\nport = 5300\ndefault_soa = \"a.example b.example 0 1 2 3 4\"\ndefault_ttl = 30\n"
      "origins = [\".\"]\n";
  Config relay = parse_relay_toml("http_bind_addr = \"127.0.0.1:3340\"\n", "relay.toml");
  // The relay's own listener: lookup is served there.
  Config same = relay;
  apply_dns_toml("[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n" + dns_section, "dns.toml", same,
                 true);
  EXPECT_TRUE(same.pkarr.enabled);
  EXPECT_EQ(same.http_bind_addr.to_string(), "127.0.0.1:3340");
  EXPECT_EQ(same.dns.bind_addr.to_string(), "[::]:5300");
  // Another listener: lookup on a listener of its own (issue 17 item 2).
  Config other = relay;
  apply_dns_toml("[http]\nport = 8080\n" + dns_section, "dns.toml", other, true);
  EXPECT_EQ(other.http_bind_addr.to_string(), "127.0.0.1:3340");
  ASSERT_TRUE(other.lookup_listeners.http_bind_addr);
  EXPECT_EQ(other.lookup_listeners.http_bind_addr->to_string(), "[::]:8080");
  EXPECT_FALSE(other.lookup_listeners.https);
  // [https] apart from the relay's (which has none): its own listener and certificate.
  Config own_https = relay;
  apply_dns_toml(
      "[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n[https]\nport = 8443\n"
      "domains = [\"a.example\"]\ncert_mode = \"self_signed\"\n" +
          dns_section,
      "dns.toml", own_https, true);
  EXPECT_FALSE(own_https.tls);
  ASSERT_TRUE(own_https.lookup_listeners.https);
  EXPECT_EQ(own_https.lookup_listeners.https->https_bind_addr.to_string(), "[::]:8443");
  EXPECT_EQ(own_https.lookup_listeners.https->cert_mode, CertMode::SelfSigned);
  EXPECT_EQ(own_https.lookup_listeners.https->hostname, std::vector<std::string>{"a.example"});
  // lets_encrypt there: its own ACME order (TLS-ALPN-01, as iroh-dns-server) cached in
  // <data_dir>/cert_cache.
  Config https = relay;
  apply_dns_toml(
      "[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n[https]\nport = 8443\n"
      "domains = [\"a.example\"]\ncert_mode = \"lets_encrypt\"\nletsencrypt_contact = "
      "\"a@b\"\n" +
          dns_section,
      "dns.toml", https, true);
  ASSERT_TRUE(https.lookup_listeners.https);
  EXPECT_EQ(https.lookup_listeners.https->cert_mode, CertMode::LetsEncrypt);
  EXPECT_EQ(https.lookup_listeners.https->acme_challenge, AcmeChallenge::TlsAlpn01);
  EXPECT_EQ(https.lookup_listeners.https->cert_dir, dir.path() / "cert_cache");
  EXPECT_EQ(https.lookup_listeners.https->contact, "a@b");
  EXPECT_FALSE(https.lookup_listeners.https->prod_tls);  // staging unless letsencrypt_prod
  EXPECT_EQ(https.lookup_listeners.https->acme_directory_url,
            "https://acme-staging-v02.api.letsencrypt.org/directory");
  EXPECT_FALSE(https.tls);
  {
    // iroh-relay's ACME overrides reach the lookup certificate too (one daemon, one CA).
    auto ca = dir.write("ca.pem", "x");
    EnvGuard url("IROH_RELAY_ACME_URL", "https://127.0.0.1:14000/dir");
    EnvGuard ca_env("IROH_RELAY_ACME_CA", ca.c_str());
    Config env = relay;
    apply_dns_toml(
        "[https]\nport = 8443\ndomains = [\"a.example\"]\n"
        "cert_mode = \"lets_encrypt\"\nletsencrypt_contact = \"a@b\"\n" +
            dns_section,
        "dns.toml", env, true);
    EXPECT_EQ(env.lookup_listeners.https->acme_directory_url, "https://127.0.0.1:14000/dir");
    EXPECT_EQ(env.lookup_listeners.https->acme_ca_file, ca);
  }
  // Beside a relay ordering from the same cache directory: refused, each needs its own.
  Config same_cache = parse_relay_toml(
      "http_bind_addr = \"127.0.0.1:3340\"\n[tls]\ncert_mode = \"LetsEncrypt\"\n"
      "https_bind_addr = \"127.0.0.1:3443\"\nhostname = \"r.example\"\n"
      "contact = \"a@b\"\ncert_dir = \"" +
          (dir.path() / "cert_cache").string() + "/\"\n",
      "relay.toml");
  EXPECT_THAT(dns_error("[https]\nport = 8443\ndomains = [\"a.example\"]\n"
                        "cert_mode = \"lets_encrypt\"\nletsencrypt_contact = \"a@b\"\n" +
                            dns_section,
                        same_cache, true),
              HasSubstr("https.cert_mode: its ACME cache"));
  // Both TLS-ALPN-01 for one name: refused (one validation certificate per name at a time).
  Config same_name = parse_relay_toml(
      "http_bind_addr = \"127.0.0.1:3340\"\n[tls]\ncert_mode = \"LetsEncrypt\"\n"
      "https_bind_addr = \"127.0.0.1:3443\"\nhostname = [\"r.example\", \"A.example\"]\n"
      "contact = \"a@b\"\ncert_dir = \"/var/lib/relay-acme\"\n",
      "relay.toml");
  EXPECT_THAT(dns_error("[https]\nport = 8443\ndomains = [\"a.example\"]\n"
                        "cert_mode = \"lets_encrypt\"\nletsencrypt_contact = \"a@b\"\n" +
                            dns_section,
                        same_name, true),
              HasSubstr("domain \"a.example\" is also ordered by the relay's tls section"));
  Config metrics = relay;
  EXPECT_THAT(dns_error("[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n[metrics]\ndisabled = "
                        "false\nbind_addr = \"127.0.0.1:9117\"\n" +
                            dns_section,
                        metrics, true),
              HasSubstr("metrics: a metrics listener apart from the relay's is not supported"));
  // A relay running TLS: [http] naming its HTTP listener adds lookup there (it otherwise has only
  // the captive portal); [https] naming its HTTPS listener and certificate is accepted.
  fs::create_directories(dir.path() / "cert_cache");
  auto crt = dir.write("cert_cache/localhost.crt", "x");
  auto key = dir.write("cert_cache/localhost.key", "x");
  Config tls_relay = parse_relay_toml(
      "http_bind_addr = \"127.0.0.1:3340\"\n[tls]\ncert_mode = \"Manual\"\n"
      "https_bind_addr = \"127.0.0.1:3443\"\nmanual_cert_path = \"" +
          crt.string() + "\"\nmanual_key_path = \"" + key.string() + "\"\n",
      "relay.toml");
  apply_dns_toml(
      "[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n[https]\nport = 3443\n"
      "bind_addr = \"127.0.0.1\"\ndomains = [\"localhost\"]\ncert_mode = \"manual\"\n" +
          dns_section,
      "dns.toml", tls_relay, true);
  EXPECT_TRUE(tls_relay.lookup_on_http_listener);
  EXPECT_EQ(tls_relay.tls->manual_cert_path, crt);
  // Errors of the DNS file's own keys.
  Config bad = relay;
  EXPECT_THAT(dns_error("[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n[dns]\nport = 5300\n"
                        "default_soa = \"a b\"\ndefault_ttl = 30\norigins = [\".\"]\n",
                        bad, true),
              StartsWith("dns.toml:6: dns.default_soa: expected 7 fields, found 2"));
  Config no_dns = relay;
  EXPECT_THAT(dns_error("[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n", no_dns, true),
              HasSubstr("dns: required section [dns] is missing"));
  Config zs = relay;
  apply_dns_toml("[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n" + dns_section +
                     "[zone_store]\nmax_batch_size = 100\nmax_batch_time = \"1s\"\neviction = "
                     "\"7days\"\neviction_interval = \"1m 30s\"\n",
                 "dns.toml", zs, true);
  EXPECT_EQ(zs.zone_store.eviction.count(), 7 * 86400);
  EXPECT_EQ(zs.zone_store.eviction_interval.count(), 90);
  Config zs_bad = relay;
  EXPECT_THAT(dns_error("[http]\nport = 3340\nbind_addr = \"127.0.0.1\"\n" + dns_section +
                            "[zone_store]\nmax_batch_size = 100\nmax_batch_time = \"1 fortnight\"\n"
                            "eviction = \"7days\"\neviction_interval = \"10s\"\n",
                        zs_bad, true),
              HasSubstr("zone_store.max_batch_time: invalid duration \"1 fortnight\""));
  // A .yaml --dns-config is refused: the YAML lookup keys live in the --config file.
  auto yaml = dir.write("dns.yaml", "x: 1\n");
  EXPECT_THROW(load_files("", yaml), ConfigError);
}

// Issue 16 (docs/mesh.md §2): mesh.peers and mesh.psk_file.
TEST_F(ConfigTest, MeshDefaultsToNoPeers) {
  Config cfg = parse_yaml("", "t");
  EXPECT_TRUE(cfg.mesh.peers.empty());
  EXPECT_TRUE(cfg.mesh.psk.empty());
}

TEST_F(ConfigTest, MeshPeersAndKey) {
  TempDir dir;
  fs::path key = dir.write("mesh.key", "  0123456789abcdef0123456789abcdef\n");
  fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
  Config cfg = parse_yaml(
      "mesh:\n  peers: [http://127.0.0.1:3341, \"https://[::1]/x\", "
      "https://b.example]\n  psk_file: " +
          key.string() + "\n",
      "t");
  ASSERT_EQ(cfg.mesh.peers.size(), 3u);
  EXPECT_FALSE(cfg.mesh.peers[0].tls);
  EXPECT_EQ(cfg.mesh.peers[0].host, "127.0.0.1");
  EXPECT_EQ(cfg.mesh.peers[0].port, 3341);
  EXPECT_TRUE(cfg.mesh.peers[1].tls);
  EXPECT_EQ(cfg.mesh.peers[1].host, "::1");
  EXPECT_EQ(cfg.mesh.peers[1].port, 443);
  EXPECT_EQ(cfg.mesh.peers[2].host, "b.example");
  EXPECT_EQ(cfg.mesh.psk, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(cfg.mesh.max_remote_endpoints, 1'000'000u);
  EXPECT_EQ(parse_yaml("mesh:\n  max_remote_endpoints: 5\n", "t").mesh.max_remote_endpoints, 5u);
}

TEST_F(ConfigTest, MeshErrors) {
  TempDir dir;
  fs::path open_key = dir.write("open.key", "0123456789abcdef0123456789abcdef\n");
  fs::permissions(open_key, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                fs::perms::others_read);
  fs::path short_key = dir.write("short.key", "tooshort\n");
  fs::permissions(short_key, fs::perms::owner_read | fs::perms::owner_write);
  fs::path empty_key = dir.write("empty.key", "\n");
  fs::permissions(empty_key, fs::perms::owner_read | fs::perms::owner_write);

  EXPECT_EQ(error_of("mesh:\n  peers: [http://a.example]\n"),
            "test.yaml:1: mesh.psk_file: required when mesh.peers is set");
  EXPECT_EQ(error_of("mesh:\n  peers: [ftp://a.example]\n  psk_file: /x\n"),
            "test.yaml:2: mesh.peers[0]: expected an http:// or https:// URL, found "
            "\"ftp://a.example\"");
  EXPECT_EQ(error_of("mesh:\n  peers:\n    - http://a.example:99999\n"),
            "test.yaml:3: mesh.peers[0]: invalid port in \"http://a.example:99999\"");
  EXPECT_EQ(error_of("mesh:\n  peers: [\"http://:80\"]\n"),
            "test.yaml:2: mesh.peers[0]: no host in \"http://:80\"");
  EXPECT_EQ(error_of("mesh:\n  peers: http://a.example\n"),
            "test.yaml:2: mesh.peers: expected a list of peer URLs, found a plain scalar");
  EXPECT_EQ(error_of("mesh:\n  key: x\n"),
            "test.yaml:2: mesh.key: unknown key (known keys here: peers, psk_file, "
            "max_remote_endpoints)");
  EXPECT_THAT(error_of("mesh:\n  max_remote_endpoints: 0\n"),
              StartsWith("test.yaml:2: mesh.max_remote_endpoints: "));
  EXPECT_EQ(error_of("mesh:\n  psk_file: " + open_key.string() + "\n"),
            "test.yaml:2: mesh.psk_file: " + open_key.string() +
                " is accessible to group or others (mode 0644); chmod 600 it");
  EXPECT_EQ(error_of("mesh:\n  psk_file: " + short_key.string() + "\n"),
            "test.yaml:2: mesh.psk_file: " + short_key.string() +
                " holds 8 bytes; at least 32 are needed (e.g. `openssl rand -hex 32`)");
  EXPECT_EQ(error_of("mesh:\n  psk_file: " + empty_key.string() + "\n"),
            "test.yaml:2: mesh.psk_file: " + empty_key.string() + " is empty");
  EXPECT_THAT(error_of("mesh:\n  psk_file: /nonexistent/mesh.key\n"),
              StartsWith("test.yaml:2: mesh.psk_file: cannot read /nonexistent/mesh.key: "));
}

}  // namespace
}  // namespace iroh::config

namespace iroh::config {
namespace {

// Issue 17 item 2: the YAML lookup_listeners section.
TEST_F(ConfigTest, LookupListeners) {
  TempDir dir;
  auto crt = dir.write("dns.example.crt", "x");
  auto key = dir.write("dns.example.key", "x");
  Config c = parse_yaml(
      "http_bind_addr: 127.0.0.1:3340\nlookup_listeners:\n  http_bind_addr: 127.0.0.1:8080\n"
      "  https:\n    https_bind_addr: 127.0.0.1:8443\n    cert_mode: manual\n"
      "    hostname: dns.example\n    cert_dir: " +
          dir.path().string() + "\n",
      "t.yaml");
  ASSERT_TRUE(c.lookup_listeners.http_bind_addr);
  EXPECT_EQ(c.lookup_listeners.http_bind_addr->to_string(), "127.0.0.1:8080");
  ASSERT_TRUE(c.lookup_listeners.https);
  EXPECT_EQ(c.lookup_listeners.https->https_bind_addr.to_string(), "127.0.0.1:8443");
  EXPECT_EQ(c.lookup_listeners.https->cert_mode, CertMode::Manual);
  EXPECT_EQ(c.lookup_listeners.https->manual_cert_path, crt);
  EXPECT_EQ(c.lookup_listeners.https->manual_key_path, key);
  EXPECT_FALSE(c.tls);  // the relay's own TLS is untouched

  Config s = parse_yaml(
      "lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:0\n"
      "    cert_mode: self_signed\n    hostname: [a.example, b.example]\n",
      "t.yaml");
  EXPECT_EQ(s.lookup_listeners.https->cert_mode, CertMode::SelfSigned);
  EXPECT_EQ(s.lookup_listeners.https->hostname.size(), 2u);
  EXPECT_FALSE(s.lookup_listeners.http_bind_addr);

  EXPECT_EQ(error_of("lookup_listeners:\n  https:\n    cert_mode: self_signed\n"),
            "test.yaml:2: lookup_listeners.https.https_bind_addr: required key is missing");
  EXPECT_EQ(error_of("lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"),
            "test.yaml:2: lookup_listeners.https.cert_mode: required key is missing");
  EXPECT_THAT(error_of("lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"
                       "    cert_mode: reloading\n"),
              HasSubstr("test.yaml:4: lookup_listeners.https.cert_mode: unknown certificate mode"));
  EXPECT_THAT(error_of("lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"
                       "    cert_mode: manual\n    hostname: nofile.example\n"),
              HasSubstr("lookup_listeners.https.manual_cert_path: cannot read"));
  // letsencrypt: its own ACME order and cache (issue 17 item 2).
  Config le = parse_yaml(
      "lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"
      "    cert_mode: letsencrypt\n    hostname: a.example\n    contact: a@example.com\n"
      "    cert_dir: /var/lib/x/lookup\n    acme_challenge: http-01\n",
      "t.yaml");
  ASSERT_TRUE(le.lookup_listeners.https);
  EXPECT_EQ(le.lookup_listeners.https->cert_mode, CertMode::LetsEncrypt);
  EXPECT_EQ(le.lookup_listeners.https->cert_dir, "/var/lib/x/lookup");
  EXPECT_EQ(le.lookup_listeners.https->acme_challenge, AcmeChallenge::Http01);
  EXPECT_THAT(error_of("lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"
                       "    cert_mode: letsencrypt\n    hostname: a.example\n"),
              HasSubstr("lookup_listeners.https.contact: letsencrypt needs a contact"));
  // The relay's own ACME cache directory (here both default to "."): refused.
  EXPECT_THAT(error_of("tls:\n  cert_mode: letsencrypt\n  hostname: r.example\n"
                       "  contact: a@example.com\n  https_bind_addr: 127.0.0.1:2\n"
                       "lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"
                       "    cert_mode: letsencrypt\n    hostname: a.example\n"
                       "    contact: a@example.com\n"),
              HasSubstr("test.yaml:9: lookup_listeners.https.cert_mode: its ACME cache \".\" is "
                        "the relay's tls.cert_dir; the two certificates need cache directories "
                        "of their own"));
  // Another cache, the same name, HTTP-01 for one of them: allowed (tokens differ per order).
  Config http01 = parse_yaml(
      "tls:\n  cert_mode: letsencrypt\n  hostname: a.example\n"
      "  contact: a@example.com\n  https_bind_addr: 127.0.0.1:2\n"
      "lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"
      "    cert_mode: letsencrypt\n    hostname: a.example\n    cert_dir: /var/lib/x/l\n"
      "    contact: a@example.com\n    acme_challenge: http-01\n",
      "t.yaml");
  EXPECT_EQ(http01.lookup_listeners.https->cert_mode, CertMode::LetsEncrypt);
  EXPECT_THAT(error_of("tls:\n  cert_mode: letsencrypt\n  hostname: a.example\n"
                       "  contact: a@example.com\n  https_bind_addr: 127.0.0.1:2\n"
                       "  acme_challenge: tls-alpn-01\n"
                       "lookup_listeners:\n  https:\n    https_bind_addr: 127.0.0.1:1\n"
                       "    cert_mode: letsencrypt\n    hostname: a.example\n"
                       "    cert_dir: /var/lib/x/l\n    contact: a@example.com\n"
                       "    acme_challenge: tls-alpn-01\n"),
              HasSubstr("lookup_listeners.https.cert_mode: domain \"a.example\" is also ordered"));
  EXPECT_THAT(error_of("http_bind_addr: 127.0.0.1:3340\nlookup_listeners:\n"
                       "  http_bind_addr: 127.0.0.1:3340\n"),
              HasSubstr("test.yaml:3: lookup_listeners.http_bind_addr: is the relay's"));
  EXPECT_THAT(error_of("lookup_listeners:\n  bogus: 1\n"),
              HasSubstr("lookup_listeners.bogus: unknown key"));
}

}  // namespace
}  // namespace iroh::config
