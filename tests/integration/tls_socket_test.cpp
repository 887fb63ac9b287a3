// The TLS socket's write buffer (server/src/relay/tls_socket.hpp, issue 13 "writers gather every
// pending frame into one writev/sendmsg"): a 64 KiB run of records leaves in at most two socket
// writes, a peer that stops reading leaves at most kWriteBufferBytes buffered (never unbounded
// memory) and gets every byte intact once it reads again, and a peer that closes in the middle
// of a batch ends the write with an error rather than a hang or a SIGPIPE.
// A TlsSocket on one end of a loopback TCP connection, a blocking OpenSSL client on the other.
// Every loop is bounded in count and time.
#include "relay/tls_socket.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "integration/tls_fixture.hpp"

namespace iroh::test {
namespace {

namespace asio = boost::asio;
using server::TlsSocket;
using Status = TlsSocket::Status;

// Waits (at most 2 s) for `fd` to be ready for what `status` asks; false on timeout.
bool wait_for(int fd, Status status) {
  pollfd p{fd, short(status == Status::WantRead ? POLLIN : POLLOUT), 0};
  return ::poll(&p, 1, 2000) == 1;
}

std::vector<std::uint8_t> pattern(std::size_t size) {
  std::vector<std::uint8_t> v(size);
  for (std::size_t i = 0; i < size; ++i) v[i] = std::uint8_t(i * 131 + (i >> 12));
  return v;
}

class TlsSocketWrites : public ::testing::Test {
 protected:
  void SetUp() override {
    const CertFiles cert = make_cert("localhost");
    server_ctx_.use_certificate_chain(asio::buffer(cert.cert_pem));
    server_ctx_.use_private_key(asio::buffer(cert.key_pem), asio::ssl::context::pem);
    asio::ip::tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
    client_sock_.connect(acceptor.local_endpoint());
    asio::ip::tcp::socket accepted(io_);
    acceptor.accept(accepted);
    server_ = std::make_unique<TlsSocket>(std::move(accepted), server_ctx_);
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    client_ = SSL_new(client_ctx_);
    SSL_set_fd(client_, int(client_sock_.native_handle()));
    // The handshake: the client blocks in a thread, the server steps until done.
    std::thread connect([this] { client_ok_ = SSL_connect(client_) == 1; });
    Status s = Status::WantRead;
    for (int i = 0; i < 100 && s != Status::Done; ++i) {
      s = server_->handshake().status;
      if (s == Status::WantRead || s == Status::WantWrite) {
        ASSERT_TRUE(wait_for(fd(), s));
      }
    }
    connect.join();
    ASSERT_EQ(s, Status::Done);
    ASSERT_TRUE(client_ok_);
  }
  void TearDown() override {
    SSL_free(client_);
    SSL_CTX_free(client_ctx_);
  }
  int fd() { return int(server_->next_layer().native_handle()); }

  // Writes all of `data` and flushes it, waiting for the socket as asked; fails the test after
  // 400 waits. Checks the buffer bound on every step.
  Status write_all(const std::vector<std::uint8_t>& data) {
    std::size_t done = 0;
    for (int waits = 0; waits < 400;) {
      if (done == data.size() && server_->write_pending() == 0) return Status::Done;
      const TlsSocket::Result r = done < data.size()
                                      ? server_->write(data.data() + done, data.size() - done)
                                      : server_->flush();
      EXPECT_LE(server_->write_pending(), TlsSocket::kWriteBufferBytes);
      if (r.status == Status::Done) {
        done += r.bytes;
        continue;
      }
      if (r.status != Status::WantRead && r.status != Status::WantWrite) return r.status;
      ++waits;
      if (!wait_for(fd(), r.status)) return r.status;
    }
    return Status::Failed;
  }

  // Reads exactly `size` bytes on the client (blocking).
  std::vector<std::uint8_t> client_read(std::size_t size) {
    std::vector<std::uint8_t> got(size);
    std::size_t have = 0;
    while (have < size) {
      std::size_t n = 0;
      if (SSL_read_ex(client_, got.data() + have, size - have, &n) != 1) break;
      have += n;
    }
    got.resize(have);
    return got;
  }

