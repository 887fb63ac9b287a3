// The iroh-relay binary under signals: SIGHUP with a broken config keeps the running one (and a
// good one applies without dropping clients), SIGTERM drains (Restarting to relay clients, exit
// 0), and `iroh-relay token` mints capability tokens the relay admits. Also: an empty config file
// is refused at start and on SIGHUP, and the accept loops back off when out of file descriptors.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
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
  pid_t pid() const { return pid_; }
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
  tcp::endpoint start(const std::string& config_file = "relay.yaml") {
    process_ = std::make_unique<Process>(
        dir_, std::vector<std::string>{IROH_RELAY_BINARY, "--config", (dir_ / config_file)});
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

// How often `re` matches the log so far.
std::size_t count_matches(const std::string& text, const std::string& re) {
  std::regex pattern(re);
  return static_cast<std::size_t>(std::distance(
      std::sregex_iterator(text.begin(), text.end(), pattern), std::sregex_iterator()));
}

// Issue 19 item 1: an empty (or whitespace-only, or comments-only) config is an error at start,
// and a SIGHUP with one keeps the running config: a refused key stays refused. A reload that
// widens access is applied, with a WARN naming the old and new mode.
TEST_F(RelayBinary, EmptyConfigIsRefusedAtStartAndOnReload) {
  write_config("");
  process_ = std::make_unique<Process>(
      dir_, std::vector<std::string>{IROH_RELAY_BINARY, "--config", (dir_ / "relay.yaml")});
  EXPECT_EQ(process_->wait_exit(20s), 2);
  EXPECT_NE(process_->log().find("relay.yaml: empty document"), std::string::npos)
      << process_->log();

  auto alice = SecretKey::generate(), bob = SecretKey::generate();
  write_config(base_config() + "access:\n  allowlist:\n    - " + alice.public_key().to_hex() +
               "\n");
  auto ep = start();
  auto a = connect(ep, alice);
  const auto denied = relay::encode(relay::ServerDeniesAuth{"not authorized"});
  EXPECT_EQ(attempt(ep, bob), denied);
  const std::string rejected =
      R"(ERROR reload rejected: \S+relay\.yaml: empty document; keeping the running config)";
  std::size_t n = 0;
  for (const char* text : {"", " \n\t\n", "# access: everyone\n# (all commented out)\n"}) {
    write_config(text);
    process_->signal(SIGHUP);
    ++n;
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (count_matches(process_->log(), rejected) < n &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(count_matches(process_->log(), rejected), n) << process_->log();
    EXPECT_EQ(attempt(ep, bob), denied)
        << "after an empty config: " << testing::PrintToString(text);
    EXPECT_TRUE(a->ping_barrier());
  }
  EXPECT_EQ(process_->log().find("reload widens access"), std::string::npos);

  // Widening is applied and logged: allowlist (1 id) -> everyone.
  write_config(base_config());
  process_->signal(SIGHUP);
  EXPECT_TRUE(process_->wait_for(R"(WARN reload widens access: allowlist \(1 id\) -> everyone)"))
      << process_->log();
  auto b = connect(ep, bob);
  EXPECT_TRUE(b->ping_barrier());
}

// utime + stime of `pid`, in seconds (/proc/<pid>/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::string stat = read_all("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  std::vector<std::string> fields;
  while (in >> field) fields.push_back(field);
  if (fields.size() < 13) return -1;
  // fields[0] is field 3 (state): utime = field 14, stime = field 15.
  return double(std::stoull(fields[11]) + std::stoull(fields[12])) / double(::sysconf(_SC_CLK_TCK));
}

int connect_tcp(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One DNS query over TCP (SOA of "example."): true if an answer with its ID comes back.
bool dns_tcp_answers(std::uint16_t port, std::chrono::milliseconds timeout) {
  int fd = connect_tcp(port);
  if (fd < 0) return false;
  const std::uint8_t query[] = {0, 25,  0x42, 0x43, 0x01, 0,   0,   1,   0, 0, 0, 0, 0, 0,
                                7, 'e', 'x',  'a',  'm',  'p', 'l', 'e', 0, 0, 6, 0, 1};
  bool ok = ::send(fd, query, sizeof query, 0) == ssize_t(sizeof query);
  std::uint8_t reply[512];
  pollfd p{fd, POLLIN, 0};
  ok = ok && ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  ok = ok && ::recv(fd, reply, sizeof reply, 0) >= 4 && reply[2] == 0x42 && reply[3] == 0x43;
  ::close(fd);
  return ok;
}

// Issue 19 item 6: out of file descriptors (RLIMIT_NOFILE lowered for the daemon), the DNS TCP
// and metrics accept loops pause instead of spinning: the daemon stays near idle and logs at most
// a couple of lines per listener; once descriptors are free again it accepts again.
TEST_F(RelayBinary, AcceptLoopsBackOffWhenOutOfFileDescriptors) {
  write_config(
      "http_bind_addr: \"127.0.0.1:0\"\nenable_metrics: true\n"
      "metrics_bind_addr: \"127.0.0.1:0\"\nlog_level: info\ndata_dir: \"" +
      dir_.string() +
      "\"\nenable_dns: true\ndns:\n  bind_addr: \"127.0.0.1:0\"\n"
      "  tcp_idle_timeout_ms: 600000\n  max_tcp_connections: 100000\n");
  process_ = std::make_unique<Process>(
      dir_, std::vector<std::string>{"/bin/sh", "-c", "ulimit -n 96 && exec \"$0\" \"$@\"",
                                     IROH_RELAY_BINARY, "--config", (dir_ / "relay.yaml")});
  auto dns_port = process_->wait_for(R"(dns: listening on udp 127\.0\.0\.1:(\d+))");
  auto metrics_port = process_->wait_for(R"(listening metrics on 127\.0\.0\.1:(\d+))");
  ASSERT_TRUE(dns_port && metrics_port) << process_->log();
  const auto dns = static_cast<std::uint16_t>(std::stoi(*dns_port));
  const auto metrics = static_cast<std::uint16_t>(std::stoi(*metrics_port));
  ASSERT_TRUE(dns_tcp_answers(dns, 5s)) << process_->log();

  // More connections than the daemon has descriptors: the rest wait in the listen queue.
  std::vector<int> fds;
  for (int i = 0; i < 160; ++i) {
    int fd = connect_tcp(dns);
    if (fd >= 0) fds.push_back(fd);
  }
  ASSERT_TRUE(process_->wait_for(R"(dns: tcp accept failed: Too many open files)"))
      << process_->log();
  // Only now: earlier, the metrics listener might still have found a free descriptor.
  fds.push_back(connect_tcp(metrics));
  ASSERT_TRUE(process_->wait_for(R"(metrics: accept failed: Too many open files)"))
      << process_->log();
  const double cpu_before = cpu_seconds(process_->pid());
  std::this_thread::sleep_for(2s);
  const double cpu = cpu_seconds(process_->pid()) - cpu_before;
  std::printf("daemon CPU over 2 s out of descriptors: %.3f s\n", cpu);
  EXPECT_GE(cpu, 0.0);
  EXPECT_LT(cpu, 0.3) << "the accept loops spin";  // a spinning loop takes ~2 s of CPU
  const std::string log = process_->log();
  EXPECT_LE(count_matches(log, "dns: tcp accept failed"), 2u) << log;
  EXPECT_LE(count_matches(log, "metrics: accept failed"), 2u) << log;

  // Descriptors back: new connections are accepted and answered again.
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  bool answered = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!answered && std::chrono::steady_clock::now() < deadline) {
    answered = dns_tcp_answers(dns, 2s);
    if (!answered) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(answered) << process_->log();
}

// Issue 17: iroh-relay's own TOML file, unchanged, runs this daemon; its shared_token access admits
// a client with the token (Authorization: Bearer, or ?token=) and refuses one without.
TEST_F(RelayBinary, RelayTomlSharedTokenAdmitsAndRefuses) {
  std::ofstream(dir_ / "relay.toml") << "http_bind_addr = \"127.0.0.1:0\"\n"
                                        "enable_metrics = false\n"
                                        "access.shared_token = [\"token-a\", \"token-b\"]\n";
  auto ep = start("relay.toml");
  auto alice = SecretKey::generate();
  auto a = connect(ep, alice, UpgradeOptions{}.with_header("Authorization", "Bearer token-b"));
  EXPECT_TRUE(a->ping_barrier());
  UpgradeOptions query;
  query.target = "/relay?token=token-a";
  auto b = connect(ep, SecretKey::generate(), query);
  EXPECT_EQ(attempt(ep, SecretKey::generate()),
            relay::encode(relay::ServerDeniesAuth{"not authorized"}));
  RelayTestClient wrong;
  ASSERT_FALSE(wrong.connect(ep, UpgradeOptions{}.with_header("Authorization", "Bearer token-c")));
  EXPECT_EQ(wrong.handshake(SecretKey::generate()),
            relay::encode(relay::ServerDeniesAuth{"not authorized"}));
  EXPECT_EQ(process_->log().find("token-b"), std::string::npos);
}

// IROH_RELAY_ACCESS_TOKEN replaces the file's token list (iroh-relay's env override).
TEST_F(RelayBinary, RelayTomlAccessTokenFromEnvironment) {
  std::ofstream(dir_ / "relay.toml") << "http_bind_addr = \"127.0.0.1:0\"\n"
                                        "enable_metrics = false\n"
                                        "access.shared_token = [\"from-file\"]\n";
  ::setenv("IROH_RELAY_ACCESS_TOKEN", "from-env", 1);
  auto ep = start("relay.toml");  // the child inherits the variable at fork
  ::unsetenv("IROH_RELAY_ACCESS_TOKEN");
  connect(ep, SecretKey::generate(),
          UpgradeOptions{}.with_header("Authorization", "Bearer from-env"));
  RelayTestClient old;
  ASSERT_FALSE(old.connect(ep, UpgradeOptions{}.with_header("Authorization", "Bearer from-file")));
  EXPECT_EQ(old.handshake(SecretKey::generate()),
            relay::encode(relay::ServerDeniesAuth{"not authorized"}));
}

// A TOML file with a key iroh-relay does not have is refused at start: file:line: key: reason.
TEST_F(RelayBinary, RelayTomlUnknownKeyRefusedAtStart) {
  std::ofstream(dir_ / "relay.toml") << "enable_metrics = false\nenable_pkarr = true\n";
  process_ = std::make_unique<Process>(
      dir_, std::vector<std::string>{IROH_RELAY_BINARY, "--config", (dir_ / "relay.toml")});
  EXPECT_EQ(process_->wait_exit(15s), 2);
  EXPECT_NE(process_->log().find("relay.toml:2: enable_pkarr: unknown key"), std::string::npos)
      << process_->log();
}

}  // namespace
}  // namespace iroh::test
