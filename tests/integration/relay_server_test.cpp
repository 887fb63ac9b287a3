// In-process iroh-relay daemon on 127.0.0.1:0 driven by raw WebSocket clients (spec relay.md
// §2-§6).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"
#include "integration/tls_fixture.hpp"
#include "iroh/server/daemon.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::EndpointId;
using relay::SecretKey;
using server::Daemon;

std::unique_ptr<RelayTestClient> connect_client(const tcp::endpoint& ep, const SecretKey& key,
                                                const UpgradeOptions& opts = {}) {
  auto c = std::make_unique<RelayTestClient>();
  EXPECT_FALSE(c->connect(ep, opts));
  auto r = c->handshake(key);
  EXPECT_TRUE(r.has_value());
  if (r) {
    EXPECT_EQ(*r, kConfirm);
  }
  EXPECT_TRUE(c->ping_barrier());
  return c;
}

Bytes expected_datagram(const EndpointId& src, const Bytes& contents, std::uint16_t seg = 0,
                        relay::Ecn ecn = relay::Ecn::NotEct) {
  return *relay::encode_server_datagram(src, ecn, seg, contents);
}

Bytes status_frame(std::uint8_t code) {
  return Bytes{13, code};
}

class RelayServerTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon_ = start_daemon(test_config()); }
  void TearDown() override {
    if (daemon_) daemon_->stop();
  }
  tcp::endpoint ep() const { return *daemon_->http_endpoint(); }
  std::unique_ptr<Daemon> daemon_;
};

// ---- plain HTTP routes ---------------------------------------------------------------------

TEST_F(RelayServerTest, PingRoute) {
  auto res = http_request(ep(), http::verb::get, "/ping");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ((*res)[http::field::access_control_allow_origin], "*");
  EXPECT_EQ((*res)["Strict-Transport-Security"], "max-age=63072000; includeSubDomains");
  EXPECT_FALSE((*res)["Content-Security-Policy"].empty());
  EXPECT_TRUE(res->body().empty());
}

