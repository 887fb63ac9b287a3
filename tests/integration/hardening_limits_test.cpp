// Relay limits and lifecycle (issue 7): access and limits reload without dropping clients, the
// accept rate, the SIGTERM-style drain, and handshake timeouts against slowloris and half-open
// connections.
#include <gtest/gtest.h>
#include <sched.h>

#include <array>
#include <thread>

#include "integration/hardening_fixture.hpp"

namespace iroh::test {
namespace {

using relay::SecretKey;

// ---- reload ---------------------------------------------------------------------------------

TEST(HardeningReload, AccessAndLimitsReloadWithoutDroppingClients) {
  auto alice = SecretKey::generate(), bob = SecretKey::generate();
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::Allowlist;
  cfg.access.endpoints = {alice.public_key()};
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  auto a = connected(ep, alice);
  RelayTestClient b0;
  EXPECT_EQ(try_connect(b0, ep, bob), deny("not authorized"));

  // Now only bob, and at most 2 connections per IP: alice stays connected.
  auto next = cfg;
  next.access.endpoints = {bob.public_key()};
  next.limits.max_connections_per_ip = 2;
  ASSERT_TRUE(d->reload(next));
  auto b = connected(ep, bob);
  EXPECT_TRUE(a->ping_barrier());
  EXPECT_EQ(d->client_count(), 2u);
  // A third connection from 127.0.0.1 is over the new per-IP limit... counting starts with the
  // reload (alice's connection was accepted before it), so b is 1, c is 2, d is 3.
  auto c = connected(ep, bob);
  RelayTestClient over;
  EXPECT_TRUE(over.connect(ep));
  EXPECT_TRUE(eventually([&] { return d->metrics().connections_rejected.load() == 1; }));
  EXPECT_TRUE(a->ping_barrier());

  // A reload that cannot be applied (certificate files missing) keeps everything.
  auto broken = next;
  broken.tls = config::TlsConfig{};
  broken.tls->manual_cert_path = "/nonexistent/cert.pem";
  EXPECT_TRUE(d->reload(broken));  // tls added: restart-only, warned and ignored
  EXPECT_EQ(d->current_config().access.endpoints, next.access.endpoints);
}

TEST(HardeningLimits, AcceptRateAndBurst) {
  auto cfg = test_config();
  cfg.limits.accept_conn_limit = 0.001;  // effectively no refill during the test
  cfg.limits.accept_conn_burst = 2;
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  auto a = connected(ep, SecretKey::generate());
  auto b = connected(ep, SecretKey::generate());
  RelayTestClient c;
  EXPECT_TRUE(c.connect(ep));
  EXPECT_TRUE(eventually([&] { return d->metrics().connections_rejected.load() == 1; }));
  // A reload resets the bucket (and could raise the rate).
  ASSERT_TRUE(d->reload(cfg));
  connected(ep, SecretKey::generate());
  EXPECT_TRUE(a->ping_barrier());
  EXPECT_TRUE(b->ping_barrier());
}

// ---- drain ----------------------------------------------------------------------------------

TEST(HardeningLifecycle, DrainSendsRestartingThenCloses) {
  auto d = start_daemon(test_config());
  auto ep = *d->http_endpoint();
  auto a = connected(ep, SecretKey::generate());
  auto b = connected(ep, SecretKey::generate());
  // A connection still in its HTTP phase is closed too.
  asio::io_context ioc;
  tcp::socket idle(ioc);
  idle.connect(ep);
  std::thread drainer([&] { d->drain_and_stop(5s); });
  for (auto* c : {a.get(), b.get()}) {
    auto frame = c->read(5s);
    ASSERT_TRUE(frame);
    auto decoded = relay::decode_server_frame(*frame, relay::ProtocolVersion::V2);
    auto* f = std::get_if<relay::ServerFrame>(&decoded);
    ASSERT_TRUE(f);
    auto* restarting = std::get_if<relay::Restarting>(f);
    ASSERT_TRUE(restarting);
    EXPECT_EQ(restarting->reconnect_in_ms, 1000u);
    EXPECT_EQ(restarting->try_for_ms, 30000u);
    // Then the WebSocket Close (1001) and the server closes the TCP connection; which of the
    // two the client library reports first varies.
    EXPECT_FALSE(c->read(5s));
    EXPECT_NE(c->last_error(), asio::error::timed_out);
  }
  drainer.join();
  EXPECT_EQ(d->metrics().open_connections.load(), 0);
}

// A drain that reaches a connection between its registration and the end of its
// ServerConfirmsAuth write still sends Restarting before closing: the client can hear the
// confirmation, and the daemon be drained, before the server's coroutine resumes from that
// write. Such a connection counted as not yet registered and was closed without Restarting
// (Reconnect.SurvivesDaemonRestart failed 18 times in 100 on busy cores). The daemon's threads
// and the client share one CPU here, so the client, woken by the confirmation, usually drains
// before the worker that sent it runs again: the window is hit in most rounds.
TEST(HardeningLifecycle, DrainRightAfterRegistrationStillSendsRestarting) {
  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &before)) {
      CPU_SET(cpu, &one);
      break;
    }
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);  // inherited by the daemon's threads
  for (int round = 0; round < 20 && !HasFatalFailure(); ++round) {
    auto d = start_daemon(test_config());
    RelayTestClient c;
    auto answer = try_connect(c, *d->http_endpoint(), SecretKey::generate());
    d->drain_and_stop(5s);
    EXPECT_EQ(answer, kConfirm) << "round " << round;
    auto frame = c.read(5s);
    EXPECT_TRUE(frame) << "round " << round << ": closed without Restarting";
    if (!frame) continue;
    auto decoded = relay::decode_server_frame(*frame, relay::ProtocolVersion::V2);
    auto* f = std::get_if<relay::ServerFrame>(&decoded);
    EXPECT_TRUE(f && std::holds_alternative<relay::Restarting>(*f)) << "round " << round;
    EXPECT_FALSE(c.read(5s)) << "round " << round;
  }
  sched_setaffinity(0, sizeof before, &before);
}

// ---- timeouts: slowloris and half-open ------------------------------------------------------

TEST(HardeningTimeouts, SlowlorisAndHalfOpenAreCutOthersUnaffected) {
  auto cfg = test_config();
  cfg.limits.handshake_timeout = 400ms;
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  auto a = connected(ep, SecretKey::generate());
  asio::io_context ioc;
  tcp::socket half_open(ioc), slow(ioc);
  half_open.connect(ep);
  slow.connect(ep);
  asio::write(slow, asio::buffer(std::string("GET /ping HTTP/1.1\r\n")));
  // Slow headers: one byte every 50 ms, far longer than the handshake timeout allows.
  bool cut = false;
  for (int i = 0; i < 200 && !cut; ++i) {
    error_code ec;
    asio::write(slow, asio::buffer("X", 1), ec);
    if (ec) cut = true;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(cut);
  EXPECT_TRUE(eventually([&] { return d->metrics().handshake_failures.load() >= 2; }));
  // Both are gone for good: reads see EOF/reset.
  for (auto* s : {&half_open, &slow}) {
    std::array<char, 16> buf{};
    error_code ec;
    s->read_some(asio::buffer(buf), ec);
    EXPECT_TRUE(ec);
  }
  EXPECT_TRUE(a->ping_barrier());
}

}  // namespace
}  // namespace iroh::test
