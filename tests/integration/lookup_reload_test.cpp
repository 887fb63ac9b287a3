// Reload of the lookup listeners (issue 17 item 2, Daemon::reload): the lookup HTTPS listener's
// own certificate follows a SIGHUP (manual: new files; self_signed: new domains) and an in-place
// change of its files, without touching the relay's certificate; a changed lookup bind address
// is kept at its running value with a warning naming the key (the listener is bound at start);
// a lookup certificate that does not load rejects the whole file.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "core/log.hpp"
#include "integration/daemon_fixture.hpp"
#include "integration/log_capture.hpp"
#include "integration/tls_fixture.hpp"

namespace iroh::test {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;

// SHA-256 of the certificate `ep` presents in a TLS handshake ("" if the handshake fails).
std::string served_fingerprint(const asio::ip::tcp::endpoint& ep) {
  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);
  ssl::stream<asio::ip::tcp::socket> stream(io, ctx);
  boost::system::error_code ec;
  stream.next_layer().connect(ep, ec);
  if (ec) return {};
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) return {};
  std::string fp = fingerprint_of(stream.native_handle());
  stream.shutdown(ec);
  return fp;
}

class LookupReload : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = unique_temp_dir("lookup_reload_test");
    relay_cert_ = make_cert("relay");
    lookup_cert_ = make_cert("lookup-first");
    cfg_ = tls_test_config(dir_, relay_cert_);
    cfg_.source = dir_ / "relay.yaml";
    write_file(dir_ / "lookup.crt", lookup_cert_.cert_pem);
    write_file(dir_ / "lookup.key", lookup_cert_.key_pem);
    config::TlsConfig lookup;
    lookup.cert_mode = config::CertMode::Manual;
    lookup.https_bind_addr = config::SocketAddr{"127.0.0.1", 0};
    lookup.hostname = {"dns.example"};
    lookup.manual_cert_path = dir_ / "lookup.crt";
    lookup.manual_key_path = dir_ / "lookup.key";
    cfg_.lookup_listeners.https = lookup;
  }
  void TearDown() override {
    if (daemon_) daemon_->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void start() {
    daemon_ = std::make_unique<server::Daemon>(cfg_, 2);
    daemon_->start();
    ASSERT_TRUE(daemon_->lookup_https_endpoint());
    ASSERT_TRUE(daemon_->https_endpoint());
  }
  std::string lookup_fp() { return served_fingerprint(*daemon_->lookup_https_endpoint()); }
  std::string relay_fp() { return served_fingerprint(*daemon_->https_endpoint()); }

  std::filesystem::path dir_;
  CertFiles relay_cert_, lookup_cert_;
  config::Config cfg_;
  std::unique_ptr<server::Daemon> daemon_;
};

TEST_F(LookupReload, ManualCertificateFilesFollowTheReloadedConfig) {
  start();
  EXPECT_EQ(lookup_fp(), fingerprint_of_pem(lookup_cert_.cert_pem));
  EXPECT_EQ(relay_fp(), fingerprint_of_pem(relay_cert_.cert_pem));
  // iroh-dns-server's manual files are named after the first domain: a new domain in the file
  // means new files.
  CertFiles second = make_cert("lookup-second");
  write_file(dir_ / "other.example.crt", second.cert_pem);
  write_file(dir_ / "other.example.key", second.key_pem);
  config::Config next = cfg_;
  next.lookup_listeners.https->hostname = {"other.example"};
  next.lookup_listeners.https->manual_cert_path = dir_ / "other.example.crt";
  next.lookup_listeners.https->manual_key_path = dir_ / "other.example.key";
  ASSERT_TRUE(daemon_->reload(next));
  EXPECT_EQ(lookup_fp(), fingerprint_of_pem(second.cert_pem));
  EXPECT_EQ(relay_fp(), fingerprint_of_pem(relay_cert_.cert_pem)) << "the relay keeps its own";
  EXPECT_EQ(daemon_->current_config().lookup_listeners.https->hostname,
            std::vector<std::string>{"other.example"});
}

