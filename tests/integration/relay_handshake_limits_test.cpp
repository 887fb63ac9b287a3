// Issue 19 items 2 and 10 (relay side): what an unauthenticated client may make the relay hold.
// Handshake WebSocket messages are capped at 1 KiB, a WebSocket Close during the handshake ends
// the connection at once, an oversized HTTP header gets 431, unauthenticated connections per IP
// are capped by default, and a daemon-wide budget caps pre-auth buffered bytes.
#include <gtest/gtest.h>

#include <array>
#include <thread>

#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::SecretKey;
using Clock = std::chrono::steady_clock;

// True if `s` sees EOF or a reset within `limit` (anything read before is discarded).
bool closed_within(tcp::socket& s, std::chrono::milliseconds limit) {
  timeval tv{0, 100'000};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto deadline = Clock::now() + limit;
  std::array<char, 4096> buf{};
  while (Clock::now() < deadline) {
    ssize_t n = ::recv(s.native_handle(), buf.data(), buf.size(), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
  }
  return false;
}

// The handshake timeout is long, so only the rule under test can close these quickly.
config::Config slow_handshake_config() {
  auto cfg = test_config();
  cfg.limits.handshake_timeout = std::chrono::seconds(60);
  return cfg;
}

TEST(RelayHandshakeLimits, OversizedHandshakeMessageCloses) {
  auto d = start_daemon(slow_handshake_config());
  RelayTestClient c;
  ASSERT_FALSE(c.connect(*d->http_endpoint()));
  ASSERT_TRUE(c.read());  // ServerChallenge
  // ClientAuth is 98 bytes; 1025 bytes of anything is over the 1 KiB handshake cap.
  ASSERT_TRUE(c.write(Bytes(1025, 1)));
  auto start = Clock::now();
  EXPECT_TRUE(c.closed_by_server(std::chrono::seconds(10)));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(eventually([&] { return d->metrics().handshake_failures.load() >= 1; }));
  // A normal client still gets in.
  RelayTestClient ok;
  ASSERT_FALSE(ok.connect(*d->http_endpoint()));
  EXPECT_EQ(ok.handshake(SecretKey::generate()), kConfirm);
}

TEST(RelayHandshakeLimits, WebSocketCloseDuringHandshakeClosesAtOnce) {
  auto d = start_daemon(slow_handshake_config());
  RelayTestClient c;
  ASSERT_FALSE(c.connect(*d->http_endpoint()));
  ASSERT_TRUE(c.read());  // ServerChallenge
  // A masked Close frame, status 1000, written raw (mask key 0).
  const std::array<std::uint8_t, 8> close_frame{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8};
  auto& sock = c.stream().next_layer();
  ASSERT_EQ(::send(sock.native_handle(), close_frame.data(), close_frame.size(), MSG_NOSIGNAL),
            ssize_t(close_frame.size()));
  // Generous, and far below the 60 s handshake timeout this used to wait for.
  EXPECT_TRUE(closed_within(sock, std::chrono::seconds(10)));
}

TEST(RelayHandshakeLimits, OversizedHttpHeaderGets431) {
  auto d = start_daemon(test_config());
  auto res = http_request(*d->http_endpoint(), http::verb::get, "/ping",
                          {{"X-Filler", std::string(20'000, 'a')}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 431);
  // A normal request still works.
  auto ok = http_request(*d->http_endpoint(), http::verb::get, "/ping");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->result_int(), 200);
}

TEST(RelayHandshakeLimits, UnauthenticatedConnectionsPerIpAreCapped) {
  auto cfg = slow_handshake_config();
  cfg.limits.max_unauthenticated_per_ip = 4;
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  asio::io_context ioc;
  std::vector<std::unique_ptr<tcp::socket>> silent;
  for (int i = 0; i < 4; ++i) {
    silent.push_back(std::make_unique<tcp::socket>(ioc));
    silent.back()->connect(ep);
  }
  ASSERT_TRUE(eventually([&] { return d->metrics().open_connections.load() == 4; }));
  tcp::socket fifth(ioc);
  fifth.connect(ep);
  EXPECT_TRUE(closed_within(fifth, std::chrono::seconds(10)));
  EXPECT_TRUE(eventually([&] { return d->metrics().connections_rejected.load() >= 1; }));
  // Authenticated clients do not count: once one silent socket goes, a client gets in and, after
  // its handshake, leaves room for another.
  silent.pop_back();
  ASSERT_TRUE(eventually([&] { return d->metrics().open_connections.load() == 3; }));
  RelayTestClient a;
  ASSERT_FALSE(a.connect(ep));
  EXPECT_EQ(a.handshake(SecretKey::generate()), kConfirm);
  RelayTestClient b;
  ASSERT_FALSE(b.connect(ep));
  EXPECT_EQ(b.handshake(SecretKey::generate()), kConfirm);
}

TEST(RelayHandshakeLimits, PreAuthByteBudgetRejectsOverflow) {
  auto cfg = slow_handshake_config();
  // Room for two connections' pre-auth reservation.
  cfg.limits.pre_auth_bytes = 2 * config::Limits::kPreAuthReserveBytes;
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  asio::io_context ioc;
  tcp::socket s1(ioc), s2(ioc), s3(ioc);
  s1.connect(ep);
  s2.connect(ep);
  ASSERT_TRUE(eventually([&] { return d->metrics().open_connections.load() == 2; }));
  s3.connect(ep);
  EXPECT_TRUE(closed_within(s3, std::chrono::seconds(10)));
  EXPECT_TRUE(eventually([&] { return d->metrics().connections_rejected.load() >= 1; }));
  // Released when a handshake ends: after s1 closes, a client authenticates.
  s1.close();
  ASSERT_TRUE(eventually([&] { return d->metrics().open_connections.load() == 1; }));
  RelayTestClient a;
  ASSERT_FALSE(a.connect(ep));
  EXPECT_EQ(a.handshake(SecretKey::generate()), kConfirm);
}

}  // namespace
}  // namespace iroh::test
