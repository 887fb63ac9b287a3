// The relay mesh (issue 16, docs/mesh.md) with in-process daemons on 127.0.0.1: endpoints homed
// on different nodes reach each other through RelayClient, a wrong key is refused and logged, a
// restarted node is relinked and traffic resumes, three nodes in a full mesh, and the
// duplicate-id rule across nodes.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "integration/log_capture.hpp"
#include "iroh/config.hpp"
#include "iroh/relay_client.hpp"
#include "iroh/server/daemon.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using iroh::client::Received;
using iroh::client::ReceivedDatagram;
using iroh::client::RelayClient;
using iroh::server::Daemon;
namespace relay = iroh::relay;
namespace config = iroh::config;
namespace log = iroh::log;
using iroh::test::LogCapture;

constexpr const char* kKey = "mesh-test-key-0123456789abcdef-0123456789";

void run(asio::io_context& ctx, std::function<asio::awaitable<void>()> body,
         std::chrono::seconds limit = 60s) {
  bool done = false;
  std::exception_ptr error;
  asio::co_spawn(ctx, body(), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  ctx.restart();
  ctx.run_for(limit);
  ASSERT_TRUE(done) << "test body did not finish within " << limit.count() << " s";
  if (error) std::rethrow_exception(error);
}

asio::awaitable<std::optional<Received>> receive_for(RelayClient& client,
                                                     std::chrono::milliseconds limit) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, limit);
  auto [order, receive_error, event, timer_error] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, client.receive(), asio::deferred),
          asio::co_spawn(executor, timer.async_wait(asio::use_awaitable), asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::deferred);
  if (!receive_error) co_return std::move(event);
  if (order[0] == 1 && !timer_error) co_return std::nullopt;
  std::rethrow_exception(receive_error);
}

// Sends `payload` from `from` to `to` every 100 ms until `to` receives it (other events are
// skipped), for at most `limit`. The time it took, or nullopt.
asio::awaitable<std::optional<std::chrono::milliseconds>> deliver(
    RelayClient& from, RelayClient& to, const relay::Bytes& payload,
    std::chrono::milliseconds limit = 10s) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    (void)from.send(to.endpoint_id(), payload);
    auto event = co_await receive_for(to, 100ms);
    while (event) {
      if (auto* d = std::get_if<ReceivedDatagram>(&*event)) {
        if (d->src == from.endpoint_id() &&
            relay::Bytes(d->contents.begin(), d->contents.end()) == payload) {
          co_return std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - start);
        }
      }
      event = co_await receive_for(to, 1ms);
    }
  }
  co_return std::nullopt;
}

std::uint16_t free_port() {
  asio::io_context ctx;
  asio::ip::tcp::acceptor a(ctx, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

std::string url_of(std::uint16_t port) {
  return "http://127.0.0.1:" + std::to_string(port);
}

config::Config node_config(std::uint16_t port, const std::vector<std::uint16_t>& peers,
                           const std::string& key = kKey) {
  config::Config c;
  c.source = "<mesh_test>";
  c.http_bind_addr = {"127.0.0.1", port};
  c.enable_metrics = false;
  c.metrics_bind_addr = {"127.0.0.1", 0};
  c.data_dir = std::filesystem::temp_directory_path();
  c.log_level = "warn";
  c.relay_threads = 2;
  for (auto p : peers) {
    std::string error;
    auto peer = config::parse_mesh_peer(url_of(p), error);
    EXPECT_TRUE(peer) << error;
    c.mesh.peers.push_back(*peer);
  }
  c.mesh.psk = key;
  return c;
}

std::unique_ptr<Daemon> start_node(config::Config c) {
  auto d = std::make_unique<Daemon>(std::move(c), 2);
  d->start();
  return d;
}

std::int64_t peers_up(Daemon& d) {
  std::int64_t n = 0;
  for (const auto& p : d.metrics().mesh_peers) n += p->up.load() ? 1 : 0;
  return n;
}

// Polls every 20 ms from the test thread's io_context.
asio::awaitable<bool> eventually(std::function<bool()> pred, std::chrono::milliseconds limit) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) co_return false;
    t.expires_after(20ms);
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return true;
}