TEST_F(RelayServerTest, CaptivePortal) {
  auto res = http_request(ep(), http::verb::get, "/generate_204",
                          {{"X-Iroh-Challenge", "ts_relay.example.com"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 204);
  EXPECT_EQ((*res)["X-Iroh-Response"], "response ts_relay.example.com");
  res = http_request(ep(), http::verb::get, "/generate_204", {{"X-Iroh-Challenge", "bad value!"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 204);
  EXPECT_EQ(res->find("X-Iroh-Response"), res->end());
}

TEST_F(RelayServerTest, NotFoundAndOtherRoutes) {
  for (auto [verb, target] : {std::pair{http::verb::get, "/nope"},
                              {http::verb::head, "/ping"},
                              {http::verb::post, "/relay"},
                              {http::verb::get, "/relay/"}}) {
    auto res = http_request(ep(), verb, target);
    ASSERT_TRUE(res) << target;
    EXPECT_EQ(res->result_int(), 404) << target;
    if (verb != http::verb::head) {
      EXPECT_EQ(res->body(), "Not Found");
    }
  }
  auto robots = http_request(ep(), http::verb::get, "/robots.txt");
  ASSERT_TRUE(robots);
  EXPECT_EQ(robots->body(), "User-agent: *\nDisallow: /\n");
  auto health = http_request(ep(), http::verb::get, "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->result_int(), 200);
  EXPECT_NE(health->body().find("\"status\":\"ok\""), std::string::npos);
  auto index = http_request(ep(), http::verb::get, "/index.html?x=1");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->result_int(), 200);
  EXPECT_TRUE(index->body().starts_with("<html><body>\n<h1>Iroh Relay</h1>\n"));
}

TEST_F(RelayServerTest, UpgradeErrors) {
  const Headers good = {{"Upgrade", "websocket"},
                        {"Connection", "Upgrade"},
                        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                        {"Sec-WebSocket-Version", "13"},
                        {"Sec-WebSocket-Protocol", "iroh-relay-v2"}};
  auto without = [&](std::string_view name) {
    Headers h;
    for (const auto& kv : good)
      if (kv.first != name) h.push_back(kv);
    return h;
  };
  auto with = [&](std::string_view name, std::string value) {
    Headers h = without(name);
    h.emplace_back(std::string(name), std::move(value));
    return h;
  };
  struct Case {
    Headers headers;
    std::string body;
  };
  std::vector<Case> cases = {
      {without("Upgrade"), "missing header: upgrade"},
      {with("Upgrade", "h2c"), "invalid header value for upgrade: value must be websocket"},
      {without("Sec-WebSocket-Key"), "missing header: sec-websocket-key"},
      {without("Sec-WebSocket-Version"), "missing header: sec-websocket-version"},
      {with("Sec-WebSocket-Version", "8"),
       "invalid header value for sec-websocket-version: unsupported websocket version, only "
       "supporting 13"},
      {without("Sec-WebSocket-Protocol"), "missing header: sec-websocket-protocol"},
      // Longer than a base64 16-byte nonce (RFC 6455 §4.1): refused by the opening handshake.
      {with("Sec-WebSocket-Key", std::string(25, 'A')), "bad Sec-WebSocket-Key"},
      {with("Sec-WebSocket-Protocol", "iroh-relay-v3"),
       "invalid header value for sec-websocket-protocol: unsupported relay version: we support "
       "iroh-relay-v2, iroh-relay-v1 but you only provide iroh-relay-v3"},
  };
  for (const auto& c : cases) {
    auto res = http_request(ep(), http::verb::get, "/relay", c.headers);
    ASSERT_TRUE(res) << c.body;
    EXPECT_EQ(res->result_int(), 400) << c.body;
    EXPECT_EQ(res->body(), c.body);
    bool version_error = c.body.find("only supporting 13") != std::string::npos;
    EXPECT_EQ((*res)[http::field::sec_websocket_version] == "13", version_error) << c.body;
  }
}

// ---- upgrade + handshake -------------------------------------------------------------------

TEST_F(RelayServerTest, UpgradeNegotiatesV2AndAuthenticates) {
  RelayTestClient c;
  ASSERT_FALSE(c.connect(ep(), UpgradeOptions{}
                                   .with_protocols("iroh-relay-v1, iroh-relay-v2")
                                   .with_header("Upgrade", "WebSocket")));
  EXPECT_EQ(c.response().result_int(), 101);
  EXPECT_EQ(c.response()[http::field::sec_websocket_protocol], "iroh-relay-v2");
  EXPECT_EQ(c.response().find(http::field::sec_websocket_extensions), c.response().end());
  std::size_t lines = std::distance(c.response().begin(), c.response().end());
  EXPECT_LE(lines, 25u);
  auto key = SecretKey::generate();
  auto r = c.handshake(key);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, kConfirm);
  EXPECT_TRUE(eventually([&] { return daemon_->client_count() == 1; }));
}

TEST_F(RelayServerTest, BadSignatureIsDenied) {
  RelayTestClient c;
  ASSERT_FALSE(c.connect(ep()));
  auto r = c.handshake(SecretKey::generate(), /*corrupt=*/true);
  ASSERT_TRUE(r);
  auto decoded = relay::decode_handshake(*r);
  auto* msg = std::get_if<relay::HandshakeMessage>(&decoded);
  ASSERT_TRUE(msg);
  auto* deny = std::get_if<relay::ServerDeniesAuth>(msg);
  ASSERT_TRUE(deny);
  EXPECT_EQ(deny->reason, "signature invalid");
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(daemon_->client_count(), 0u);
}

TEST_F(RelayServerTest, GarbageInsteadOfClientAuthCloses) {
  RelayTestClient c;
  ASSERT_FALSE(c.connect(ep()));
  ASSERT_TRUE(c.read());  // challenge
  ASSERT_TRUE(c.write(Bytes{9, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_TRUE(c.closed_by_server());
}

TEST(RelayServerTimeouts, HandshakeTimeoutClosesSilentClient) {
  auto cfg = test_config();
  cfg.limits.handshake_timeout = 300ms;
  auto d = start_daemon(cfg);
  RelayTestClient c;
  ASSERT_FALSE(c.connect(*d->http_endpoint()));
  ASSERT_TRUE(c.read());  // challenge, never answered
  EXPECT_TRUE(c.closed_by_server(3s));
  // A TCP connection that never sends a request is cut too.
  asio::io_context ioc;
  tcp::socket raw(ioc);
  raw.connect(*d->http_endpoint());
  EXPECT_TRUE(eventually([&] { return d->metrics().handshake_failures.load() >= 2; }, 3s));
}

// The relay listens with one SO_REUSEPORT socket per worker. A second daemon started on the same
// port must fail, naming the address, instead of joining the group and taking half the
// connections (core/bind_address.hpp).
TEST(RelayServerListen, SecondDaemonOnTheSamePortFailsNamingTheAddress) {
  auto first = start_daemon(test_config());
  const auto taken = *first->http_endpoint();
  auto cfg = test_config();
  cfg.http_bind_addr = config::SocketAddr{"127.0.0.1", taken.port()};
  std::string error;
  try {
    start_daemon(cfg);
  } catch (const std::exception& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("http_bind_addr: cannot bind tcp 127.0.0.1:" + std::to_string(taken.port())),
            std::string::npos)
      << error;
  // The first daemon still owns every connection.
  EXPECT_TRUE(connect_client(taken, SecretKey::generate()));
}

Bytes denied_reason(const std::optional<Bytes>& r) {
  return r ? *r : Bytes{};
}

TEST(RelayServerAccess, Allowlist) {
  auto allowed = SecretKey::generate(), other = SecretKey::generate();
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::Allowlist;
  cfg.access.endpoints = {allowed.public_key()};
  auto d = start_daemon(cfg);
  connect_client(*d->http_endpoint(), allowed);
  RelayTestClient c;
  ASSERT_FALSE(c.connect(*d->http_endpoint()));
  auto r = c.handshake(other);
  EXPECT_EQ(denied_reason(r), relay::encode(relay::ServerDeniesAuth{"not authorized"}));
  EXPECT_TRUE(c.closed_by_server());
}

TEST(RelayServerAccess, Denylist) {
  auto denied = SecretKey::generate();
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::Denylist;
  cfg.access.endpoints = {denied.public_key()};
  auto d = start_daemon(cfg);
  connect_client(*d->http_endpoint(), SecretKey::generate());
  RelayTestClient c;
  ASSERT_FALSE(c.connect(*d->http_endpoint()));
  EXPECT_EQ(denied_reason(c.handshake(denied)),
            relay::encode(relay::ServerDeniesAuth{"not authorized"}));
  EXPECT_EQ(d->metrics().denied.load(), 1u);
}

TEST(RelayServerAccess, SharedToken) {
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::SharedToken;
  cfg.access.tokens = {"s3cret/+", "other"};
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  connect_client(ep, SecretKey::generate(),
                 UpgradeOptions{}.with_header("Authorization", "bearer s3cret/+"));
  connect_client(ep, SecretKey::generate(),
                 UpgradeOptions{}.with_target("/relay?token=s3cret%2F%2B"));
  const auto deny = relay::encode(relay::ServerDeniesAuth{"not authorized"});
  for (UpgradeOptions opts :
       {UpgradeOptions{}, UpgradeOptions{}.with_header("Authorization", "Bearer wrong"),
        UpgradeOptions{}.with_header("Authorization", "Basic s3cret/+"),
        UpgradeOptions{}.with_target("/relay?token=nope")}) {
    RelayTestClient c;
    ASSERT_FALSE(c.connect(ep, opts));
    EXPECT_EQ(denied_reason(c.handshake(SecretKey::generate())), deny) << opts.target;
  }
}

// The HTTP callout and capability modes, reloads, drain and TLS certificate reload are in
// hardening_{access,limits,tls}_test.cpp.

// ---- relay semantics ----------------------------------------------------------------------

TEST_F(RelayServerTest, ForwardsExactBytes) {
  auto ka = SecretKey::generate(), kb = SecretKey::generate();
  auto a = connect_client(ep(), ka);
  auto b = connect_client(ep(), kb);
  Bytes contents{1, 2, 3, 4, 5, 0, 255};
  ASSERT_TRUE(a->send_datagram(kb.public_key(), contents, 0, relay::Ecn::Ce));
  auto got = b->read();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, expected_datagram(ka.public_key(), contents, 0, relay::Ecn::Ce));

  Bytes batch(2500);
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = std::uint8_t(i * 7);
  ASSERT_TRUE(b->send_datagram(ka.public_key(), batch, 1200));
  got = a->read();
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)[0], 7);
  EXPECT_EQ(*got, expected_datagram(kb.public_key(), batch, 1200));

  // To oneself, and a maximal datagram.
  Bytes big(relay::kMaxDatagramContents, 0x5a);
  ASSERT_TRUE(a->send_datagram(ka.public_key(), big));
  got = a->read();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, expected_datagram(ka.public_key(), big));
  EXPECT_EQ(daemon_->metrics().send_packets_recv.load(), 3u);
  EXPECT_TRUE(eventually([&] { return daemon_->metrics().send_packets_sent.load() == 3u; }));
}

TEST_F(RelayServerTest, UnknownDestinationIsDroppedAndCounted) {
  auto a = connect_client(ep(), SecretKey::generate());
  ASSERT_TRUE(a->send_datagram(SecretKey::generate().public_key(), Bytes{1}));
  std::vector<Bytes> others;
  ASSERT_TRUE(a->ping_barrier(&others));
  EXPECT_TRUE(others.empty());
  EXPECT_EQ(daemon_->metrics().send_packets_dropped.load(), 1u);
  EXPECT_EQ(daemon_->metrics().dropped_unknown_destination.load(), 1u);
}

TEST_F(RelayServerTest, PingGetsPong) {
  auto a = connect_client(ep(), SecretKey::generate());
  relay::Ping ping{{1, 2, 3, 4, 5, 6, 7, 8}};
  ASSERT_TRUE(a->write(relay::encode_client_frame(ping)));
  auto got = a->read();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, (Bytes{10, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_GE(daemon_->metrics().got_ping.load(), 1u);
  // Text messages are ignored.
  ASSERT_TRUE(a->write_text("hello"));
  EXPECT_TRUE(a->ping_barrier());
}

TEST_F(RelayServerTest, EndpointGoneAfterSenderLeaves) {
  auto ka = SecretKey::generate(), kb = SecretKey::generate(), kc = SecretKey::generate();
  auto a = connect_client(ep(), ka);
  auto b = connect_client(ep(), kb);
  auto c = connect_client(ep(), kc);
  ASSERT_TRUE(a->send_datagram(kb.public_key(), Bytes{42}));
  ASSERT_TRUE(b->read());
  a->close();
  auto gone = b->read();
  ASSERT_TRUE(gone);
  EXPECT_EQ(*gone, *relay::encode_server_frame(relay::EndpointGone{ka.public_key()},
                                               relay::ProtocolVersion::V2));
  // C never got a datagram from A: no EndpointGone for it.
  std::vector<Bytes> others;
  ASSERT_TRUE(c->ping_barrier(&others));
  EXPECT_TRUE(others.empty());
}

TEST_F(RelayServerTest, DuplicateEndpointIds) {
  auto ka = SecretKey::generate(), kx = SecretKey::generate();
  auto x = connect_client(ep(), kx);
  auto a1 = connect_client(ep(), ka);
  ASSERT_TRUE(a1->send_datagram(kx.public_key(), Bytes{1}));
  ASSERT_TRUE(x->read());
  auto a2 = connect_client(ep(), ka);
  auto st = a1->read();
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, status_frame(1));

  // New connection gets the traffic; the old one stays open but gets nothing.
  ASSERT_TRUE(x->send_datagram(ka.public_key(), Bytes{2}));
  auto got = a2->read();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, expected_datagram(kx.public_key(), Bytes{2}));
  std::vector<Bytes> others;
  ASSERT_TRUE(a1->ping_barrier(&others));
  EXPECT_TRUE(others.empty());
  // Inactive connections may still send.
  ASSERT_TRUE(a1->send_datagram(kx.public_key(), Bytes{3}));
  got = x->read();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, expected_datagram(ka.public_key(), Bytes{3}));

  // Active ends: the inactive one is re-activated with Status(Healthy), no EndpointGone.
  a2->close();
  st = a1->read();
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, status_frame(0));
  others.clear();
  ASSERT_TRUE(x->ping_barrier(&others));
  EXPECT_TRUE(others.empty());
  ASSERT_TRUE(x->send_datagram(ka.public_key(), Bytes{4}));
  got = a1->read();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, expected_datagram(kx.public_key(), Bytes{4}));

  // An inactive connection ending sends nothing either.
  auto a3 = connect_client(ep(), ka);
  ASSERT_TRUE(a1->read());  // Status(SameEndpointIdConnected)
  a1->close();
  ASSERT_TRUE(eventually([&] { return daemon_->metrics().clients_inactive_removed.load() == 2; }));
  others.clear();
  ASSERT_TRUE(x->ping_barrier(&others));
  EXPECT_TRUE(others.empty());

  // The last connection of the id ends: EndpointGone.
  a3->close();
  got = x->read();
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)[0], 8);
}

