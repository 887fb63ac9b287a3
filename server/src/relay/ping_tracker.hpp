// The server side of the relay keepalive (spec relay.md §6.5): a Ping after an idle interval of
// 15 s + [1, 5] s since the last frame received (16-20 s between Pings after the first), and a
// timeout of 3 × the last measured round trip, clamped to [500 ms, 5 s] (5 s until measured).
// Pure: the connection supplies the clock readings and the random parts.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>

namespace iroh::server {

class PingTracker {
 public:
  using Clock = std::chrono::steady_clock;
  using Data = std::array<std::uint8_t, 8>;
  enum class Due { Nothing, SendPing, TimedOut };

  // `first_interval`: 15 s + [1, 5] s, drawn once per connection; the interval after any frame
  // received.
  explicit PingTracker(Clock::duration first_interval = std::chrono::seconds(16))
      : first_interval_(first_interval), interval_(first_interval) {}

  // A frame arrived from the client: the idle interval starts again.
  void on_receive(Clock::time_point now) {
    last_rx_ = now;
    interval_ = first_interval_;
  }

  Due check(Clock::time_point now) const {
    if (outstanding_) return now >= deadline_ ? Due::TimedOut : Due::Nothing;
    return now >= next_ping_at() ? Due::SendPing : Due::Nothing;
  }

  // A Ping carrying `data` is being sent at `now`; `next_interval` (16 s + [0, 4] s) is the idle
  // interval after it.
  void on_ping_sent(const Data& data, Clock::time_point now, Clock::duration next_interval) {
    outstanding_ = data;
    sent_at_ = now;
    deadline_ = now + timeout_;
    interval_ = next_interval;
  }

  // A Pong from the client; true if it answered the outstanding Ping (the RTT is measured).
  bool on_pong(const Data& data, Clock::time_point now) {
    if (!outstanding_ || data != *outstanding_) return false;
    timeout_ = std::clamp<Clock::duration>(3 * (now - sent_at_), kMinTimeout, kMaxTimeout);
    outstanding_.reset();
    return true;
  }

  // When the writer must look again: the Ping deadline, or when the next Ping is due.
  Clock::time_point wake_at() const { return outstanding_ ? deadline_ : next_ping_at(); }
  Clock::duration timeout() const { return timeout_; }
  bool outstanding() const { return outstanding_.has_value(); }

  static constexpr Clock::duration kMinTimeout = std::chrono::milliseconds(500);
  static constexpr Clock::duration kMaxTimeout = std::chrono::seconds(5);

 private:
  Clock::time_point next_ping_at() const { return std::max(last_rx_, sent_at_) + interval_; }

  Clock::duration first_interval_;
  Clock::duration interval_;
  Clock::duration timeout_ = kMaxTimeout;
  Clock::time_point last_rx_{};
  Clock::time_point sent_at_{};
  Clock::time_point deadline_{};
  std::optional<Data> outstanding_;
};

}  // namespace iroh::server
