// The relay data plane over TLS (issue 13): relay connections whose TLS runs on the socket itself
// (server/src/relay/tls_socket.hpp). Datagrams of every size cross intact; a client that sends
// bytes that are not TLS records, that closes inside a record or that never reads ends in a
// counted close, without a hang or a crash, and the daemon keeps serving others.
// Everything on 127.0.0.1; every loop is bounded in count and time.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <filesystem>
#include <thread>

#include "integration/daemon_fixture.hpp"
#include "integration/raw_tls_client.hpp"
#include "integration/relay_server_test_client.hpp"
#include "integration/tls_fixture.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::SecretKey;

class RelayTlsDataPlane : public ::testing::Test {
 protected:
  void start(config::Config cfg) {
    daemon_ = start_daemon(std::move(cfg));
    client_ctx_.set_verify_mode(ssl::verify_none);
  }
  void SetUp() override { dir_ = unique_temp_dir("relay_tls_test"); }
  void TearDown() override {
    if (daemon_) daemon_->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  config::Config config() { return tls_test_config(dir_, make_cert("localhost")); }
  tcp::endpoint ep() const { return *daemon_->https_endpoint(); }

  // A registered client over TLS (auth header, no challenge).
  std::unique_ptr<TlsRelayTestClient> client(const SecretKey& key) {
    auto c = std::make_unique<TlsRelayTestClient>(client_ctx_);
    if (c->connect(ep(), UpgradeOptions{}.with_auth_header(key))) return nullptr;
    if (c->read() != kConfirm) return nullptr;
    return c;
  }
  static int fd_of(TlsRelayTestClient& c) {
    return beast::get_lowest_layer(c.stream()).native_handle();
  }
  const server::RelayMetrics& metrics() { return daemon_->metrics(); }

  std::filesystem::path dir_;
  std::unique_ptr<server::Daemon> daemon_;
  ssl::context client_ctx_{ssl::context::tls_client};
};

// Many datagrams of sizes from 1 byte to 64 KiB, sent back to back: the reader takes several
// records per read, the writer several frames per run of records, and every datagram arrives
// intact and in order.
TEST_F(RelayTlsDataPlane, DatagramsOfEverySizeArriveIntactInOrder) {
  auto cfg = config();
  // b reads only after a sent everything (~3.6 MB): room for all of it, so nothing is dropped.
  cfg.limits.client_queue_bytes = 16 << 20;
  start(std::move(cfg));
  auto ka = SecretKey::generate(), kb = SecretKey::generate();
  auto a = client(ka), b = client(kb);
  ASSERT_TRUE(a && b);
  const std::size_t sizes[] = {1, 100, 1200, 1400, 16'000, 16'384, 16'385, 40'000, 65'000};
  constexpr int kRounds = 20;
  std::vector<Bytes> sent;
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t size : sizes) {
      Bytes contents(size);
      for (std::size_t i = 0; i < size; ++i) contents[i] = std::uint8_t(i * 31 + round + size);
      ASSERT_TRUE(a->send_datagram(kb.public_key(), contents));
      sent.push_back(std::move(contents));
    }
  }
  for (std::size_t i = 0; i < sent.size(); ++i) {
    auto got = b->read();
    ASSERT_TRUE(got) << "datagram " << i << ": " << b->last_error().message();
    ASSERT_EQ(*got, *relay::encode_server_datagram(ka.public_key(), relay::Ecn::NotEct, 0, sent[i]))
        << "datagram " << i;
  }
  EXPECT_TRUE(a->ping_barrier());
  EXPECT_EQ(metrics().tls_errors.load(), 0u);
  EXPECT_EQ(metrics().dropped_queue_full.load(), 0u);
}

// After the relay handshake the client writes a TLS record whose ciphertext is garbage: the
// record fails to decrypt, the connection is closed and counted as a TLS error; others go on.
TEST_F(RelayTlsDataPlane, GarbageRecordInRelayPhaseIsCountedClose) {
  start(config());
  auto ka = SecretKey::generate(), kb = SecretKey::generate();
  auto a = client(ka), b = client(kb);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->ping_barrier());
  // Application-data record header, 64 bytes of "ciphertext".
  std::vector<std::uint8_t> garbage{0x17, 0x03, 0x03, 0x00, 0x40};
  garbage.resize(garbage.size() + 64, 0xa5);
  ASSERT_EQ(::send(fd_of(*a), garbage.data(), garbage.size(), MSG_NOSIGNAL),
            ssize_t(garbage.size()));
  EXPECT_TRUE(eventually([&] { return metrics().tls_errors.load() >= 1; }));
  EXPECT_TRUE(eventually([&] { return daemon_->client_count() == 1; }));
  EXPECT_TRUE(a->closed_by_server());
  EXPECT_GE(metrics().http_connections_errored.load(), 1u);
  EXPECT_TRUE(b->ping_barrier());
}