TEST_F(RelayServerTest, V1NegotiationUsesHealth) {
  auto ka = SecretKey::generate();
  auto a1 = std::make_unique<RelayTestClient>();
  ASSERT_FALSE(a1->connect(ep(), UpgradeOptions{}.with_protocols("iroh-relay-v1")));
  EXPECT_EQ(a1->response()[http::field::sec_websocket_protocol], "iroh-relay-v1");
  ASSERT_EQ(a1->handshake(ka), kConfirm);
  auto a2 = connect_client(ep(), ka);
  auto health = a1->read();
  ASSERT_TRUE(health);
  ASSERT_EQ((*health)[0], 11);
  EXPECT_EQ(std::string(health->begin() + 1, health->end()),
            "Another endpoint connected with the same endpoint id. No more messages will be "
            "received.");
}

TEST_F(RelayServerTest, MalformedFramesCloseOnlyThatClient) {
  auto kb = SecretKey::generate(), kc = SecretKey::generate();
  auto b = connect_client(ep(), kb);
  auto c = connect_client(ep(), kc);
  Bytes invalid_key_frame(1 + 32 + 1 + 4, 0);
  invalid_key_frame[0] = 4;
  // y = 2 is not on the curve.
  invalid_key_frame[1] = 2;
  std::vector<std::pair<std::string, Bytes>> bad = {
      {"unknown type", Bytes{0x30, 1, 2, 3}}, {"server-only type", Bytes{6, 1, 2, 3}},
      {"short ping", Bytes{9, 1, 2, 3}},      {"oversize", Bytes(1 + 65537, 4)},
      {"invalid key", invalid_key_frame},     {"handshake type", Bytes{1}},
  };
  std::size_t closed = 0;
  for (const auto& [name, frame] : bad) {
    auto bad_client = connect_client(ep(), SecretKey::generate());
    ASSERT_TRUE(bad_client->write(frame)) << name;
    EXPECT_TRUE(bad_client->closed_by_server()) << name;
    ++closed;
    // The bystanders are unaffected.
    ASSERT_TRUE(b->send_datagram(kc.public_key(), Bytes{7, 7})) << name;
    auto got = c->read();
    ASSERT_TRUE(got) << name;
    EXPECT_EQ(*got, expected_datagram(kb.public_key(), Bytes{7, 7}));
  }
  EXPECT_GE(daemon_->metrics().malformed_frames.load(), closed - 1);
}