TEST(Mesh, TwoNodesRelayAcross) {
  const auto p1 = free_port(), p2 = free_port();
  auto n1 = start_node(node_config(p1, {p2}));
  auto n2 = start_node(node_config(p2, {p1}));
  asio::io_context ctx;
  run(ctx, [&]() -> asio::awaitable<void> {
    const bool ok1 =
        bool(co_await eventually([&] { return peers_up(*n1) == 1 && peers_up(*n2) == 1; }, 10s));
    EXPECT_TRUE(ok1);
    RelayClient a(ctx.get_executor(), url_of(p1), relay::SecretKey::generate());
    RelayClient b(ctx.get_executor(), url_of(p2), relay::SecretKey::generate());
    co_await a.connect();
    co_await b.connect();
    const bool ok2 = bool(
        co_await eventually([&] { return n1->metrics().mesh_remote_endpoints.load() == 1; }, 10s));
    EXPECT_TRUE(ok2);
    // Named: GCC 12 rejects braced temporaries inside co_await arguments.
    const relay::Bytes msg1 = relay::Bytes{1, 2, 3};
    auto ab = co_await deliver(a, b, msg1);
    EXPECT_TRUE(ab.has_value()) << "A -> B across the mesh";
    // Named: GCC 12 rejects braced temporaries inside co_await arguments.
    const relay::Bytes msg2 = relay::Bytes(1200, 0x5a);
    auto ba = co_await deliver(b, a, msg2);
    EXPECT_TRUE(ba.has_value()) << "B -> A across the mesh";
    // Waited for, not read once: a node counts a forwarded datagram after handing it to its link
    // (Mesh::forward), whose thread may deliver it to the other node's client first (failed once
    // in a parallel stress run under CPU hogs: B -> A arrived, node 2's counter still 0).
    const bool forwarded = bool(co_await eventually(
        [&] {
          return n1->metrics().mesh_peers[0]->forwarded_datagrams.load() >= 1 &&
                 n2->metrics().mesh_peers[0]->forwarded_datagrams.load() >= 1;
        },
        10s));
    EXPECT_TRUE(forwarded);
    // B leaves: node 1 forgets it.
    b.close();
    const bool ok3 = bool(
        co_await eventually([&] { return n1->metrics().mesh_remote_endpoints.load() == 0; }, 10s));
    EXPECT_TRUE(ok3);
    a.close();
  });
  n2->stop();
  n1->stop();
}

TEST(Mesh, WrongKeyIsRefusedAndLogged) {
  LogCapture logs;
  const auto p1 = free_port(), p2 = free_port();
  auto n1 = start_node(node_config(p1, {p2}));
  auto n2 = start_node(node_config(p2, {p1}, "another-key-0123456789abcdef-0123456789"));
  asio::io_context ctx;
  run(ctx, [&]() -> asio::awaitable<void> {
    const bool ok4 = bool(co_await eventually(
        [&] {
          return n1->metrics().mesh_links_refused.load() >= 1 &&
                 n2->metrics().mesh_links_refused.load() >= 1;
        },
        10s));
    EXPECT_TRUE(ok4);
    // Logged on the mesh thread around the counter's update: wait for the line.
    const bool logged =
        bool(co_await eventually([&] { return logs.contains("refused: wrong key"); }, 10s));
    EXPECT_TRUE(logged);
    EXPECT_EQ(peers_up(*n1), 0);
    EXPECT_EQ(peers_up(*n2), 0);
    RelayClient a(ctx.get_executor(), url_of(p1), relay::SecretKey::generate());
    RelayClient b(ctx.get_executor(), url_of(p2), relay::SecretKey::generate());
    co_await a.connect();
    co_await b.connect();
    // Named: GCC 12 rejects braced temporaries inside co_await arguments.
    const relay::Bytes msg3 = relay::Bytes{1};
    const bool ok5 = bool(co_await deliver(a, b, msg3, 1s));
    EXPECT_FALSE(ok5);
    a.close();
    b.close();
  });
  n2->stop();
  n1->stop();
}

