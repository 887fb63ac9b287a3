// RelayClient against the in-process daemon on loopback: datagrams both ways, ping, EndpointGone,
// access denial, shared token, and https with a self-signed certificate.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "iroh/config.hpp"
#include "iroh/relay_client.hpp"
#include "iroh/server/daemon.hpp"

// GCC 12 at -O2 pairs Asio's awaitable-frame operator delete with the global operator new in
// large coroutine lambdas and warns falsely (the frame allocator is Asio's own on both sides).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using iroh::client::Errc;
using iroh::client::Received;
using iroh::client::ReceivedDatagram;
using iroh::client::RelayClient;
using iroh::client::RelayClientError;
using iroh::client::RelayClientOptions;
namespace relay = iroh::relay;

// Runs `body` on `ctx` for at most `limit`; rethrows what it threw; fails if it did not finish.
void run(asio::io_context& ctx, std::function<asio::awaitable<void>()> body,
         std::chrono::seconds limit = 20s) {
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

// receive() bounded in time: nullopt if nothing arrived.
asio::awaitable<std::optional<Received>> receive_for(RelayClient& client,
                                                     std::chrono::milliseconds limit) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, limit);
  // parallel_group rather than awaitable operators: GCC 12 miscompiles `receive() || timer`
  // (the variant result came back as the timer branch while an event had arrived).
  auto [order, receive_error, event, timer_error] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, client.receive(), asio::deferred),
          asio::co_spawn(executor, timer.async_wait(asio::use_awaitable), asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::deferred);
  if (!receive_error) co_return std::move(event);
  if (order[0] == 1 && !timer_error) co_return std::nullopt;
  std::rethrow_exception(receive_error);
}

// The next datagram, skipping control events (Status, Pong, ...).
asio::awaitable<ReceivedDatagram> next_datagram(RelayClient& client) {
  for (int i = 0; i < 100; ++i) {
    auto event = co_await receive_for(client, 5s);
    if (!event) throw std::runtime_error("no datagram within 5 s");
    if (auto* d = std::get_if<ReceivedDatagram>(&*event)) co_return std::move(*d);
  }
  throw std::runtime_error("no datagram among 100 events");
}

relay::Bytes pattern(std::size_t n, std::uint8_t seed) {
  relay::Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(seed + i * 7);
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("iroh-client-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

iroh::config::Config base_config(const TempDir& dir) {
  iroh::config::Config config;
  config.source = "<client_test>";
  config.http_bind_addr = {"127.0.0.1", 0};
  config.enable_metrics = false;
  config.metrics_bind_addr = {"127.0.0.1", 0};
  config.data_dir = dir.path() / "data";
  config.log_level = "warn";
  return config;
}

std::string http_url(const iroh::server::Daemon& daemon) {
  return "http://127.0.0.1:" + std::to_string(daemon.http_endpoint()->port());
}

class RelayClientPlain : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.emplace(base_config(dir_), 1);
    daemon_->start();
    ASSERT_TRUE(daemon_->http_endpoint());
    url_ = http_url(*daemon_);
  }
  void TearDown() override {
    if (daemon_) daemon_->stop();
  }

  TempDir dir_;
  std::optional<iroh::server::Daemon> daemon_;
  std::string url_;
  asio::io_context ctx_;
};

