// limits.client.rx (spec relay.md §6.8) bounds what the relay reads from one client, not just
// what it reports: a sender's datagrams reach their recipient no faster than burst + rate × t.
// The bound is checked in the direction that cannot flake (a slow machine only delivers less).
#include <gtest/gtest.h>

#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::SecretKey;

TEST(RelayRxLimitThroughput, DeliveryStaysUnderBurstPlusRate) {
  constexpr std::uint32_t kRate = 1000;  // bytes per second
  constexpr std::uint32_t kBurst = 200;
  constexpr std::size_t kDatagram = 500;
  constexpr int kDatagrams = 12;  // 6 KB: 6 s at the limit; all of it fits the socket buffers

  auto cfg = test_config();
  cfg.limits.client_rx = config::ClientRxLimit{kRate, kBurst};
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  auto ka = SecretKey::generate(), kb = SecretKey::generate();
  RelayTestClient sender, receiver;
  ASSERT_FALSE(sender.connect(ep));
  ASSERT_EQ(sender.handshake(ka), kConfirm);
  ASSERT_FALSE(receiver.connect(ep));
  ASSERT_EQ(receiver.handshake(kb), kConfirm);
  // The receiver is registered once it answered a Pong (its own rx bucket is untouched).
  ASSERT_TRUE(receiver.ping_barrier());

  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kDatagrams; ++i) {
    ASSERT_TRUE(sender.send_datagram(kb.public_key(), Bytes(kDatagram, std::uint8_t(i))));
  }
  const auto written = std::chrono::steady_clock::now() - start;

  // Every datagram arrives (the limit slows the sender, it does not drop), and at each arrival
  // the bytes delivered so far stay under burst + rate × (time since the first write). A read
  // that times out closes the test client, so reads wait generously rather than to a deadline.
  std::size_t delivered = 0;
  int messages = 0;
  std::string trace;
  while (messages < kDatagrams) {
    auto m = receiver.read(5s);
    ASSERT_TRUE(m) << "datagram " << messages << " did not arrive: " << trace;
    if (m->empty() || (*m)[0] != 6) continue;  // RelayToClientDatagram only
    delivered += m->size() - 1 - 32 - 1;       // type, src key, ecn
    ++messages;
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    trace += " " + std::to_string(delivered) + "B@" + std::to_string(t).substr(0, 5) + "s";
    // The relay forwards a message before it pauses for its debt: one message of slack.
    EXPECT_LE(double(delivered), kBurst + kRate * t + kDatagram)
        << "the sender wrote all " << kDatagrams << " datagrams in "
        << std::chrono::duration<double>(written).count() << " s; arrivals:" << trace;
  }
  EXPECT_EQ(d->metrics().conns_rx_ratelimited_total.load(), 1u);
}

}  // namespace
}  // namespace iroh::test