// A recipient that never reads fills its TCP buffers and queue: datagrams to it are dropped and
// counted, it is eventually closed by the write timeout, and a pair exchanging datagrams at full
// rate meanwhile sees every one of them.
TEST(RelayServerSlowReader, DoesNotStallOthers) {
  auto cfg = test_config();
  cfg.limits.client_queue_capacity = 16;
  cfg.limits.write_timeout = 500ms;
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  auto ks = SecretKey::generate(), ka = SecretKey::generate(), kb = SecretKey::generate(),
       kc = SecretKey::generate();
  auto slow = connect_client(ep, ks);
  auto flooder = connect_client(ep, ka);
  auto b = connect_client(ep, kb);
  auto c = connect_client(ep, kc);

  std::atomic<bool> flood_done{false};
  std::thread flood([&] {
    Bytes big(60000, 0xab);
    for (int i = 0; i < 400 && flooder->send_datagram(ks.public_key(), big); ++i) {
    }
    flood_done = true;
  });

  constexpr int kPairMessages = 300;
  int received = 0;
  for (int i = 0; i < kPairMessages; ++i) {
    Bytes contents(1200, std::uint8_t(i));
    ASSERT_TRUE(b->send_datagram(kc.public_key(), contents));
    auto got = c->read(5s);
    ASSERT_TRUE(got) << "message " << i;
    ASSERT_EQ(*got, expected_datagram(kb.public_key(), contents));
    ++received;
  }
  flood.join();
  EXPECT_EQ(received, kPairMessages);
  EXPECT_TRUE(flood_done);
  EXPECT_TRUE(eventually([&] { return d->metrics().dropped_queue_full.load() > 0; }));
  EXPECT_TRUE(eventually([&] { return d->metrics().write_timeouts.load() >= 1; }, 5s));
  // The flooder and the pair are still connected.
  EXPECT_TRUE(flooder->ping_barrier());
  EXPECT_TRUE(b->ping_barrier());
  EXPECT_TRUE(c->ping_barrier());
}