TEST(Mesh, RestartedNodeRelinksAndTrafficResumes) {
  const auto p1 = free_port(), p2 = free_port();
  auto n1 = start_node(node_config(p1, {p2}));
  auto n2 = start_node(node_config(p2, {p1}));
  asio::io_context ctx;
  const auto b_key = relay::SecretKey::generate();
  run(ctx, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx.get_executor(), url_of(p1), relay::SecretKey::generate());
    co_await a.connect();
    {
      RelayClient b(ctx.get_executor(), url_of(p2), b_key);
      co_await b.connect();
      // Named: GCC 12 rejects braced temporaries inside co_await arguments.
      const relay::Bytes msg4 = relay::Bytes{1, 2, 3};
      const bool ok6 = bool(co_await deliver(a, b, msg4));
      EXPECT_TRUE(ok6);
      // Node 2 goes away (its clients with it): node 1 marks the link down; datagrams for B
      // are dropped as mesh_down until B is back.
      n2->stop();
      n2.reset();
      const bool ok7 = bool(co_await eventually([&] { return peers_up(*n1) == 0; }, 10s));
      EXPECT_TRUE(ok7);
      // Named: GCC 12 rejects braced temporaries inside co_await arguments.
      const relay::Bytes msg5 = relay::Bytes{9};
      (void)a.send(b.endpoint_id(), msg5);
      const bool ok8 = bool(
          co_await eventually([&] { return n1->metrics().dropped_mesh_down.load() >= 1; }, 5s));
      EXPECT_TRUE(ok8);
    }
    const auto restarted = std::chrono::steady_clock::now();
    n2 = start_node(node_config(p2, {p1}));
    RelayClient b(ctx.get_executor(), url_of(p2), b_key);
    co_await b.connect();
    // Named: GCC 12 rejects braced temporaries inside co_await arguments.
    const relay::Bytes msg6 = relay::Bytes{4, 5, 6};
    auto resumed = co_await deliver(a, b, msg6, 10s);
    EXPECT_TRUE(resumed.has_value()) << "traffic did not resume within 10 s of the restart";
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - restarted);
    std::printf("mesh failover: traffic resumed %lld ms after node 2 restarted\n",
                static_cast<long long>(took.count()));
    a.close();
    b.close();
  });
  if (n2) n2->stop();
  n1->stop();
}

// docs/mesh.md §5.2: a peer may grow this node's remote table only up to
// mesh.max_remote_endpoints; a Present for one more id is dropped and counted (logged once), the
// link stays up and the ids within the limit stay reachable.
TEST(Mesh, RemoteTableCapDropsAndCountsPresence) {
  LogCapture logs;
  const auto p1 = free_port(), p2 = free_port();
  auto c1 = node_config(p1, {p2});
  c1.mesh.max_remote_endpoints = 2;
  auto n1 = start_node(std::move(c1));
  auto n2 = start_node(node_config(p2, {p1}));
  asio::io_context ctx;
  run(ctx, [&]() -> asio::awaitable<void> {
    const bool linked =
        bool(co_await eventually([&] { return peers_up(*n1) == 1 && peers_up(*n2) == 1; }, 10s));
    EXPECT_TRUE(linked);
    RelayClient a(ctx.get_executor(), url_of(p1), relay::SecretKey::generate());
    RelayClient b1(ctx.get_executor(), url_of(p2), relay::SecretKey::generate());
    RelayClient b2(ctx.get_executor(), url_of(p2), relay::SecretKey::generate());
    RelayClient b3(ctx.get_executor(), url_of(p2), relay::SecretKey::generate());
    co_await a.connect();
    co_await b1.connect();
    co_await b2.connect();
    const bool two = bool(
        co_await eventually([&] { return n1->metrics().mesh_remote_endpoints.load() == 2; }, 10s));
    EXPECT_TRUE(two);
    co_await b3.connect();
    auto& over = n1->metrics().mesh_peers[0]->presence_dropped;
    const bool dropped = bool(co_await eventually([&] { return over.load() == 1; }, 10s));
    EXPECT_TRUE(dropped);
    EXPECT_EQ(n1->metrics().mesh_remote_endpoints.load(), 2);
    // The counter is bumped just before the warning is logged (server/src/relay/mesh.cpp), on
    // another thread: wait for the line rather than expecting it the moment the counter moves.
    const bool warned = bool(co_await eventually(
        [&] { return logs.contains("announced more than mesh.max_remote_endpoints (2)"); }, 10s));
    EXPECT_TRUE(warned);
    EXPECT_EQ(peers_up(*n1), 1) << "the link stays up";
    // The ids within the limit are still reachable; the dropped one is unknown here.
    const relay::Bytes msg = relay::Bytes{7, 7};
    const bool reached = bool(co_await deliver(a, b1, msg));
    EXPECT_TRUE(reached);
    const auto unknown_before = n1->metrics().dropped_unknown_destination.load();
    (void)a.send(b3.endpoint_id(), msg);
    const bool counted = bool(co_await eventually(
        [&] { return n1->metrics().dropped_unknown_destination.load() > unknown_before; }, 5s));
    EXPECT_TRUE(counted);
    // A slot frees when an announced id leaves; a later id fits again.
    b1.close();
    const bool freed = bool(
        co_await eventually([&] { return n1->metrics().mesh_remote_endpoints.load() == 1; }, 10s));
    EXPECT_TRUE(freed);
    RelayClient b4(ctx.get_executor(), url_of(p2), relay::SecretKey::generate());
    co_await b4.connect();
    const bool fits = bool(co_await deliver(a, b4, msg));
    EXPECT_TRUE(fits);
    EXPECT_EQ(over.load(), 1u);
    a.close();
    b2.close();
    b3.close();
    b4.close();
  });
  n2->stop();
  n1->stop();
}

