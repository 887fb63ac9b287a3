// The shared limiters (server/src/rate_limiter.hpp) and the accept-loop backoff
// (server/src/accept_backoff.hpp), on a fake clock.
#include "rate_limiter.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "accept_backoff.hpp"
#include "qad_thread_service.hpp"

namespace iroh::server {
namespace {

using namespace std::chrono_literals;
using boost::asio::ip::make_address;
using Clock = std::chrono::steady_clock;

TEST(TokenBucket, BurstThenRate) {
  const auto t0 = Clock::now();
  TokenBucket bucket(2.0, 3.0, t0);
  EXPECT_TRUE(bucket.take(t0));
  EXPECT_TRUE(bucket.take(t0));
  EXPECT_TRUE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0 + 400ms));
  EXPECT_TRUE(bucket.take(t0 + 500ms));  // 2 per second: one token after 0.5 s
  EXPECT_FALSE(bucket.take(t0 + 500ms));
  // Reconfigured: what is left is kept (at most the new burst); rate 0 = no limit.
  bucket.configure(0, 1, t0 + 1s);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(bucket.take(t0 + 1s));
  bucket.configure(1, 1, t0 + 1s);  // switched on: starts full
  EXPECT_TRUE(bucket.take(t0 + 1s));
  EXPECT_FALSE(bucket.take(t0 + 1s));
}

TEST(PrefixRateLimiter, KeysByPrefix) {
  PrefixRateLimiter limiter(
      {.rate = 1, .burst = 2, .ipv4_prefix = 24, .ipv6_prefix = 56, .table_size = 65536});
  const auto t0 = Clock::now();
  // One /24: 10.0.0.1, 10.0.0.200 and the v4-mapped ::ffff:10.0.0.7 share a bucket of 2.
  EXPECT_TRUE(limiter.allow(make_address("10.0.0.1"), t0));
  EXPECT_TRUE(limiter.allow(make_address("10.0.0.200"), t0));
  EXPECT_FALSE(limiter.allow(make_address("::ffff:10.0.0.7"), t0));
  EXPECT_EQ(limiter.prefix_of(make_address("10.0.0.1")),
            limiter.prefix_of(make_address("::ffff:10.0.0.99")));
  EXPECT_TRUE(limiter.allow(make_address("10.0.1.1"), t0));       // the next /24
  EXPECT_TRUE(limiter.allow(make_address("10.0.0.1"), t0 + 1s));  // refilled
  // One /56: 2001:db8:0:100::/56 .. 2001:db8:0:1ff::.
  EXPECT_TRUE(limiter.allow(make_address("2001:db8:0:100::1"), t0));
  EXPECT_TRUE(limiter.allow(make_address("2001:db8:0:1ff:ffff::1"), t0));
  EXPECT_FALSE(limiter.allow(make_address("2001:db8:0:1ab::9"), t0));
  EXPECT_TRUE(limiter.allow(make_address("2001:db8:0:200::1"), t0));
  EXPECT_NE(limiter.prefix_of(make_address("2001:db8:0:100::1")),
            limiter.prefix_of(make_address("2001:db8:0:200::1")));
}

TEST(PrefixRateLimiter, BoundedTableAndOff) {
  // One slot: every source shares it (memory stays bounded whatever the number of sources).
  PrefixRateLimiter one({.rate = 1, .burst = 1, .table_size = 1});
  const auto t0 = Clock::now();
  EXPECT_TRUE(one.allow(make_address("192.0.2.1"), t0));
  EXPECT_FALSE(one.allow(make_address("198.51.100.1"), t0));
  PrefixRateLimiter off({.rate = 0});
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(off.allow(make_address("192.0.2.1"), t0));
}

TEST(AcceptBackoff, PausesGrowAndWarningsAreRateLimited) {
  AcceptBackoff backoff("dns: tcp accept");
  const auto emfile = boost::system::error_code(EMFILE, boost::system::system_category());
  const auto t0 = Clock::now();
  auto first = backoff.failed(emfile, t0);
  EXPECT_EQ(first.pause, 50ms);
  ASSERT_TRUE(first.warning);
  EXPECT_THAT(*first.warning, testing::StartsWith("dns: tcp accept failed: "));
  std::chrono::milliseconds last{};
  for (int i = 1; i < 200; ++i) {
    auto d = backoff.failed(emfile, t0 + i * 40ms);  // 8 s of failures
    EXPECT_FALSE(d.warning) << i;
    last = d.pause;
  }
  EXPECT_EQ(last, 1000ms);  // capped
  auto later = backoff.failed(emfile, t0 + 10s);
  ASSERT_TRUE(later.warning);
  EXPECT_THAT(*later.warning, testing::HasSubstr("199 more failures since the last warning"));
  EXPECT_EQ(backoff.failures(), 201u);
  backoff.succeeded();
  EXPECT_EQ(backoff.failed(emfile, t0 + 11s).pause, 50ms);
}

// The config defaults turn both limits on (issue 19 item 9).
TEST(QadLimits, DefaultsFromConfig) {
  const config::Limits defaults;
  const auto [rate, burst] = qad_new_connection_limit(defaults);
  EXPECT_DOUBLE_EQ(rate, config::kDefaultQadNewConnRate);
  EXPECT_EQ(burst, static_cast<std::size_t>(config::kDefaultQadNewConnRate));
  const auto [source_rate, source_burst] = qad_per_source_limit(defaults);
  EXPECT_DOUBLE_EQ(source_rate, config::kDefaultQadPerSourceRate);
  EXPECT_EQ(source_burst, static_cast<std::size_t>(2 * config::kDefaultQadPerSourceRate));
  config::Limits off;
  off.qad_new_conn_rate.reset();
  off.qad_per_source_rate.reset();
  EXPECT_EQ(qad_new_connection_limit(off).first, 0.0);
  EXPECT_EQ(qad_per_source_limit(off).first, 0.0);
}

}  // namespace
}  // namespace iroh::server