TEST_F(RelayClientPlain, ExchangesDatagramsBothWays) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), url_, relay::SecretKey::generate());
    RelayClient b(ctx_.get_executor(), url_ + "/some/path?ignored=1", relay::SecretKey::generate());
    co_await a.connect();
    co_await b.connect();
    EXPECT_TRUE(a.is_connected());
    EXPECT_EQ(a.protocol_version(), relay::ProtocolVersion::V2);
    EXPECT_FALSE(a.authenticated_by_header());  // plain http: challenge path

    auto a_to_b = pattern(1200, 1);
    EXPECT_TRUE(a.send(b.endpoint_id(), a_to_b, relay::Ecn::Ect0));
    auto got = co_await next_datagram(b);
    EXPECT_EQ(got.src, a.endpoint_id());
    EXPECT_EQ(got.ecn, relay::Ecn::Ect0);
    EXPECT_EQ(got.segment_size, 0);
    EXPECT_EQ(got.contents, a_to_b);

    auto b_to_a = pattern(1, 9);
    EXPECT_TRUE(b.send(a.endpoint_id(), b_to_a, relay::Ecn::Ce));
    got = co_await next_datagram(a);
    EXPECT_EQ(got.src, b.endpoint_id());
    EXPECT_EQ(got.ecn, relay::Ecn::Ce);
    EXPECT_EQ(got.contents, b_to_a);

    auto batch = pattern(3 * 1000 + 17, 3);
    EXPECT_TRUE(b.send_batch(a.endpoint_id(), 1000, batch, relay::Ecn::Ect1));
    got = co_await next_datagram(a);
    EXPECT_EQ(got.src, b.endpoint_id());
    EXPECT_EQ(got.ecn, relay::Ecn::Ect1);
    EXPECT_EQ(got.segment_size, 1000);
    EXPECT_EQ(got.contents, batch);

    // Order is kept on one connection.
    for (std::uint8_t i = 0; i < 50; ++i) {
      EXPECT_TRUE(a.send(b.endpoint_id(), pattern(100 + i, i)));
    }
    for (std::uint8_t i = 0; i < 50; ++i) {
      got = co_await next_datagram(b);
      EXPECT_EQ(got.contents, pattern(100 + i, i));
    }

    auto largest = pattern(relay::kMaxDatagramContents, 5);
    EXPECT_TRUE(a.send(b.endpoint_id(), largest));
    got = co_await next_datagram(b);
    EXPECT_EQ(got.contents, largest);

    EXPECT_EQ(a.stats().send_dropped_invalid, 0u);
    EXPECT_FALSE(a.send(b.endpoint_id(), {}));  // empty datagrams are not sendable (§5.4)
    EXPECT_FALSE(a.send(b.endpoint_id(), pattern(relay::kMaxDatagramContents + 1, 0)));
    EXPECT_EQ(a.stats().send_dropped_invalid, 2u);
    a.close();
    b.close();
  });
}

TEST_F(RelayClientPlain, PingMeasuresRoundTrip) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), url_, relay::SecretKey::generate());
    co_await a.connect();
    for (int i = 0; i < 3; ++i) {
      auto rtt = co_await a.ping();
      EXPECT_GT(rtt.count(), 0);
      EXPECT_LT(rtt, std::chrono::microseconds(5s));
    }
    a.close();
  });
}

TEST_F(RelayClientPlain, EndpointGoneAfterPeerCloses) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), url_, relay::SecretKey::generate());
    RelayClient b(ctx_.get_executor(), url_, relay::SecretKey::generate());
    co_await a.connect();
    co_await b.connect();
    auto a_id = a.endpoint_id();
    // EndpointGone(A) goes only to endpoints A has sent to (§6.4).
    a.send(b.endpoint_id(), pattern(10, 1));
    (void)co_await next_datagram(b);
    a.close();
    bool gone = false;
    std::string seen;
    for (int i = 0; i < 20 && !gone; ++i) {
      auto event = co_await receive_for(b, 5s);
      if (!event) {
        seen += " timeout";
        break;
      }
      seen += " " + std::to_string(event->index());
      if (auto* g = std::get_if<relay::EndpointGone>(&*event)) {
        EXPECT_EQ(g->endpoint, a_id);
        gone = true;
      }
    }
    EXPECT_TRUE(gone) << "no EndpointGone after the peer closed; events:" << seen;
    // A closed client refuses further work with Closed.
    EXPECT_FALSE(a.send(b.endpoint_id(), pattern(10, 1)));
    try {
      (void)co_await a.receive();
      ADD_FAILURE() << "receive() on a closed client returned";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::Closed);
    }
    b.close();
  });
}

TEST_F(RelayClientPlain, ReceiveHonoursCancellation) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), url_, relay::SecretKey::generate());
    co_await a.connect();
    auto nothing = co_await receive_for(a, 100ms);
    EXPECT_FALSE(nothing && std::holds_alternative<ReceivedDatagram>(*nothing));
    // Still usable afterwards.
    a.send(a.endpoint_id(), pattern(33, 4));
    auto got = co_await next_datagram(a);
    EXPECT_EQ(got.src, a.endpoint_id());
    EXPECT_EQ(got.contents, pattern(33, 4));
    a.close();
  });
}

