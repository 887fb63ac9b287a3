// Per-client receive token bucket, exactly the reference's algorithm (spec relay.md §6.8):
// integer tokens, refilled in whole 100 ms periods, starts full.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace iroh::server {

class RxTokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kPeriod{100};

  // Invalid (max <= 0 or refill <= 0) buckets are reported by valid(); callers reject the config.
  RxTokenBucket(std::uint32_t bytes_per_second, std::uint32_t max_burst_bytes,
                Clock::time_point now = Clock::now())
      : max_(max_burst_bytes),
        refill_(std::int64_t(bytes_per_second) * 100 / 1000),
        fill_(max_),
        last_fill_(now) {}

  bool valid() const { return max_ > 0 && refill_ > 0; }

  // Accounts `bytes` just read. Returns the time until which reading must pause, if any.
  std::optional<Clock::time_point> consume(std::uint64_t bytes, Clock::time_point now) {
    refill(now);
    fill_ -= std::int64_t(bytes);
    if (fill_ > 0) return std::nullopt;
    std::int64_t missing = -fill_;
    std::int64_t periods = missing / refill_ + 1;
    return last_fill_ + periods * kPeriod;
  }

  std::int64_t fill() const { return fill_; }

 private:
  void refill(Clock::time_point now) {
    if (now <= last_fill_) return;
    auto n = (now - last_fill_) / kPeriod;
    if (n <= 0) return;
    fill_ = std::min(fill_ + std::int64_t(n) * refill_, max_);
    last_fill_ += n * kPeriod;
  }

  std::int64_t max_;
  std::int64_t refill_;
  std::int64_t fill_;
  Clock::time_point last_fill_;
};

}  // namespace iroh::server
