// A tiny process-wide logger: one "<time> <LEVEL> <message>" line per call on stderr.
// <time> is UTC ISO 8601 with milliseconds, e.g. "2026-01-02T03:04:05.678Z".
#pragma once

#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace iroh::log {

enum class Level { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4, Off = 5 };

// Accepts "trace", "debug", "info", "warn", "error", "off" (any case); false if unknown.
bool set_level(std::string_view name);
void set_level(Level level);
Level level();
inline bool enabled(Level l) {
  return l >= level();
}

void write(Level l, std::string_view message);

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
