// Collects the log lines written while it lives (core/log.hpp's test sink), for tests that check
// what the daemon logs; on destruction it restores the default level and format a test may have
// changed.
#pragma once

#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.hpp"

namespace iroh::test {

class LogCapture {
 public:
  LogCapture() {
    log::set_test_sink([this](std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() {
    log::set_test_sink({});
    log::set_level(log::Level::Info);
    log::set_format(log::Format::Text);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  // The first line containing every one of `parts`, or "".
  std::string find(std::initializer_list<std::string_view> parts) {
    std::lock_guard lock(mutex_);
    for (const auto& line : lines_) {
      bool all = true;
      for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
      if (all) return line;
    }
    return {};
  }
  bool contains(std::string_view text) { return !find({text}).empty(); }
  // Every line, newline-terminated, for failure messages.
  std::string all() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& line : lines_) out += line + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

}  // namespace iroh::test
