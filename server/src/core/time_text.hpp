// Calendar text of a time, always UTC: the one home for the log timestamps, the ACME validity
// messages and the HTTP Date header.
#pragma once

#include <chrono>
#include <string>

namespace iroh::server {

// RFC 3339 / ISO 8601 seconds ("2026-12-02T23:45:53Z").
inline constexpr const char* kRfc3339 = "%Y-%m-%dT%H:%M:%SZ";
// RFC 9110 §5.6.7 IMF-fixdate ("Wed, 02 Dec 2026 23:45:53 GMT").
inline constexpr const char* kImfFixdate = "%a, %d %b %Y %H:%M:%S GMT";

// `t` in strftime's `format`, in UTC (gmtime_r: thread-safe, independent of TZ and the locale's
// time zone; the C locale's day and month names, as both formats require).
std::string format_utc(std::chrono::system_clock::time_point t, const char* format);

}  // namespace iroh::server
