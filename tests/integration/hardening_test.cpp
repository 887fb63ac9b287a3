// Production hardening of the relay (issue 7): access modes (HTTP callout, capability tokens),
// reloads without dropping clients, limits, SIGTERM-style drain, handshake timeouts against
// slowloris / half-open connections, TLS certificate reload, header auth with a raw OpenSSL
// client, log format and secrets. In-process daemon on 127.0.0.1:0.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sodium.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/log.hpp"
#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"
#include "integration/tls_fixture.hpp"
#include "iroh/server/daemon.hpp"
#include "relay/capability_token.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::EndpointId;
using relay::SecretKey;
using server::Daemon;

Bytes deny(const std::string& reason) {
  return relay::encode(relay::ServerDeniesAuth{reason});
}

// Connects and runs the challenge handshake; returns the server's answer (Confirm or Denies).
std::optional<Bytes> try_connect(RelayTestClient& c, const tcp::endpoint& ep, const SecretKey& key,
                                 const UpgradeOptions& opts = {}) {
  if (c.connect(ep, opts)) return std::nullopt;
  return c.handshake(key);
}

std::unique_ptr<RelayTestClient> connected(const tcp::endpoint& ep, const SecretKey& key,
                                           const UpgradeOptions& opts = {}) {
  auto c = std::make_unique<RelayTestClient>();
  auto r = try_connect(*c, ep, key, opts);
  EXPECT_EQ(r, kConfirm);
  EXPECT_TRUE(c->ping_barrier());
  return c;
}

UpgradeOptions bearer(const std::string& token) {
  return UpgradeOptions{}.with_header("Authorization", "Bearer " + token);
}

// ---- capability tokens ----------------------------------------------------------------------

TEST(CapabilityToken, RoundTripAndRejections) {
  ASSERT_GE(sodium_init(), 0);
  auto issuer = SecretKey::generate(), stranger = SecretKey::generate();
  auto ep = SecretKey::generate().public_key(), other = SecretKey::generate().public_key();
  std::vector<EndpointId> issuers{SecretKey::generate().public_key(), issuer.public_key()};
  auto token = server::issue_capability_token(issuer, ep, 2000, "alice's laptop");
  auto ok = server::verify_capability_token(token, issuers, ep, 1999);
  ASSERT_TRUE(std::holds_alternative<server::CapabilityToken>(ok));
  EXPECT_EQ(std::get<server::CapabilityToken>(ok).note, "alice's laptop");
  EXPECT_EQ(std::get<server::CapabilityToken>(ok).expires_unix, 2000u);
  using E = server::CapabilityError;
  auto err = [&](std::string_view t, const EndpointId& who, std::uint64_t now) {
    auto r = server::verify_capability_token(t, issuers, who, now);
    return std::holds_alternative<E>(r) ? std::get<E>(r) : E(-1);
  };
  EXPECT_EQ(err(token, ep, 2000), E::Expired);
  EXPECT_EQ(err(token, other, 10), E::WrongEndpoint);
  EXPECT_EQ(err(server::issue_capability_token(stranger, ep, 2000), ep, 10), E::UnknownIssuer);
  std::string flipped = token;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(err(flipped, ep, 10), E::UnknownIssuer);
  EXPECT_EQ(err("", ep, 10), E::Malformed);
  EXPECT_EQ(err("not base64!", ep, 10), E::Malformed);
  EXPECT_EQ(err(token.substr(0, 40), ep, 10), E::Malformed);
  EXPECT_EQ(err(std::string(4000, 'A'), ep, 10), E::Malformed);
  EXPECT_THROW(server::issue_capability_token(issuer, ep, 1, std::string(65, 'x')),
               std::invalid_argument);
}

TEST(CapabilityToken, Durations) {
  EXPECT_EQ(server::parse_duration_seconds("24h"), 86400u);
  EXPECT_EQ(server::parse_duration_seconds("30m"), 1800u);
  EXPECT_EQ(server::parse_duration_seconds("90s"), 90u);
  EXPECT_EQ(server::parse_duration_seconds("7d"), 7u * 86400);
  EXPECT_EQ(server::parse_duration_seconds("3600"), 3600u);
  for (const char* bad : {"", "h", "0h", "-1h", "1.5h", "1w", "99999999999999d"})
    EXPECT_FALSE(server::parse_duration_seconds(bad)) << bad;
}