TEST_F(RelayClientPlain, NotConnectedAndBadUrl) {
  EXPECT_THROW(RelayClient(ctx_.get_executor(), "not a url", relay::SecretKey::generate()),
               RelayClientError);
  try {
    RelayClient(ctx_.get_executor(), "http://", relay::SecretKey::generate());
    ADD_FAILURE() << "no error for a URL without host";
  } catch (const RelayClientError& e) {
    EXPECT_EQ(e.kind(), Errc::InvalidUrl);
  }
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), url_, relay::SecretKey::generate());
    EXPECT_FALSE(a.send(a.endpoint_id(), pattern(10, 0)));
    EXPECT_EQ(a.stats().send_dropped_closed, 1u);
    try {
      (void)co_await a.ping();
      ADD_FAILURE() << "ping() before connect() returned";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::NotConnected);
    }
  });
}

TEST_F(RelayClientPlain, ConnectionRefusedIsIoError) {
  // Grab a free port, then close it so nothing listens there.
  std::uint16_t port = 0;
  {
    asio::ip::tcp::acceptor acceptor(ctx_, {asio::ip::make_address("127.0.0.1"), 0});
    port = acceptor.local_endpoint().port();
  }
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), "http://127.0.0.1:" + std::to_string(port),
                  relay::SecretKey::generate());
    try {
      co_await a.connect();
      ADD_FAILURE() << "connect() to a closed port succeeded";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::Io) << e.what();
    }
  });
}

TEST_F(RelayClientPlain, ConnectTimesOutAgainstSilentServer) {
  // Accepts TCP but never answers the upgrade.
  asio::ip::tcp::acceptor acceptor(ctx_, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket accepted(ctx_);
  acceptor.async_accept(accepted, [](boost::system::error_code) {});
  RelayClientOptions options;
  options.connect_timeout = 300ms;
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(),
                  "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()),
                  relay::SecretKey::generate(), options);
    auto started = std::chrono::steady_clock::now();
    try {
      co_await a.connect();
      ADD_FAILURE() << "connect() to a silent server succeeded";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::Timeout) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  });
}

class RelayClientAccess : public ::testing::Test {
 protected:
  TempDir dir_;
  asio::io_context ctx_;
};

TEST_F(RelayClientAccess, DeniedWithReason) {
  auto config = base_config(dir_);
  config.access.mode = iroh::config::AccessMode::Allowlist;
  auto allowed = relay::SecretKey::generate();
  config.access.endpoints = {allowed.public_key()};
  iroh::server::Daemon daemon(config, 1);
  daemon.start();
  auto url = http_url(daemon);
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient denied(ctx_.get_executor(), url, relay::SecretKey::generate());
    try {
      co_await denied.connect();
      ADD_FAILURE() << "connect() of a client outside the allowlist succeeded";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::AuthDenied) << e.what();
      EXPECT_FALSE(e.reason().empty());
      EXPECT_NE(std::string(e.what()).find(e.reason()), std::string::npos);
    }
    EXPECT_FALSE(denied.is_connected());
    RelayClient ok(ctx_.get_executor(), url, allowed);
    co_await ok.connect();
    EXPECT_TRUE(ok.is_connected());
    ok.close();
  });
  daemon.stop();
}

TEST_F(RelayClientAccess, SharedTokenSentAsBearer) {
  auto config = base_config(dir_);
  config.access.mode = iroh::config::AccessMode::SharedToken;
  config.access.tokens = {"sesame"};
  iroh::server::Daemon daemon(config, 1);
  daemon.start();
  auto url = http_url(daemon);
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClientOptions with_token;
    with_token.auth_token = "sesame";
    RelayClient ok(ctx_.get_executor(), url, relay::SecretKey::generate(), with_token);
    co_await ok.connect();
    EXPECT_TRUE(ok.is_connected());
    ok.close();
    RelayClient no_token(ctx_.get_executor(), url, relay::SecretKey::generate());
    try {
      co_await no_token.connect();
      ADD_FAILURE() << "connect() without the shared token succeeded";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::AuthDenied) << e.what();
    }
  });
  daemon.stop();
}

