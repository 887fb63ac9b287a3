// The shared limiters (server/src/core/rate_limit.hpp) and the accept-loop backoff
// (server/src/core/accept_backoff.hpp), on a fake clock.
#include "core/rate_limit.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/accept_backoff.hpp"
#include "core/net.hpp"
#include "core/time_text.hpp"
#include "lookup/pkarr_http.hpp"
#include "qad/qad_thread_service.hpp"

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

TEST(RxTokenBucket, ReferenceAlgorithmIn100msPeriods) {
  const auto t0 = Clock::now();
  // 10 000 B/s = 1000 B per 100 ms period; 3000 B burst, starting full.
  RxTokenBucket bucket(10000, 3000, t0);
  ASSERT_TRUE(bucket.valid());
  EXPECT_EQ(bucket.consume(2000, t0), std::nullopt);
  EXPECT_EQ(bucket.fill(), 1000);
  // 2500 more: 1500 missing = 1 whole period + 1 (the reference rounds up past the deficit).
  EXPECT_EQ(bucket.consume(2500, t0), t0 + 200ms);
  // Refill happens in whole periods only: 99 ms adds nothing, 100 ms adds 1000.
  EXPECT_EQ(bucket.consume(0, t0 + 99ms), t0 + 200ms);
  EXPECT_EQ(bucket.fill(), -1500);
  EXPECT_EQ(bucket.consume(0, t0 + 100ms), t0 + 200ms);
  EXPECT_EQ(bucket.fill(), -500);
  EXPECT_EQ(bucket.consume(0, t0 + 10s), std::nullopt);
  EXPECT_EQ(bucket.fill(), 3000);  // never above the burst
  EXPECT_FALSE(RxTokenBucket(0, 3000, t0).valid());
  EXPECT_FALSE(RxTokenBucket(10000, 0, t0).valid());
  EXPECT_FALSE(RxTokenBucket(9, 100, t0).valid());  // less than one byte per period
}

TEST(Gcra, BurstThenOnePerInterval) {
  const Gcra gcra(100ms, 3);
  const auto t0 = Clock::now();
  Clock::time_point tat = t0;  // a new key: the full burst
  EXPECT_EQ(gcra.admit(tat, t0), std::nullopt);
  EXPECT_EQ(gcra.admit(tat, t0), std::nullopt);
  EXPECT_EQ(gcra.admit(tat, t0), std::nullopt);
  const auto before = tat;
  EXPECT_EQ(gcra.admit(tat, t0), std::optional<Clock::duration>(100ms));  // the wait
  EXPECT_EQ(tat, before);  // a refused event changes nothing
  EXPECT_EQ(gcra.admit(tat, t0 + 60ms), std::optional<Clock::duration>(40ms));
  EXPECT_EQ(gcra.admit(tat, t0 + 100ms), std::nullopt);
  EXPECT_NE(gcra.admit(tat, t0 + 100ms), std::nullopt);
  // A TAT long past is a full burst again (what lets callers forget such keys).
  EXPECT_EQ(gcra.admit(tat, t0 + 10s), std::nullopt);
  EXPECT_EQ(gcra.admit(tat, t0 + 10s), std::nullopt);
  EXPECT_EQ(gcra.admit(tat, t0 + 10s), std::nullopt);
  EXPECT_NE(gcra.admit(tat, t0 + 10s), std::nullopt);
  EXPECT_EQ(gcra.interval(), 100ms);
}

TEST(Gcra, BurstZeroIsOne) {
  const Gcra gcra(1s, 0);
  const auto t0 = Clock::now();
  Clock::time_point tat = t0;
  EXPECT_EQ(gcra.admit(tat, t0), std::nullopt);
  EXPECT_EQ(gcra.admit(tat, t0), std::optional<Clock::duration>(1s));
}