TEST(HardeningAccess, CapabilityTokensAdmitAndDenyWithReasons) {
  auto issuer = SecretKey::generate();
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::Capability;
  cfg.access.capability_issuers = {issuer.public_key()};
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  auto alice = SecretKey::generate(), bob = SecretKey::generate();
  auto now = std::uint64_t(std::time(nullptr));
  auto alice_token = server::issue_capability_token(issuer, alice.public_key(), now + 3600);
  auto a = connected(ep, alice, bearer(alice_token));
  // ?token= works like for shared tokens.
  connected(ep, alice, UpgradeOptions{}.with_target("/relay?token=" + alice_token));
  struct Case {
    UpgradeOptions opts;
    std::string reason;
  };
  std::vector<Case> cases{
      {UpgradeOptions{}, "capability token missing"},
      {bearer(alice_token), "capability token issued for another endpoint"},
      {bearer(server::issue_capability_token(issuer, bob.public_key(), now - 1)),
       "capability token expired"},
      {bearer(server::issue_capability_token(SecretKey::generate(), bob.public_key(), now + 60)),
       "capability token not signed by a trusted issuer"},
      {bearer("garbage"), "malformed capability token"},
  };
  for (const auto& c : cases) {
    RelayTestClient client;
    EXPECT_EQ(try_connect(client, ep, bob, c.opts), deny(c.reason)) << c.reason;
  }
  EXPECT_EQ(d->metrics().denied.load(), cases.size());
  EXPECT_TRUE(a->ping_barrier());
}

// ---- HTTP callout ---------------------------------------------------------------------------

// A tiny HTTP server on its own thread: answers POSTs with `decide(node id)`; "hang" never
// answers. Records the requests it saw.
class CalloutServer {
 public:
  enum class Mode { Answer, Hang, Error500 };
  CalloutServer() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~CalloutServer() {
    ioc_.stop();
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/auth";
  }
  void allow(const EndpointId& id) {
    std::lock_guard lock(mutex_);
    allowed_.insert(id.to_hex());
  }
  void set_mode(Mode m) { mode_ = m; }
  int requests() const { return requests_.load(); }
  std::string last_authorization() {
    std::lock_guard lock(mutex_);
    return last_auth_;
  }

 private:
  struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };
  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket s) {
      if (ec) return;
      auto session = std::make_shared<Session>(std::move(s));
      http::async_read(session->socket, session->buffer, session->req,
                       [this, session](error_code ec2, std::size_t) {
                         if (!ec2) respond(session);
                       });
      accept();
    });
  }
  void respond(const std::shared_ptr<Session>& s) {
    ++requests_;
    std::string id(s->req["X-Iroh-NodeId"]);
    {
      std::lock_guard lock(mutex_);
      last_auth_ = std::string(s->req[http::field::authorization]);
    }
    if (mode_ == Mode::Hang) {
      hung_.push_back(s);
      return;
    }
    bool ok;
    {
      std::lock_guard lock(mutex_);
      ok = allowed_.contains(id);
    }
    s->res = http::response<http::string_body>(
        mode_ == Mode::Error500 ? http::status::internal_server_error : http::status::ok, 11);
    s->res.body() = ok ? "true" : "false";
    s->res.prepare_payload();
    http::async_write(s->socket, s->res, [s](error_code, std::size_t) {});
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mutex_;
  std::set<std::string> allowed_;
  std::string last_auth_;
  std::atomic<int> requests_{0};
  std::atomic<Mode> mode_{Mode::Answer};
  std::vector<std::shared_ptr<Session>> hung_;
};

config::Config callout_config(const std::string& url) {
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::Http;
  cfg.access.http_url = url;
  cfg.access.http_bearer_token = "callout-bearer-secret";
  cfg.access.http_timeout = 500ms;
  return cfg;
}

TEST(HardeningAccess, HttpCalloutDecidesAndCaches) {
  CalloutServer server;
  auto alice = SecretKey::generate(), bob = SecretKey::generate();
  server.allow(alice.public_key());
  auto d = start_daemon(callout_config(server.url()));
  auto ep = *d->http_endpoint();
  auto a = connected(ep, alice);
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(server.last_authorization(), "Bearer callout-bearer-secret");
  RelayTestClient b;
  EXPECT_EQ(try_connect(b, ep, bob), deny("not authorized"));
  EXPECT_EQ(server.requests(), 2);
  // Both decisions are cached: no further callouts.
  connected(ep, alice);
  RelayTestClient b2;
  EXPECT_EQ(try_connect(b2, ep, bob), deny("not authorized"));
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(d->metrics().denied.load(), 2u);
  EXPECT_TRUE(a->ping_barrier());
}