TEST(Mesh, ThreeNodesFullMesh) {
  const std::uint16_t p[3] = {free_port(), free_port(), free_port()};
  std::unique_ptr<Daemon> n[3];
  for (int i = 0; i < 3; ++i) {
    std::vector<std::uint16_t> peers;
    for (int j = 0; j < 3; ++j) {
      if (j != i) peers.push_back(p[j]);
    }
    n[i] = start_node(node_config(p[i], peers));
  }
  asio::io_context ctx;
  run(ctx, [&]() -> asio::awaitable<void> {
    std::vector<std::unique_ptr<RelayClient>> c;
    for (int i = 0; i < 3; ++i) {
      c.push_back(std::make_unique<RelayClient>(ctx.get_executor(), url_of(p[i]),
                                                relay::SecretKey::generate()));
      co_await c.back()->connect();
    }
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) {
        if (i == j) continue;
        // Named: GCC 12 rejects braced temporaries inside co_await arguments.
        const relay::Bytes msg7 = relay::Bytes{std::uint8_t(i), std::uint8_t(j)};
        auto took = co_await deliver(*c[i], *c[j], msg7);
        EXPECT_TRUE(took.has_value()) << "node " << i << " -> node " << j;
      }
    }
    // A datagram crosses at most one link: nothing was forwarded onward by a receiving node.
    for (int i = 0; i < 3; ++i) EXPECT_EQ(peers_up(*n[i]), 2);
    for (auto& client : c) client->close();
  });
  for (auto& d : n) d->stop();
}

