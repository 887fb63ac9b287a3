// Shared plumbing of the relay benchmarks: child processes, /proc readings, free ports, options.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iroh::loadtest {

// --name=value / --flag arguments; anything else is an error.
class Args {
 public:
  Args(int argc, char** argv, std::string usage);
  std::string get(const std::string& name, const std::string& fallback) const;
  long long get_int(const std::string& name, long long fallback) const;
  bool has(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> named_;
  std::vector<std::string> positional_;
};

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A child process; SIGTERM then SIGKILL on destruction.
class ChildProcess {
 public:
  // stdout/stderr go to `log`. Throws std::runtime_error if fork/exec fails.
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  pid_t pid() const { return pid_; }
  bool running();
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

 private:
  pid_t pid_ = -1;
};

std::uint16_t free_tcp_port();
// Polls a TCP connect to 127.0.0.1:port until it succeeds or `limit` passes.
bool wait_for_port(std::uint16_t port, std::chrono::milliseconds limit);
// VmRSS of a process in bytes, from /proc/<pid>/status.
std::optional<std::uint64_t> vm_rss_bytes(pid_t pid);
// User + system CPU seconds of a process and (with `with_children`) of its live children
// (found by parent pid), from /proc/<pid>/stat.
double cpu_seconds(pid_t pid, bool with_children = false);
// Seconds the hypervisor gave CPU `cpu`'s time to other guests (the `steal` column of
// /proc/stat); NaN where the kernel does not tell. A phase whose CPUs lost time this way
// measured the host as much as the relay.
double steal_seconds(int cpu);
// Raises RLIMIT_NOFILE (soft and, as root, hard) to at least `want`; returns the soft limit.
std::uint64_t raise_nofile_limit(std::uint64_t want);
// Minimal iroh-relay YAML config: plain HTTP on 127.0.0.1:port, no metrics/STUN, quiet logs.
std::filesystem::path write_relay_config(const std::filesystem::path& dir, std::uint16_t port,
                                         const std::string& extra_yaml = {});
// `argv` prefixed with `taskset -c cpu` (unchanged for cpu < 0).
std::vector<std::string> pinned(int cpu, std::vector<std::string> argv);
// Pins the calling process to `cpu` (nothing for cpu < 0).
void pin_self(int cpu);
// --relay-cpu (default 0) and --gen-cpu (default 1): the CPU for the relay and the one this
// process is pinned to here, so that the relay gets a core of its own; both -1 (no pinning) with
// fewer than 2 CPUs or a negative or out-of-range choice.
std::pair<int, int> pinning(const Args& args);
std::string read_tail(const std::filesystem::path& file, std::size_t max_bytes = 2000);

}  // namespace iroh::loadtest