TEST(RelayServerRateLimit, SendsRateLimitedStatusOnce) {
  auto cfg = test_config();
  cfg.limits.client_rx = config::ClientRxLimit{1000, 200};
  auto d = start_daemon(cfg);
  auto a = std::make_unique<RelayTestClient>();
  ASSERT_FALSE(a->connect(*d->http_endpoint()));
  ASSERT_EQ(a->handshake(SecretKey::generate()), kConfirm);
  auto nobody = SecretKey::generate().public_key();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->send_datagram(nobody, Bytes(100, 1)));
  auto got = a->read(5s);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, status_frame(2));
  EXPECT_EQ(d->metrics().conns_rx_ratelimited_total.load(), 1u);
  EXPECT_GT(d->metrics().bytes_rx_ratelimited_total.load(), 0u);
}

TEST(RelayServerLimits, MaxConnections) {
  auto cfg = test_config();
  cfg.limits.max_connections = 1;
  auto d = start_daemon(cfg);
  auto a = connect_client(*d->http_endpoint(), SecretKey::generate());
  RelayTestClient b;
  auto ec = b.connect(*d->http_endpoint());
  EXPECT_TRUE(ec);
  EXPECT_TRUE(eventually([&] { return d->metrics().connections_rejected.load() == 1; }));
  EXPECT_TRUE(a->ping_barrier());
}

