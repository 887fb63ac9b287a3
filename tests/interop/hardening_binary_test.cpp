// The iroh-relay binary under signals: SIGHUP with a broken config keeps the running one (and a
// good one applies without dropping clients), SIGTERM drains (Restarting to relay clients, exit
// 0), and `iroh-relay token` mints capability tokens the relay admits.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "integration/relay_server_test_client.hpp"

#ifndef IROH_RELAY_BINARY
#error IROH_RELAY_BINARY must name the iroh-relay binary
#endif

namespace iroh::test {
namespace {

namespace fs = std::filesystem;
using relay::Bytes;
using relay::SecretKey;

const Bytes kConfirm{2};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Runs `argv` with stdout/stderr into files in `dir`.
class Process {
 public:
  Process(const fs::path& dir, std::vector<std::string> args) : log_(dir / "relay.log") {
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::fopen(log_.c_str(), "w");
      ::dup2(::fileno(f), 1);
      ::dup2(::fileno(f), 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
  }
  ~Process() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string log() const { return read_all(log_); }
  // Polls the log (bounded) for a line matching `re`; returns the first match's group 1.
  std::optional<std::string> wait_for(const std::string& re, std::chrono::seconds limit = 15s) {
    std::regex pattern(re);
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      std::string text = log();
      if (std::regex_search(text, m, pattern)) return m.size() > 1 ? m[1].str() : m[0].str();
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Exit status, or nullopt if still running after `limit`.
  std::optional<int> wait_exit(std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class RelayBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hardening_binary_" + std::to_string(::getpid()) + "_" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    process_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string base_config() const {
    return "http_bind_addr: \"127.0.0.1:0\"\nenable_metrics: false\nlog_level: debug\n"
           "data_dir: \"" +
           dir_.string() + "\"\nshutdown_grace_secs: 5\n";
  }
  void write_config(const std::string& text) {
    auto tmp = dir_ / "relay.yaml.tmp";
    std::ofstream(tmp) << text;
    fs::rename(tmp, dir_ / "relay.yaml");
  }
  tcp::endpoint start() {
    process_ = std::make_unique<Process>(
        dir_, std::vector<std::string>{IROH_RELAY_BINARY, "--config", (dir_ / "relay.yaml")});
    auto port = process_->wait_for(R"(listening http on 127\.0\.0\.1:(\d+))");
    EXPECT_TRUE(port) << process_->log();
    return {asio::ip::make_address("127.0.0.1"),
            static_cast<std::uint16_t>(port ? std::stoi(*port) : 0)};
  }
  std::unique_ptr<RelayTestClient> connect(const tcp::endpoint& ep, const SecretKey& key,
                                           const UpgradeOptions& opts = {}) {
    auto c = std::make_unique<RelayTestClient>();
    EXPECT_FALSE(c->connect(ep, opts));
    EXPECT_EQ(c->handshake(key), kConfirm);
    return c;
  }
  std::optional<Bytes> attempt(const tcp::endpoint& ep, const SecretKey& key) {
    RelayTestClient c;
    if (c.connect(ep)) return std::nullopt;
    return c.handshake(key);
  }

  fs::path dir_;
  std::unique_ptr<Process> process_;
};

TEST_F(RelayBinary, SighupWithBrokenConfigKeepsTheOldOne) {
  auto alice = SecretKey::generate(), bob = SecretKey::generate();
  auto allow = [&](const SecretKey& k) {
    return "access:\n  allowlist:\n    - " + k.public_key().to_hex() + "\n";
  };
  write_config(base_config() + allow(alice));
  auto ep = start();
  auto a = connect(ep, alice);
  EXPECT_EQ(attempt(ep, bob), relay::encode(relay::ServerDeniesAuth{"not authorized"}));

  // Broken: an unknown key (line 9), then an invalid limit. Rejected with file:line: key: reason.
  write_config(base_config() + allow(bob) + "bogus_key: 1\n");
  process_->signal(SIGHUP);
  auto rejected =
      process_->wait_for(R"(reload rejected: (\S+relay\.yaml:9: bogus_key: unknown key))");
  EXPECT_TRUE(rejected) << process_->log();
  EXPECT_TRUE(a->ping_barrier());
  EXPECT_EQ(attempt(ep, bob), relay::encode(relay::ServerDeniesAuth{"not authorized"}));

  write_config(base_config() + allow(bob) + "limits:\n  max_connections: 0\n");
  process_->signal(SIGHUP);
  EXPECT_TRUE(
      process_->wait_for(R"(reload rejected: \S+relay\.yaml:\d+: limits\.max_connections: )"))
      << process_->log();

  // A good config applies: bob is admitted, alice (connected before) keeps relaying.
  write_config(base_config() + allow(bob));
  process_->signal(SIGHUP);
  EXPECT_TRUE(process_->wait_for(R"(INFO reloaded )")) << process_->log();
  auto b = connect(ep, bob);
  EXPECT_TRUE(a->ping_barrier());
  EXPECT_TRUE(b->ping_barrier());
}

TEST_F(RelayBinary, SigtermDrainsWithRestartingAndExitsZero) {
  write_config(base_config());
  auto ep = start();
  auto a = connect(ep, SecretKey::generate());
  auto b = connect(ep, SecretKey::generate());
  process_->signal(SIGTERM);
  for (auto* c : {a.get(), b.get()}) {
    auto frame = c->read(10s);
    ASSERT_TRUE(frame);
    EXPECT_EQ((*frame)[0], std::uint8_t(relay::FrameType::Restarting));
    EXPECT_FALSE(c->read(10s));
  }
  EXPECT_EQ(process_->wait_exit(20s), 0) << process_->log();
  auto log = process_->log();
  EXPECT_NE(log.find("draining"), std::string::npos);
  EXPECT_NE(log.find("INFO stopped"), std::string::npos);
}

TEST_F(RelayBinary, TokenCommandMintsCapabilityTokens) {
  auto key_file = (dir_ / "issuer.key").string();
  std::string issuer =
      run_capture(std::string(IROH_RELAY_BINARY) + " token keygen --key " + key_file);
  ASSERT_EQ(issuer.size(), 64u) << issuer;
  EXPECT_EQ(run_capture(std::string(IROH_RELAY_BINARY) + " token pubkey --key " + key_file),
            issuer);
  EXPECT_EQ(fs::status(key_file).permissions() & fs::perms::group_all, fs::perms::none);
  auto alice = SecretKey::generate();
  std::string token =
      run_capture(std::string(IROH_RELAY_BINARY) + " token issue --key " + key_file +
                  " --endpoint " + alice.public_key().to_hex() + " --ttl 1h --note test");
  ASSERT_FALSE(token.empty());
  write_config(base_config() + "access:\n  capability_issuers:\n    - " + issuer + "\n");
  auto ep = start();
  connect(ep, alice, UpgradeOptions{}.with_header("Authorization", "Bearer " + token));
  EXPECT_EQ(attempt(ep, SecretKey::generate()),
            relay::encode(relay::ServerDeniesAuth{"capability token missing"}));
  // The token never shows up in the log.
  EXPECT_EQ(process_->log().find(token), std::string::npos);
}

}  // namespace
}  // namespace iroh::test
