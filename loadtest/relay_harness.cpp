#include "relay_harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace iroh::loadtest {

Args::Args(int argc, char** argv, std::string usage) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      std::exit(0);
    }
    if (arg.starts_with("--")) {
      auto eq = arg.find('=');
      if (eq == std::string::npos) {
        named_[arg.substr(2)] = "";
      } else {
        named_[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
      }
    } else {
      positional_.push_back(arg);
    }
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = named_.find(name);
  return it == named_.end() ? fallback : it->second;
}

long long Args::get_int(const std::string& name, long long fallback) const {
  auto it = named_.find(name);
  if (it == named_.end()) return fallback;
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    throw std::runtime_error("--" + name + " needs a number, got '" + it->second + "'");
  }
}

bool Args::has(const std::string& name) const {
  return named_.count(name) != 0;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("iroh-loadtest-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  stop();
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::uint16_t free_tcp_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

bool wait_for_port(std::uint16_t port, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::optional<std::uint64_t> vm_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) {
      std::istringstream fields(line.substr(6));
      std::uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return std::nullopt;
}

namespace {

struct ProcStat {
  pid_t ppid = 0;
  double cpu = 0;
};

std::optional<ProcStat> read_stat(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string text;
  if (!std::getline(in, text)) return std::nullopt;
  // The command name may hold spaces and parentheses: fields resume after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f;
  std::string field;
  while (fields >> field) f.push_back(field);
  // f[0] = state (field 3), f[1] = ppid (4), f[11] = utime (14), f[12] = stime (15).
  if (f.size() < 13) return std::nullopt;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return ProcStat{static_cast<pid_t>(std::stol(f[1])),
                  (std::stod(f[11]) + std::stod(f[12])) / ticks};
}

}  // namespace

double cpu_seconds(pid_t pid, bool with_children) {
  double total = 0;
  if (auto own = read_stat(std::to_string(pid))) total += own->cpu;
  if (!with_children) return total;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    auto stat = read_stat(name);
    if (stat && stat->ppid == pid) total += stat->cpu;
  }
  return total;
}

double steal_seconds(int cpu) {
  if (cpu < 0) return NAN;
  std::ifstream in("/proc/stat");
  const std::string want = "cpu" + std::to_string(cpu);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    if (name != want) continue;
    // user nice system idle iowait irq softirq steal
    std::uint64_t v[8] = {};
    for (auto& x : v) fields >> x;
    if (!fields) return NAN;
    return static_cast<double>(v[7]) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return NAN;
}

std::uint64_t raise_nofile_limit(std::uint64_t want) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur >= want) return limit.rlim_cur;
  rlimit wanted = limit;
  wanted.rlim_cur = want;
  if (wanted.rlim_max < want) wanted.rlim_max = want;
  if (setrlimit(RLIMIT_NOFILE, &wanted) != 0) {
    wanted.rlim_cur = limit.rlim_max;
    wanted.rlim_max = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &wanted);
  }
  getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

std::filesystem::path write_relay_config(const std::filesystem::path& dir, std::uint16_t port,
                                         const std::string& extra_yaml) {
  auto path = dir / "relay.yaml";
  std::ofstream out(path);
  out << "http_bind_addr: \"127.0.0.1:" << port << "\"\n"
      << "enable_metrics: false\n"
      << "enable_stun: false\n"
      << "data_dir: \"" << (dir / "data").string() << "\"\n"
      << "log_level: warn\n"
      << extra_yaml;
  return path;
}

std::vector<std::string> pinned(int cpu, std::vector<std::string> argv) {
  if (cpu < 0) return argv;
  argv.insert(argv.begin(), {"taskset", "-c", std::to_string(cpu)});
  return argv;
}

void pin_self(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

std::pair<int, int> pinning(const Args& args) {
  int ncpu = static_cast<int>(std::thread::hardware_concurrency());
  int relay_cpu = static_cast<int>(args.get_int("relay-cpu", 0));
  int gen_cpu = static_cast<int>(args.get_int("gen-cpu", 1));
  if (ncpu < 2 || relay_cpu < 0 || gen_cpu < 0 || relay_cpu >= ncpu || gen_cpu >= ncpu) {
    return {-1, -1};
  }
  pin_self(gen_cpu);
  return {relay_cpu, gen_cpu};
}

std::string read_tail(const std::filesystem::path& file, std::size_t max_bytes) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  return text;
}

}  // namespace iroh::loadtest
