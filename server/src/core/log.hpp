// A tiny process-wide logger: one "<time> <LEVEL> <message>" line per call on stderr.
// <time> is UTC ISO 8601 with milliseconds, e.g. "2026-01-02T03:04:05.678Z".
// With the json format (config log_format: json) each line is instead one JSON object:
//   {"ts":"2026-01-02T03:04:05.678Z","level":"info","msg":"..."}
// Policy: one line per connection lifecycle event at debug, nothing per packet at info or above,
// and never a secret (tokens, keys, certificates' private parts) at any level.
#pragma once

#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace iroh::log {

enum class Level { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4, Off = 5 };

// Accepts "trace", "debug", "info", "warn", "error", "off" (any case); nullopt if unknown.
std::optional<Level> parse_level(std::string_view name);
// parse_level, then sets it; false (level unchanged) if unknown.
bool set_level(std::string_view name);
void set_level(Level level);
Level level();
inline bool enabled(Level l) {
  return l >= level();
}

enum class Format { Text, Json };
// Accepts "text" and "json"; false if unknown.
bool set_format(std::string_view name);
void set_format(Format format);

void write(Level l, std::string_view message);

// Tests: every formatted line (without the trailing newline) also goes to `sink`; empty = none.
void set_test_sink(std::function<void(std::string_view)> sink);

template <class... Args>
void emit(Level l, Args&&... args) {
  if (!enabled(l)) return;
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  write(l, out.str());
}

template <class... Args>
void trace(Args&&... args) {
  emit(Level::Trace, std::forward<Args>(args)...);
}
template <class... Args>
void debug(Args&&... args) {
  emit(Level::Debug, std::forward<Args>(args)...);
}
template <class... Args>
void info(Args&&... args) {
  emit(Level::Info, std::forward<Args>(args)...);
}
template <class... Args>
void warn(Args&&... args) {
  emit(Level::Warn, std::forward<Args>(args)...);
}
template <class... Args>
void error(Args&&... args) {
  emit(Level::Error, std::forward<Args>(args)...);
}

}  // namespace iroh::log