  asio::io_context io_;
  asio::ssl::context server_ctx_{asio::ssl::context::tls_server};
  asio::ip::tcp::socket client_sock_{io_};
  std::unique_ptr<TlsSocket> server_;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ = nullptr;
  bool client_ok_ = false;
};

// One 64 KiB batch (kMaxBatchBytes) is four full records; with the write buffer they leave in
// one sendmsg (two at most, if the socket takes only part), not one write() per record.
TEST_F(TlsSocketWrites, BatchOfRecordsLeavesInOneOrTwoSends) {
  const auto data = pattern(64 * 1024);
  std::vector<std::uint8_t> got;
  std::thread reader([&] { got = client_read(data.size()); });
  const std::uint64_t before = server_->socket_writes();
  EXPECT_EQ(write_all(data), Status::Done);
  const std::uint64_t sends = server_->socket_writes() - before;
  reader.join();
  EXPECT_GE(sends, 1u);
  EXPECT_LE(sends, 2u);
  EXPECT_EQ(got, data);
  server_->release_write_buffer();
}

// A peer that stops reading: the socket fills, write() takes only what fits and the buffer holds
// at most kWriteBufferBytes (checked on every step); once the peer reads, every byte arrives
// intact and in order.
TEST_F(TlsSocketWrites, PeerThatStopsReadingBoundsTheBufferAndGetsEverything) {
  const auto data = pattern(8 << 20);
  std::size_t done = 0;
  Status last = Status::Done;
  for (int i = 0; i < 10'000 && done < data.size(); ++i) {
    const TlsSocket::Result r = server_->write(data.data() + done, data.size() - done);
    ASSERT_LE(server_->write_pending(), TlsSocket::kWriteBufferBytes);
    last = r.status;
    if (r.status != Status::Done) break;
    done += r.bytes;
  }
  // 8 MiB is far more than the loopback socket buffers hold: the writer had to stop.
  ASSERT_EQ(last, Status::WantWrite);
  ASSERT_LT(done, data.size());
  std::vector<std::uint8_t> got;
  std::thread reader([&] { got = client_read(data.size()); });
  std::vector<std::uint8_t> rest(data.begin() + std::ptrdiff_t(done), data.end());
  EXPECT_EQ(write_all(rest), Status::Done);
  reader.join();
  EXPECT_EQ(got, data);
}

// The peer closes while a batch is buffered and unsent: the write ends with Failed (a socket
// error), without a hang or a SIGPIPE, and the socket is not used again.
TEST_F(TlsSocketWrites, PeerClosingMidBatchFailsTheWrite) {
  const auto data = pattern(8 << 20);
  std::size_t done = 0;
  Status last = Status::Done;
  for (int i = 0; i < 10'000 && done < data.size(); ++i) {
    const TlsSocket::Result r = server_->write(data.data() + done, data.size() - done);
    last = r.status;
    if (r.status != Status::Done) break;
    done += r.bytes;
  }
  // The socket is full and the write buffer holds records: the peer closes mid-batch.
  ASSERT_EQ(last, Status::WantWrite);
  ASSERT_GT(server_->write_pending(), 0u);
  // Close with unread data: the kernel answers with RST, so the next send fails.
  linger l{1, 0};
  ::setsockopt(int(client_sock_.native_handle()), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  client_sock_.close();
  Status end = Status::Done;
  for (int i = 0; i < 400; ++i) {
    const TlsSocket::Result r = done < data.size()
                                    ? server_->write(data.data() + done, data.size() - done)
                                    : server_->flush();
    if (r.status == Status::Failed || r.status == Status::Closed) {
      end = r.status;
      EXPECT_TRUE(r.error);
      break;
    }
    if (r.status == Status::Done) {
      done += r.bytes;
      if (done == data.size() && server_->write_pending() == 0) break;
      continue;
    }
    if (!wait_for(fd(), r.status)) {
      ADD_FAILURE() << "no readiness after the peer closed, step " << i;
      break;
    }
  }
  EXPECT_EQ(end, Status::Failed);
}

}  // namespace
}  // namespace iroh::test