TEST(PutRateLimiter, PerClientGcraAndIpv6Prefix) {
  // Burst 2, one per second; IPv6 clients share one bucket per /64.
  PutRateLimiter limiter(2, 1.0, 1024, 64);
  const auto t0 = Clock::now();
  EXPECT_EQ(limiter.check(make_address("192.0.2.1"), t0), std::nullopt);
  EXPECT_EQ(limiter.check(make_address("::ffff:192.0.2.1"), t0), std::nullopt);  // same client
  EXPECT_EQ(limiter.check(make_address("192.0.2.1"), t0), std::optional<Clock::duration>(1s));
  EXPECT_EQ(limiter.check(make_address("192.0.2.2"), t0), std::nullopt);  // IPv4: per address
  EXPECT_EQ(limiter.check(make_address("2001:db8::1"), t0), std::nullopt);
  EXPECT_EQ(limiter.check(make_address("2001:db8::ffff:2"), t0), std::nullopt);
  EXPECT_NE(limiter.check(make_address("2001:db8::3"), t0), std::nullopt);  // same /64
  EXPECT_EQ(limiter.check(make_address("2001:db8:0:1::1"), t0), std::nullopt);
  EXPECT_EQ(limiter.key_count(), 4u);
}

TEST(PutRateLimiter, FullTableRefusesNewClients) {
  PutRateLimiter limiter(1, 1.0, 1);
  const auto t0 = Clock::now();
  EXPECT_EQ(limiter.check(make_address("192.0.2.1"), t0), std::nullopt);
  // Full of an active key: a new client waits (fail closed) ...
  EXPECT_EQ(limiter.check(make_address("192.0.2.2"), t0), std::optional<Clock::duration>(1s));
  // ... until the sweep forgets the key whose bucket is full again.
  EXPECT_EQ(limiter.check(make_address("192.0.2.2"), t0 + 2s), std::nullopt);
  EXPECT_EQ(limiter.key_count(), 1u);
}

TEST(Net, UnmapsV4MappedOnly) {
  EXPECT_EQ(net::unmapped(make_address("::ffff:192.0.2.7")), make_address("192.0.2.7"));
  EXPECT_TRUE(net::unmapped(make_address("::ffff:192.0.2.7")).is_v4());
  EXPECT_EQ(net::unmapped(make_address("192.0.2.7")), make_address("192.0.2.7"));
  EXPECT_EQ(net::unmapped(make_address("2001:db8::1")), make_address("2001:db8::1"));
  // IPv4-compatible (deprecated, ::a.b.c.d) and NAT64 addresses are IPv6 peers.
  EXPECT_TRUE(net::unmapped(make_address("::192.0.2.7")).is_v6());
  EXPECT_TRUE(net::unmapped(make_address("64:ff9b::192.0.2.7")).is_v6());
}

TEST(Net, PrefixKeys) {
  using Bytes16 = std::array<std::uint8_t, 16>;
  EXPECT_EQ(net::v6_bytes(make_address("192.0.2.7")),
            make_address("::ffff:192.0.2.7").to_v6().to_bytes());
  EXPECT_EQ(net::prefix_key(make_address("192.0.2.7"), 24, 64),
            make_address("::ffff:192.0.2.0").to_v6().to_bytes());
  EXPECT_EQ(net::prefix_key(make_address("::ffff:192.0.2.7"), 24, 64),
            net::prefix_key(make_address("192.0.2.99"), 24, 64));
  EXPECT_EQ(net::prefix_key(make_address("2001:db8:1:2:3:4:5:6"), 32, 48),
            make_address("2001:db8:1::").to_v6().to_bytes());
  EXPECT_EQ(net::prefix_key(make_address("2001:db8:1:2:3:4:5:6"), 32, 51),
            make_address("2001:db8:1::").to_v6().to_bytes());  // 0x0002 has no bit in the top 3
  EXPECT_EQ(net::prefix_key(make_address("2001:db8::ffff"), 32, 200),
            make_address("2001:db8::ffff").to_v6().to_bytes());  // clamped to 128
  EXPECT_EQ(net::prefix_key(make_address("2001:db8::1"), 32, 0), Bytes16{});
  // An IPv4 /0 keeps the v4-mapped prefix: never the key of an IPv6 /0.
  EXPECT_EQ(net::prefix_key(make_address("192.0.2.7"), 0, 0),
            make_address("::ffff:0.0.0.0").to_v6().to_bytes());
}

TEST(TimeText, Utc) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1796255153));
  EXPECT_EQ(format_utc(t, kRfc3339), "2026-12-02T23:45:53Z");
  EXPECT_EQ(format_utc(t, kImfFixdate), "Wed, 02 Dec 2026 23:45:53 GMT");
  EXPECT_EQ(format_utc(std::chrono::system_clock::time_point{}, kRfc3339), "1970-01-01T00:00:00Z");
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