// Bytes that are not TLS at all right after the TLS handshake (before any HTTP): counted, closed.
TEST_F(RelayTlsDataPlane, GarbageAfterTlsHandshakeIsCountedClose) {
  start(config());
  {
    RawTlsClient raw(ep().port());
    EXPECT_TRUE(raw.connected());
    const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";  // plaintext on a TLS port
    EXPECT_EQ(::send(raw.fd(), junk.data(), junk.size(), MSG_NOSIGNAL), ssize_t(junk.size()));
    // The server answers with an alert or just closes; either way the read ends, never hangs
    // (the client's receive timeout bounds it).
    char buf[256];
    EXPECT_LE(SSL_read(raw.ssl(), buf, sizeof buf), 0);
    EXPECT_TRUE(eventually([&] { return metrics().tls_errors.load() >= 1; }));
  }
  auto c = client(SecretKey::generate());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->ping_barrier());
}

// The client sends the first half of a record and closes its side: the relay sees the end of
// the stream inside a record, counts it and unregisters the client.
TEST_F(RelayTlsDataPlane, CloseInsideRecordIsCountedClose) {
  start(config());
  auto ka = SecretKey::generate(), kb = SecretKey::generate();
  auto a = client(ka), b = client(kb);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->ping_barrier());
  std::vector<std::uint8_t> half{0x17, 0x03, 0x03, 0x01, 0x00};  // announces 256 bytes
  half.resize(half.size() + 100, 0x11);
  const int fd = fd_of(*a);
  ASSERT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL), ssize_t(half.size()));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  EXPECT_TRUE(eventually([&] { return metrics().tls_unexpected_eof.load() >= 1; }));
  EXPECT_TRUE(eventually([&] { return daemon_->client_count() == 1; }));
  EXPECT_EQ(metrics().tls_errors.load(), 0u);
  EXPECT_TRUE(b->ping_barrier());
}

// A receiver that never reads: the writer's TLS records fill the socket, SSL_write wants to
// write, the queue stays within its byte cap, datagrams to it are dropped and counted, the
// write timeout closes it, and the sender is neither closed nor stuck.
TEST_F(RelayTlsDataPlane, NeverReadingReceiverIsClosedByWriteTimeout) {
  auto cfg = config();
  cfg.limits.client_queue_capacity = 1 << 20;  // only the byte cap applies
  cfg.limits.client_queue_bytes = 128 * 1024;
  cfg.limits.write_timeout = std::chrono::milliseconds(500);
  start(std::move(cfg));
  auto ks = SecretKey::generate(), ka = SecretKey::generate();
  auto sleeper = client(ks), sender = client(ka);
  ASSERT_TRUE(sleeper && sender);
  int sent = 0;
  std::thread flood([&] {
    Bytes big(60'000, 0xab);
    // 24 MB: far more than the socket buffers and the queue together hold. Paced, so that the
    // writer moves what it gets into the sleeper's socket until that is full: sent in one
    // burst, the reader outran the writer and most datagrams were dropped while the socket
    // still had room for the rest, and then nothing was left to time out (1 run in 20).
    for (; sent < 400 && sender->send_datagram(ks.public_key(), big); ++sent) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (sent == 200) {
        auto depth = daemon_->relay_queue_depth();
        EXPECT_LE(depth.max_bytes, 128u * 1024);
      }
    }
  });
  flood.join();
  EXPECT_EQ(sent, 400) << sender->last_error().message();
  EXPECT_TRUE(eventually([&] { return metrics().dropped_queue_full.load() > 0; }));
  EXPECT_TRUE(eventually([&] { return metrics().write_timeouts.load() >= 1; }))
      << "dropped " << metrics().dropped_queue_full.load() << ", queued "
      << daemon_->relay_queue_depth().total_bytes;
  EXPECT_TRUE(eventually([&] { return daemon_->client_count() == 1; }));
  EXPECT_LE(daemon_->relay_queue_depth().total_bytes, 128u * 1024);
  EXPECT_TRUE(sender->ping_barrier());
}

}  // namespace
}  // namespace iroh::test