// ---- TLS ------------------------------------------------------------------------------------

struct SelfSignedCert {
  std::filesystem::path dir;
  std::filesystem::path cert;
  std::filesystem::path key;
};

SelfSignedCert make_self_signed_cert() {
  SelfSignedCert out;
  out.dir = std::filesystem::temp_directory_path() /
            ("relay_server_test_" + std::to_string(::getpid()) + "_" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(out.dir);
  out.cert = out.dir / "cert.pem";
  out.key = out.dir / "key.pem";
  const CertFiles pem = make_cert("localhost");
  write_file(out.cert, pem.cert_pem);
  write_file(out.key, pem.key_pem);
  return out;
}

class RelayServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = make_self_signed_cert();
    auto cfg = test_config();
    cfg.dev = false;
    config::TlsConfig tls;
    tls.https_bind_addr = config::SocketAddr{"127.0.0.1", 0};
    tls.manual_cert_path = cert_.cert;
    tls.manual_key_path = cert_.key;
    cfg.tls = tls;
    daemon_ = start_daemon(cfg);
    client_ctx_.set_verify_mode(ssl::verify_none);
  }
  void TearDown() override {
    daemon_->stop();
    std::error_code ec;
    std::filesystem::remove_all(cert_.dir, ec);
  }
  SelfSignedCert cert_;
  std::unique_ptr<Daemon> daemon_;
  ssl::context client_ctx_{ssl::context::tls_client};
};

