#include "core/time_text.hpp"

#include <ctime>

namespace iroh::server {

std::string format_utc(std::chrono::system_clock::time_point t, const char* format) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  const std::size_t n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

}  // namespace iroh::server