// Self-signed certificate for localhost only (not 127.0.0.1), made with the openssl tool.
bool make_self_signed(const std::filesystem::path& dir) {
  std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -days 2 -subj /CN=localhost"
      " -addext subjectAltName=DNS:localhost"
      " -keyout '" +
      (dir / "key.pem").string() + "' -out '" + (dir / "cert.pem").string() + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

class RelayClientTls : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(make_self_signed(dir_.path())) << "openssl req failed";
    auto config = base_config(dir_);
    iroh::config::TlsConfig tls;
    tls.cert_mode = iroh::config::CertMode::Manual;
    tls.https_bind_addr = {"127.0.0.1", 0};
    tls.quic_bind_addr = {"127.0.0.1", 0};
    tls.cert_dir = dir_.path();
    tls.manual_cert_path = dir_.path() / "cert.pem";
    tls.manual_key_path = dir_.path() / "key.pem";
    config.tls = tls;
    daemon_.emplace(config, 1);
    daemon_->start();
    ASSERT_TRUE(daemon_->https_endpoint());
    port_ = std::to_string(daemon_->https_endpoint()->port());
  }
  void TearDown() override {
    if (daemon_) daemon_->stop();
  }
  RelayClientOptions with_ca() const {
    RelayClientOptions options;
    options.ca_file = dir_.path() / "cert.pem";
    return options;
  }

  TempDir dir_;
  std::optional<iroh::server::Daemon> daemon_;
  std::string port_;
  asio::io_context ctx_;
};

TEST_F(RelayClientTls, HeaderAuthAndDatagrams) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), "https://localhost:" + port_, relay::SecretKey::generate(),
                  with_ca());
    RelayClient b(ctx_.get_executor(), "https://localhost:" + port_ + "/ignored",
                  relay::SecretKey::generate(), with_ca());
    co_await a.connect();
    co_await b.connect();
    EXPECT_TRUE(a.authenticated_by_header()) << "server sent a challenge despite the header";
    EXPECT_TRUE(b.authenticated_by_header());
    auto bytes = pattern(1200, 2);
    a.send(b.endpoint_id(), bytes, relay::Ecn::Ect0);
    auto got = co_await next_datagram(b);
    EXPECT_EQ(got.src, a.endpoint_id());
    EXPECT_EQ(got.ecn, relay::Ecn::Ect0);
    EXPECT_EQ(got.contents, bytes);
    auto rtt = co_await a.ping();
    EXPECT_GT(rtt.count(), 0);
    a.close();
    b.close();
  });
}

TEST_F(RelayClientTls, ChallengePathWithoutHeader) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    auto options = with_ca();
    options.key_material_auth = false;
    RelayClient a(ctx_.get_executor(), "https://localhost:" + port_, relay::SecretKey::generate(),
                  options);
    co_await a.connect();
    EXPECT_TRUE(a.is_connected());
    EXPECT_FALSE(a.authenticated_by_header());
    a.close();
  });
}

TEST_F(RelayClientTls, VerificationFailsWithoutCa) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClient a(ctx_.get_executor(), "https://localhost:" + port_, relay::SecretKey::generate());
    try {
      co_await a.connect();
      ADD_FAILURE() << "self-signed certificate accepted without a CA file";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::Tls) << e.what();
    }
  });
}

TEST_F(RelayClientTls, VerificationChecksHostName) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    // Trusted CA, but the certificate names localhost, not 127.0.0.1.
    RelayClient a(ctx_.get_executor(), "https://127.0.0.1:" + port_, relay::SecretKey::generate(),
                  with_ca());
    try {
      co_await a.connect();
      ADD_FAILURE() << "certificate accepted for a host it does not name";
    } catch (const RelayClientError& e) {
      EXPECT_EQ(e.kind(), Errc::Tls) << e.what();
    }
  });
}

TEST_F(RelayClientTls, VerificationOffAcceptsAnything) {
  run(ctx_, [&]() -> asio::awaitable<void> {
    RelayClientOptions options;
    options.verify_tls = false;
    RelayClient a(ctx_.get_executor(), "https://localhost:" + port_, relay::SecretKey::generate(),
                  options);
    co_await a.connect();
    EXPECT_TRUE(a.is_connected());
    a.close();
  });
}

}  // namespace
