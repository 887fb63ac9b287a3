// A reload is applied as a whole or not at all (Daemon::reload, README "Operating it"): when the
// certificate named by the new file cannot be loaded, or a service rejects the new config, the
// access list of the same file is not applied, the running certificate keeps serving, and one log
// line names the file and the key.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>

#include "core/log.hpp"
#include "integration/daemon_fixture.hpp"
#include "integration/log_capture.hpp"
#include "integration/relay_server_test_client.hpp"
#include "integration/tls_fixture.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::SecretKey;

const Bytes kNotAuthorized = relay::encode(relay::ServerDeniesAuth{"not authorized"});

// A service whose reload() can be told to refuse; counts what it was given.
class RefusingService final : public server::Service {
 public:
  explicit RefusingService(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  void start() override {}
  void stop() override {}
  void reload(const config::Config& next) override {
    ++reloads;
    last_access = next.access.endpoints;
    if (refuse) throw std::runtime_error("refused by the test");
  }
  std::atomic<bool> refuse = false;
  std::atomic<int> reloads = 0;
  std::vector<relay::EndpointId> last_access;  // read after reload() returned

 private:
  std::string name_;
};

class ReloadAllOrNothing : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = unique_temp_dir("reload_test");
    cert_ = make_cert("first");
    cfg_ = tls_test_config(dir_, cert_);
    cfg_.access.mode = config::AccessMode::Allowlist;
    cfg_.access.endpoints = {alice_.public_key()};
    daemon_ = std::make_unique<server::Daemon>(cfg_, 2);
    auto first = std::make_unique<RefusingService>("accepting test service");
    auto second = std::make_unique<RefusingService>("refusing test service");
    accepting_ = first.get();
    refusing_ = second.get();
    daemon_->add_service(std::move(first));
    daemon_->add_service(std::move(second));
    daemon_->start();
    client_ctx_.set_verify_mode(ssl::verify_none);
  }
  void TearDown() override {
    daemon_->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // The config file an operator would SIGHUP with: only bob, and the given certificate path.
  std::filesystem::path write_config(const std::filesystem::path& cert_path,
                                     std::filesystem::path key_path = {}) {
    if (key_path.empty()) key_path = dir_ / "key.pem";
    auto path = dir_ / "relay.yaml";
    write_file(path,
               "http_bind_addr: \"127.0.0.1:0\"\n"
               "enable_metrics: false\n"
               "data_dir: \"" +
                   dir_.string() +
                   "\"\n"
                   "tls:\n"
                   "  cert_mode: manual\n"
                   "  https_bind_addr: \"127.0.0.1:0\"\n"
                   "  manual_cert_path: \"" +
                   cert_path.string() +
                   "\"\n"
                   "  manual_key_path: \"" +
                   (dir_ / "key.pem").string() +
                   "\"\n"
                   "access:\n"
                   "  allowlist: [" +
                   bob_.public_key().to_hex() + "]\n");
    return path;
  }

  // The server's answer to a challenge handshake over TLS, and the certificate it presented.
  std::pair<std::optional<Bytes>, std::string> handshake(const SecretKey& key) {
    TlsRelayTestClient c(client_ctx_);
    if (c.connect(*daemon_->https_endpoint())) return {std::nullopt, ""};
    auto fingerprint = fingerprint_of(c.stream().next_layer().native_handle());
    return {c.handshake(key), fingerprint};
  }

  // Nothing of the rejected file took effect.
  void expect_running_config_kept() {
    EXPECT_EQ(daemon_->current_config().access.endpoints, cfg_.access.endpoints);
    auto [alice_answer, alice_cert] = handshake(alice_);
    EXPECT_EQ(alice_answer, kConfirm) << "alice was on the running allowlist";
    EXPECT_EQ(alice_cert, fingerprint_of_pem(cert_.cert_pem)) << "the old certificate must serve";
    auto [bob_answer, bob_cert] = handshake(bob_);
    EXPECT_EQ(bob_answer, kNotAuthorized) << "bob is only on the rejected file's allowlist";
  }

  std::filesystem::path dir_;
  CertFiles cert_;
  config::Config cfg_;
  SecretKey alice_ = SecretKey::generate(), bob_ = SecretKey::generate();
  std::unique_ptr<server::Daemon> daemon_;
  RefusingService* accepting_ = nullptr;
  RefusingService* refusing_ = nullptr;
  ssl::context client_ctx_{ssl::context::tls_client};
};

TEST_F(ReloadAllOrNothing, ControlReloadAppliesAccessList) {
  auto path = write_config(dir_ / "cert.pem");
  ASSERT_TRUE(daemon_->reload(config::load_file(path)));
  EXPECT_EQ(handshake(bob_).first, kConfirm);
  EXPECT_EQ(handshake(alice_).first, kNotAuthorized);
}

// The config loader already refuses a file whose certificate is missing; the daemon must also
// refuse one whose certificate vanished between loading and applying it (SIGHUP does both), and
// keep serving the old certificate rather than the new pair.
TEST_F(ReloadAllOrNothing, CertificateGoneBeforeApplyRejectsTheWholeFile) {
  EXPECT_THROW(config::load_file(write_config(dir_ / "missing.pem")), config::ConfigError);
  auto next = make_cert("next");
  write_file(dir_ / "next.pem", next.cert_pem);
  write_file(dir_ / "next-key.pem", next.key_pem);
  auto path = write_config(dir_ / "next.pem", dir_ / "next-key.pem");
  auto loaded = config::load_file(path);
  std::filesystem::remove(dir_ / "next.pem");
  LogCapture logs;
  EXPECT_FALSE(daemon_->reload(loaded));
  expect_running_config_kept();
  EXPECT_NE(logs.find({"reload rejected", path.string(), "tls.manual_cert_path"}), "")
      << logs.all();
}

TEST_F(ReloadAllOrNothing, GarbageCertificateRejectsTheWholeFile) {
  LogCapture logs;
  write_file(dir_ / "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
  auto path = write_config(dir_ / "garbage.pem");
  EXPECT_FALSE(daemon_->reload(config::load_file(path)));
  expect_running_config_kept();
  EXPECT_NE(logs.find({"reload rejected", path.string(), "tls.manual_cert_path"}), "")
      << logs.all();
}

// Service::reload throwing rejects the reload: the relay's access list is restored and the
// services that had accepted it get the running config back.
TEST_F(ReloadAllOrNothing, ServiceRejectionRestoresEverything) {
  LogCapture logs;
  refusing_->refuse = true;
  auto path = write_config(dir_ / "cert.pem");
  EXPECT_FALSE(daemon_->reload(config::load_file(path)));
  expect_running_config_kept();
  EXPECT_EQ(accepting_->reloads, 2) << "applied, then restored";
  EXPECT_EQ(accepting_->last_access, cfg_.access.endpoints);
  EXPECT_NE(logs.find({"reload rejected", "refusing test service", "refused by the test"}), "")
      << logs.all();
}

}  // namespace
}  // namespace iroh::test