TEST(HardeningAccess, HttpCalloutFailureIsFailClosedOrOpen) {
  CalloutServer server;
  server.set_mode(CalloutServer::Mode::Hang);
  auto cfg = callout_config(server.url());
  cfg.access.http_cache_ttl = 0s;
  auto d = start_daemon(cfg);
  RelayTestClient c;
  // The timeout (500 ms) fires long before the handshake timeout (30 s).
  EXPECT_EQ(try_connect(c, *d->http_endpoint(), SecretKey::generate()),
            deny("access check unavailable"));
  server.set_mode(CalloutServer::Mode::Error500);
  RelayTestClient c2;
  EXPECT_EQ(try_connect(c2, *d->http_endpoint(), SecretKey::generate()),
            deny("access check unavailable"));

  // fail_open via reload: unreachable callout (nothing listens on port 1) admits.
  auto open = callout_config("http://127.0.0.1:1/auth");
  open.access.http_fail_open = true;
  ASSERT_TRUE(d->reload(open));
  connected(*d->http_endpoint(), SecretKey::generate());
}

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

// ---- TLS: certificate reload, raw OpenSSL header auth ----------------------------------------

class HardeningTls : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = unique_temp_dir("hardening_test");
    first_ = make_cert("first");
    daemon_ = start_daemon(tls_test_config(dir_, first_));
    client_ctx_.set_verify_mode(ssl::verify_none);
  }
  void TearDown() override {
    daemon_->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::unique_ptr<TlsRelayTestClient> tls_client(const SecretKey& key) {
    auto c = std::make_unique<TlsRelayTestClient>(client_ctx_);
    EXPECT_FALSE(c->connect(*daemon_->https_endpoint(), UpgradeOptions{}.with_auth_header(key)));
    EXPECT_EQ(c->read(), kConfirm);
    return c;
  }
  std::filesystem::path dir_;
  CertFiles first_;
  std::unique_ptr<Daemon> daemon_;
  ssl::context client_ctx_{ssl::context::tls_client};
};

TEST_F(HardeningTls, CertificateReloadKeepsConnectionsNewOnesSeeNewCert) {
  auto old_client = tls_client(SecretKey::generate());
  EXPECT_EQ(fingerprint_of(old_client->stream().next_layer().native_handle()),
            fingerprint_of_pem(first_.cert_pem));

  // A mismatched pair (new cert, old key) is refused; the running certificate stays.
  auto second = make_cert("second");
  EXPECT_THROW(daemon_->reload_certificate(second.cert_pem, first_.key_pem), std::runtime_error);
  EXPECT_THROW(daemon_->reload_certificate("garbage", "garbage"), std::runtime_error);

  // New files on disk: picked up by the mtime/inode poll (every 2 s; bounded wait).
  write_file(dir_ / "key.pem", second.key_pem);
  write_file(dir_ / "cert.pem", second.cert_pem);
  bool switched = eventually(
      [&] {
        TlsRelayTestClient probe(client_ctx_);
        if (probe.connect(*daemon_->https_endpoint())) return false;
        return fingerprint_of(probe.stream().next_layer().native_handle()) ==
               fingerprint_of_pem(second.cert_pem);
      },
      15s);
  EXPECT_TRUE(switched);
  auto new_client = tls_client(SecretKey::generate());
  EXPECT_EQ(fingerprint_of(new_client->stream().next_layer().native_handle()),
            fingerprint_of_pem(second.cert_pem));
  // The connection made before the reload is still relaying.
  EXPECT_TRUE(old_client->ping_barrier());

  // And back via the API (what ACME calls).
  daemon_->reload_certificate(first_.cert_pem, first_.key_pem);
  auto third = tls_client(SecretKey::generate());
  EXPECT_EQ(fingerprint_of(third->stream().next_layer().native_handle()),
            fingerprint_of_pem(first_.cert_pem));
  EXPECT_TRUE(old_client->ping_barrier());
  EXPECT_TRUE(new_client->ping_barrier());
}

TEST_F(HardeningTls, OnlyModernSuites) {
  for (const char* suite :
       {"AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256"}) {
    ssl::context ctx{ssl::context::tls_client};
    ctx.set_verify_mode(ssl::verify_none);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx.native_handle(), suite);
    TlsRelayTestClient c(ctx);
    EXPECT_TRUE(c.connect(*daemon_->https_endpoint())) << suite;
  }
  ssl::context ctx{ssl::context::tls_client};
  ctx.set_verify_mode(ssl::verify_none);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_1_VERSION);
  SSL_CTX_set_security_level(ctx.native_handle(), 0);
  TlsRelayTestClient old(ctx);
  EXPECT_TRUE(old.connect(*daemon_->https_endpoint()));
}

