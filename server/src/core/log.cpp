#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/time_text.hpp"

namespace iroh::log {
namespace {

std::atomic<Level> g_level{Level::Info};
std::atomic<Format> g_format{Format::Text};
std::mutex g_write_mutex;
std::function<void(std::string_view)> g_test_sink;  // guarded by g_write_mutex

std::string_view level_name(Level l) {
  switch (l) {
    case Level::Trace:
      return "TRACE";
    case Level::Debug:
      return "DEBUG";
    case Level::Info:
      return "INFO";
    case Level::Warn:
      return "WARN";
    case Level::Error:
      return "ERROR";
    case Level::Off:
      return "OFF";
  }
  return "?";
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? char(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<Level> parse_level(std::string_view name) {
  static constexpr std::pair<std::string_view, Level> kNames[] = {
      {"trace", Level::Trace}, {"debug", Level::Debug},  {"info", Level::Info},
      {"warn", Level::Warn},   {"warning", Level::Warn}, {"error", Level::Error},
      {"off", Level::Off}};
  for (const auto& [n, l] : kNames) {
    if (iequals(name, n)) return l;
  }
  return std::nullopt;
}

bool set_level(std::string_view name) {
  const auto l = parse_level(name);
  if (l) set_level(*l);
  return l.has_value();
}

bool set_format(std::string_view name) {
  if (iequals(name, "text")) {
    set_format(Format::Text);
  } else if (iequals(name, "json")) {
    set_format(Format::Json);
  } else {
    return false;
  }
  return true;
}

void set_format(Format format) {
  g_format.store(format, std::memory_order_relaxed);
}

void set_test_sink(std::function<void(std::string_view)> sink) {
  std::lock_guard lock(g_write_mutex);
  g_test_sink = std::move(sink);
}

void set_level(Level l) {
  g_level.store(l, std::memory_order_relaxed);
}
Level level() {
  return g_level.load(std::memory_order_relaxed);
}

void write(Level l, std::string_view message) {
  // RFC 3339 with milliseconds: "2026-12-02T23:45:53.123Z".
  const auto now = std::chrono::system_clock::now();
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ", int(millis));
  const std::string stamp = server::format_utc(now, "%Y-%m-%dT%H:%M:%S") + fraction;
  std::string line;
  if (g_format.load(std::memory_order_relaxed) == Format::Json) {
    std::string level(level_name(l));
    for (auto& c : level) c = char(c - 'A' + 'a');
    // error_handler::replace: a message with invalid UTF-8 still yields a valid line.
    line = nlohmann::ordered_json{{"ts", stamp}, {"level", level}, {"msg", message}}.dump(
        -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  } else {
    line.reserve(message.size() + 40);
    line.append(stamp).append(" ").append(level_name(l)).append(" ").append(message);
  }
  std::lock_guard lock(g_write_mutex);
  if (g_test_sink) g_test_sink(line);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace iroh::log