TEST_F(LookupReload, CertificateFileReplacedInPlaceIsPickedUp) {
  start();
  CertFiles second = make_cert("lookup-rotated");
  // Key first, then the chain; a poll between the two sees a mismatching pair, logs it, keeps
  // the old certificate and loads the pair at the next change.
  write_file(dir_ / "lookup.key", second.key_pem);
  write_file(dir_ / "lookup.crt", second.cert_pem);
  const std::string want = fingerprint_of_pem(second.cert_pem);
  // Bounded: the poll runs every 2 s; 20 s allows a loaded machine.
  EXPECT_TRUE(eventually([&] { return lookup_fp() == want; }, std::chrono::seconds(20)));
  EXPECT_EQ(relay_fp(), fingerprint_of_pem(relay_cert_.cert_pem));
}

TEST_F(LookupReload, SelfSignedGetsANewCertificateForNewDomains) {
  cfg_.lookup_listeners.https->cert_mode = config::CertMode::SelfSigned;
  start();
  const std::string first = lookup_fp();
  ASSERT_FALSE(first.empty());
  config::Config same = cfg_;
  ASSERT_TRUE(daemon_->reload(same));
  EXPECT_EQ(lookup_fp(), first) << "unchanged domains keep the generated certificate";
  config::Config next = cfg_;
  next.lookup_listeners.https->hostname = {"new.example"};
  ASSERT_TRUE(daemon_->reload(next));
  const std::string second = lookup_fp();
  EXPECT_FALSE(second.empty());
  EXPECT_NE(second, first);
}

TEST_F(LookupReload, BindAddressChangeIsKeptWithAWarning) {
  LogCapture logs;
  start();
  const auto bound = *daemon_->lookup_https_endpoint();
  config::Config next = cfg_;
  next.lookup_listeners.https->https_bind_addr = config::SocketAddr{"127.0.0.2", 0};
  next.lookup_listeners.http_bind_addr = config::SocketAddr{"127.0.0.1", 0};
  ASSERT_TRUE(daemon_->reload(next)) << "the rest of the file applies";
  EXPECT_NE(
      logs.find({"lookup_listeners.https.https_bind_addr changed", "takes effect after a restart"}),
      "");
  EXPECT_NE(logs.find({"lookup_listeners.http_bind_addr changed", "takes effect after a restart"}),
            "");
  EXPECT_EQ(*daemon_->lookup_https_endpoint(), bound);
  EXPECT_FALSE(daemon_->lookup_http_endpoint());
  const config::Config running = daemon_->current_config();
  EXPECT_EQ(running.lookup_listeners.https->https_bind_addr,
            cfg_.lookup_listeners.https->https_bind_addr);
  EXPECT_FALSE(running.lookup_listeners.http_bind_addr);
  EXPECT_EQ(lookup_fp(), fingerprint_of_pem(lookup_cert_.cert_pem)) << "still serving";
}

TEST_F(LookupReload, CertModeChangeIsKeptWithAWarning) {
  LogCapture logs;
  start();
  config::Config next = cfg_;
  next.lookup_listeners.https->cert_mode = config::CertMode::SelfSigned;
  ASSERT_TRUE(daemon_->reload(next));
  EXPECT_NE(logs.find({"lookup_listeners.https.cert_mode changed"}), "");
  EXPECT_EQ(daemon_->current_config().lookup_listeners.https->cert_mode, config::CertMode::Manual);
  EXPECT_EQ(lookup_fp(), fingerprint_of_pem(lookup_cert_.cert_pem));
}

TEST_F(LookupReload, UnloadableLookupCertificateRejectsTheWholeFile) {
  LogCapture logs;
  start();
  config::Config next = cfg_;
  next.log_level = "debug";
  next.lookup_listeners.https->manual_cert_path = dir_ / "missing.crt";
  EXPECT_FALSE(daemon_->reload(next));
  EXPECT_NE(
      logs.find({"reload rejected:", "lookup_listeners.https.manual_cert_path", "missing.crt"}),
      "");
  EXPECT_EQ(daemon_->current_config().log_level, cfg_.log_level);
  EXPECT_EQ(lookup_fp(), fingerprint_of_pem(lookup_cert_.cert_pem));

  // A key that does not match the certificate: the same.
  CertFiles other = make_cert("other");
  write_file(dir_ / "wrong.key", other.key_pem);
  next.lookup_listeners.https->manual_cert_path = dir_ / "lookup.crt";
  next.lookup_listeners.https->manual_key_path = dir_ / "wrong.key";
  EXPECT_FALSE(daemon_->reload(next));
  EXPECT_EQ(lookup_fp(), fingerprint_of_pem(lookup_cert_.cert_pem));
}

}  // namespace
}  // namespace iroh::test