TEST(Mesh, DuplicateIdAcrossNodesNewestWins) {
  const auto p1 = free_port(), p2 = free_port();
  auto n1 = start_node(node_config(p1, {p2}));
  auto n2 = start_node(node_config(p2, {p1}));
  asio::io_context ctx;
  const auto b_key = relay::SecretKey::generate();
  run(ctx, [&]() -> asio::awaitable<void> {
    const bool ok9 =
        bool(co_await eventually([&] { return peers_up(*n1) == 1 && peers_up(*n2) == 1; }, 10s));
    EXPECT_TRUE(ok9);
    RelayClient a(ctx.get_executor(), url_of(p1), relay::SecretKey::generate());
    RelayClient b_old(ctx.get_executor(), url_of(p1), b_key);
    co_await a.connect();
    co_await b_old.connect();
    // Named: GCC 12 rejects braced temporaries inside co_await arguments.
    const relay::Bytes msg8 = relay::Bytes{1};
    const bool ok10 = bool(co_await deliver(a, b_old, msg8));
    EXPECT_TRUE(ok10);
    // The same id connects at node 2: the newer connection wins mesh-wide; the old one hears
    // SameEndpointIdConnected and gets nothing more.
    RelayClient b_new(ctx.get_executor(), url_of(p2), b_key);
    co_await b_new.connect();
    bool told = false;
    for (int i = 0; i < 50 && !told; ++i) {
      auto ev = co_await receive_for(b_old, 100ms);
      if (ev) {
        if (auto* s = std::get_if<relay::Status>(&*ev)) {
          told = s->code == static_cast<std::uint8_t>(relay::StatusCode::SameEndpointIdConnected);
        }
      }
    }
    EXPECT_TRUE(told) << "the older connection was not told about the newer one";
    // Named: GCC 12 rejects braced temporaries inside co_await arguments.
    const relay::Bytes msg9 = relay::Bytes{2};
    const bool ok11 = bool(co_await deliver(a, b_new, msg9));
    EXPECT_TRUE(ok11);
    // The newer one leaves: the older one is active again (Healthy) and receives.
    b_new.close();
    // Named: GCC 12 rejects braced temporaries inside co_await arguments.
    const relay::Bytes msg10 = relay::Bytes{3};
    const bool ok12 = bool(co_await deliver(a, b_old, msg10));
    EXPECT_TRUE(ok12);
    a.close();
    b_old.close();
  });
  n2->stop();
  n1->stop();
}

// Issue 16 item 6, a figure only (never fails on it): datagrams/s relayed within one node and
// across the mesh in the same run, one sender flooding 1200-byte datagrams for 1 s each way.
asio::awaitable<double> flood_rate(asio::io_context& ctx, const std::string& from_url,
                                   const std::string& to_url) {
  RelayClient a(ctx.get_executor(), from_url, relay::SecretKey::generate());
  RelayClient b(ctx.get_executor(), to_url, relay::SecretKey::generate());
  co_await a.connect();
  co_await b.connect();
  // Warm-up: the path works (and, across nodes, B is known at A's node).
  // Not `if (!co_await ...)`: GCC 12 miscompiles that (see relay/session.cpp).
  // Named: GCC 12 rejects braced temporaries inside co_await arguments.
  const relay::Bytes msg11 = relay::Bytes{0};
  const auto warm = co_await deliver(a, b, msg11, 10s);
  if (!warm) co_return 0.0;
  const relay::Bytes payload(1200, 0x42);
  std::size_t received = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + 1s;
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer yield(ex);
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 64; ++i) (void)a.send(b.endpoint_id(), payload);
    for (;;) {
      auto ev = co_await receive_for(b, 0ms);
      if (!ev) break;
      if (std::holds_alternative<ReceivedDatagram>(*ev)) ++received;
    }
  }
  // What is still in flight after the window counts too, for up to 200 ms.
  for (;;) {
    auto ev = co_await receive_for(b, 200ms);
    if (!ev) break;
    if (std::holds_alternative<ReceivedDatagram>(*ev)) ++received;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  a.close();
  b.close();
  co_return double(received) / secs;
}

TEST(Mesh, ThroughputFigure) {
  const auto p1 = free_port(), p2 = free_port();
  auto n1 = start_node(node_config(p1, {p2}));
  auto n2 = start_node(node_config(p2, {p1}));
  asio::io_context ctx;
  run(ctx, [&]() -> asio::awaitable<void> {
    const double same = co_await flood_rate(ctx, url_of(p1), url_of(p1));
    const double cross = co_await flood_rate(ctx, url_of(p1), url_of(p2));
    std::printf(
        "mesh throughput (1200-byte datagrams, one sender, same run): same node %.0f/s, "
        "across the mesh %.0f/s, ratio %.2f\n",
        same, cross, same > 0 ? cross / same : 0.0);
    EXPECT_GT(same, 0.0);
    EXPECT_GT(cross, 0.0);
  });
  n2->stop();
  n1->stop();
}

}  // namespace