// Header auth (relay.md §4.3) from a client written against OpenSSL's SSL_* API directly (no
// Asio, no Beast): plain socket, SSL_connect, SSL_export_keying_material, hand-written HTTP
// upgrade and WebSocket frame parsing.
TEST_F(HardeningTls, RawOpenSslClientHeaderAuth) {
  auto ep = *daemon_->https_endpoint();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(ep.port());
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  ASSERT_EQ(SSL_connect(ssl), 1);
  EXPECT_EQ(std::string(SSL_get_version(ssl)), "TLSv1.3");

  auto key = SecretKey::generate();
  auto pub = key.public_key();
  std::array<std::uint8_t, 32> ekm{};
  ASSERT_EQ(SSL_export_keying_material(ssl, ekm.data(), ekm.size(), relay::kExporterLabel.data(),
                                       relay::kExporterLabel.size(), pub.bytes.data(),
                                       pub.bytes.size(), 1),
            1);
  std::string auth = relay::encode_auth_header(relay::sign_key_material(key, ekm));
  std::string req =
      "GET /relay HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: iroh-relay-v2\r\n" +
      std::string(relay::kAuthHeader) + ": " + auth + "\r\n\r\n";
  ASSERT_EQ(SSL_write(ssl, req.data(), int(req.size())), int(req.size()));
  std::string in;
  char buf[4096];
  // Response head, then the first WebSocket frame: ServerConfirmsAuth (no challenge).
  for (int i = 0; i < 20; ++i) {
    auto head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos && in.size() >= head_end + 4 + 3) break;
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) break;
    in.append(buf, std::size_t(n));
  }
  ASSERT_EQ(in.rfind("HTTP/1.1 101", 0), 0u) << in;
  EXPECT_NE(in.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos);
  auto body = in.substr(in.find("\r\n\r\n") + 4);
  ASSERT_GE(body.size(), 3u);
  EXPECT_EQ(std::uint8_t(body[0]), 0x82);  // FIN + binary, unmasked
  EXPECT_EQ(std::uint8_t(body[1]), 1);
  EXPECT_EQ(std::uint8_t(body[2]), 2);  // ServerConfirmsAuth
  EXPECT_EQ(daemon_->client_count(), 1u);
  SSL_shutdown(ssl);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
}

// ---- logs -----------------------------------------------------------------------------------

class LogCapture {
 public:
  LogCapture() {
    log::set_test_sink([this](std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() {
    log::set_test_sink({});
    log::set_level(log::Level::Info);
    log::set_format(log::Format::Text);
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

TEST(HardeningLogs, JsonFormatIsOneObjectPerLine) {
  LogCapture capture;
  log::set_format(log::Format::Json);
  log::info("quote \" backslash \\ newline \n done");
  auto lines = capture.lines();
  ASSERT_EQ(lines.size(), 1u);
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "quote \" backslash \\ newline \n done");
  EXPECT_EQ(j["ts"].get<std::string>().size(), 24u);
  EXPECT_TRUE(log::set_format("text"));
  EXPECT_FALSE(log::set_format("xml"));
}

TEST(HardeningLogs, SecretsNeverLogged) {
  LogCapture capture;
  log::set_level(log::Level::Trace);
  const std::string shared = "shared-token-s3cr3t-value";
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::SharedToken;
  cfg.access.tokens = {shared};
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  connected(ep, SecretKey::generate(), bearer(shared));
  RelayTestClient wrong;
  EXPECT_EQ(try_connect(wrong, ep, SecretKey::generate(), bearer("wrong-token-guess-value")),
            deny("not authorized"));

  CalloutServer server;
  auto callout = callout_config(server.url());
  ASSERT_TRUE(d->reload(callout));
  RelayTestClient c2;
  EXPECT_EQ(try_connect(c2, ep, SecretKey::generate()), deny("not authorized"));

  auto issuer = SecretKey::generate();
  auto cap = test_config();
  cap.access.mode = config::AccessMode::Capability;
  cap.access.capability_issuers = {issuer.public_key()};
  ASSERT_TRUE(d->reload(cap));
  auto alice = SecretKey::generate();
  auto token = server::issue_capability_token(issuer, alice.public_key(), std::time(nullptr) + 60);
  connected(ep, alice, bearer(token));
  d->stop();

  auto lines = capture.lines();
  EXPECT_GT(lines.size(), 5u);  // connection lifecycle lines at debug
  char seed_hex[65];
  sodium_bin2hex(seed_hex, sizeof seed_hex, alice.seed.data(), alice.seed.size());
  for (const auto& line : lines) {
    for (const std::string& secret :
         {shared, std::string("wrong-token-guess-value"), std::string("callout-bearer-secret"),
          token, std::string(seed_hex)}) {
      EXPECT_EQ(line.find(secret), std::string::npos) << line;
    }
  }
}

}  // namespace
}  // namespace iroh::test