TEST_F(RelayServerTlsTest, AuthHeaderSkipsChallenge) {
  ASSERT_TRUE(daemon_->https_endpoint());
  auto key = SecretKey::generate();
  TlsRelayTestClient c(client_ctx_);
  ASSERT_FALSE(c.connect(*daemon_->https_endpoint(), UpgradeOptions{}.with_auth_header(key)));
  EXPECT_EQ(c.response()[http::field::sec_websocket_protocol], "iroh-relay-v2");
  EXPECT_EQ(c.response()["Strict-Transport-Security"], "max-age=63072000; includeSubDomains");
  auto first = c.read();
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, kConfirm);  // no ServerChallenge
  ASSERT_TRUE(c.ping_barrier());
  EXPECT_EQ(daemon_->client_count(), 1u);
}

TEST_F(RelayServerTlsTest, ChallengeOverTlsAndTls12) {
  auto key = SecretKey::generate();
  TlsRelayTestClient c(client_ctx_);
  ASSERT_FALSE(c.connect(*daemon_->https_endpoint()));
  EXPECT_EQ(c.handshake(key), kConfirm);

  ssl::context tls12{ssl::context::tls_client};
  tls12.set_verify_mode(ssl::verify_none);
  SSL_CTX_set_max_proto_version(tls12.native_handle(), TLS1_2_VERSION);
  TlsRelayTestClient c12(tls12);
  // The exporter also works on TLS 1.2 (RFC 5705).
  ASSERT_FALSE(c12.connect(*daemon_->https_endpoint(), UpgradeOptions{}.with_auth_header(key)));
  EXPECT_EQ(c12.read(), kConfirm);
}

TEST_F(RelayServerTlsTest, CaptivePortalListenerServesOnlyGenerate204) {
  ASSERT_TRUE(daemon_->http_endpoint());
  auto res = http_request(*daemon_->http_endpoint(), http::verb::get, "/generate_204",
                          {{"X-Iroh-Challenge", "ts_x"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 204);
  EXPECT_EQ((*res)["X-Iroh-Response"], "response ts_x");
  EXPECT_EQ(res->find("Strict-Transport-Security"), res->end());
  for (const char* target : {"/ping", "/relay", "/"}) {
    res = http_request(*daemon_->http_endpoint(), http::verb::get, target);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 404) << target;
    EXPECT_EQ(res->body(), "Not Found");
  }
}

}  // namespace
}  // namespace iroh::test
