// What a TCP accept loop does after a failed accept (issue 19 item 6). On EMFILE / ENFILE the
// pending connection stays in the listen queue, so the acceptor is readable again at once and an
// immediate retry fails the same way: without a pause the loop spins a core. The pause starts at
// 50 ms and doubles with each consecutive failure up to 1 s (a success resets it), and at most one
// WARN is written per 10 s, saying how many failures the previous window had, so a long fd
// shortage costs neither CPU nor the log. Used by the DNS TCP and metrics listeners.
//
//   AcceptBackoff backoff("dns: tcp accept");
//   auto [ec, socket] = co_await acceptor.async_accept(...);
//   if (ec) { co_await backoff.pause(acceptor.get_executor(), ec); continue; }
//   backoff.succeeded();
//
// One instance per accept loop; not thread-safe (an accept loop is one coroutine).
#pragma once

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/log.hpp"

namespace iroh::server {

class AcceptBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kFirstPause{50};
  static constexpr std::chrono::milliseconds kMaxPause{1000};
  static constexpr std::chrono::seconds kLogInterval{10};

  explicit AcceptBackoff(std::string what) : what_(std::move(what)) {}

  struct Decision {
    std::chrono::milliseconds pause;
    std::optional<std::string> warning;  // the line to log now, if any
  };

  // Accounts one failure at `now`: how long to pause, and whether to warn.
  Decision failed(const boost::system::error_code& ec, Clock::time_point now) {
    ++failures_;
    const auto pause = next_pause_;
    next_pause_ = std::min(next_pause_ * 2, kMaxPause);
    if (last_warning_ && now - *last_warning_ < kLogInterval) {
      ++suppressed_;
      return {pause, std::nullopt};
    }
    std::string line = what_ + " failed: " + ec.message() + " (pausing accepts";
    if (suppressed_ > 0) {
      line += "; " + std::to_string(suppressed_) + " more failures since the last warning";
    }
    line += ")";
    last_warning_ = now;
    suppressed_ = 0;
    return {pause, std::move(line)};
  }

  void succeeded() { next_pause_ = kFirstPause; }

  // failed(), then the warning (if any) at WARN, then the pause.
  template <typename Executor>
  boost::asio::awaitable<void> pause(const Executor& executor,
                                     const boost::system::error_code& ec) {
    Decision d = failed(ec, Clock::now());
    if (d.warning) log::warn(*d.warning);
    boost::asio::steady_timer timer(executor, d.pause);
    co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }

  std::uint64_t failures() const { return failures_; }

 private:
  std::string what_;
  std::chrono::milliseconds next_pause_ = kFirstPause;
  std::optional<Clock::time_point> last_warning_;
  std::uint64_t suppressed_ = 0;
  std::uint64_t failures_ = 0;
};

}  // namespace iroh::server
