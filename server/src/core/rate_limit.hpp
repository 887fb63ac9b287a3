// The rate limiters (one home for token buckets and GCRA):
//  * RxTokenBucket: per-client receive bytes, exactly the reference's algorithm (relay.md §6.8).
//  * TokenBucket: one global events-per-second limit (QAD new connections, relay accepts).
//  * Gcra: the generic cell rate algorithm, one theoretical arrival time per key; the per-key
//    tables below and pkarr_http's PutRateLimiter keep their TATs and share this arithmetic.
//  * PrefixRateLimiter: events per second per source prefix in a fixed table (DNS response-rate
//    limiting, QAD new connections per source).
#pragma once

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

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

// `rate` events per second, `burst` at once, starting full. Not thread-safe. rate <= 0 = no limit.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(double rate, double burst, Clock::time_point now = Clock::now()) {
    configure(rate, burst, now);
  }

  // A limit switched on starts full; a changed one keeps what is left (at most the new burst).
  void configure(double rate, double burst, Clock::time_point now) {
    const bool was_unlimited = rate_ <= 0;
    rate_ = rate;
    burst_ = std::max(1.0, burst);
    tokens_ = was_unlimited ? burst_ : std::min(tokens_, burst_);
    last_ = now;
  }

  // True (and one token spent) if an event may happen now.
  bool take(Clock::time_point now) {
    if (rate_ <= 0) return true;
    if (now > last_) {
      const std::chrono::duration<double> elapsed = now - last_;
      tokens_ = std::min(burst_, tokens_ + elapsed.count() * rate_);
      last_ = now;
    }
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  double rate_ = 0;
  double burst_ = 1;
  double tokens_ = 0;
  Clock::time_point last_{};
};

// GCRA, the virtual-scheduling form of ITU-T I.371 (the `governor` crate's algorithm, pkarr spec
// §4.5): one event per `interval`, up to `burst` at once. The state of one key is its theoretical
// arrival time (TAT); a TAT in the past (or a new key's TAT = now) means the full burst is there.
// Stateless itself: callers own the TATs (and their locking).
class Gcra {
 public:
  using Clock = std::chrono::steady_clock;

  Gcra(Clock::duration interval, std::uint64_t burst)
      : interval_(interval),
        tolerance_(interval * static_cast<Clock::rep>(std::max<std::uint64_t>(burst, 1) - 1)) {}

  // nullopt (and `tat` advanced by one interval) if an event at `now` conforms; otherwise how
  // long until it would, `tat` unchanged.
  std::optional<Clock::duration> admit(Clock::time_point& tat, Clock::time_point now) const {
    const Clock::time_point start = std::max(tat, now);
    if (start - now > tolerance_) return start - now - tolerance_;
    tat = start + interval_;
    return std::nullopt;
  }

  Clock::duration interval() const { return interval_; }

 private:
  Clock::duration interval_;
  Clock::duration tolerance_;  // interval * (burst - 1)
};

// Events per second per source prefix (IPv4 /ipv4_prefix, IPv6 /ipv6_prefix; IPv4-mapped IPv6
// counts as IPv4), like knotd's RRL table: a fixed array of `table_size` GCRA slots indexed by a
// keyed hash of the prefix, so memory is bounded whatever the number of sources, and prefixes
// that share a slot share its limit (the per-process hash key keeps attackers from choosing
// collisions). Thread-safe.
class PrefixRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    double rate = 0;  // events per second per prefix; <= 0 = no limit
    double burst = 1;
    unsigned ipv4_prefix = 32;
    unsigned ipv6_prefix = 64;
    std::size_t table_size = 65536;
  };

  explicit PrefixRateLimiter(const Options& options);
  // True (and counted) if `source` may have one more event now.
  bool allow(const boost::asio::ip::address& source, Clock::time_point now = Clock::now());
  const Options& options() const { return options_; }

  // The prefix `source` is counted under (16 bytes, IPv4 as v4-mapped), exposed for tests.
  std::array<std::uint8_t, 16> prefix_of(const boost::asio::ip::address& source) const;

 private:
  Options options_;
  std::optional<Gcra> gcra_;  // unset = no limit
  std::array<std::uint8_t, 16> hash_key_;
  std::mutex mutex_;
  std::vector<Clock::time_point> tat_;  // GCRA theoretical arrival time per slot
};

}  // namespace iroh::server
