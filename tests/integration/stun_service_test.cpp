// StunService in process on loopback: real UDP sockets, port 0.
#include "stun/stun_service.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "iroh/stun.hpp"

namespace iroh::server {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

bool ipv6_loopback_available() {
  const int fd = ::socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A blocking UDP client with a receive timeout, so a lost reply fails the test instead of hanging.
class Client {
 public:
  explicit Client(int family) : family_(family) {
    fd_ = ::socket(family, SOCK_DGRAM, 0);
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (family == AF_INET) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
  }
  ~Client() { ::close(fd_); }

  stun::Endpoint local() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    return iroh::server::to_stun_endpoint(ss);
  }

  void send_to(const stun::Bytes& data, std::uint16_t port) {
    if (family_ == AF_INET) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port);
      ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      a.sin6_port = htons(port);
      ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
  }

  std::optional<stun::Bytes> receive() {
    stun::Bytes buf(2048);
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

 private:
  int family_;
  int fd_;
};

class StunServiceTest : public ::testing::Test {
 protected:
  void start(const std::string& host, unsigned sockets = 1, int threads = 1) {
    config::StunConfig cfg;
    cfg.enabled = true;
    cfg.bind_addr.host = host;
    cfg.bind_addr.port = 0;
    service_ = std::make_unique<StunService>(
        io_, cfg,
        StunOptions{.software = "iroh-relay test", .sockets = sockets, .metrics_registry = {}});
    service_->start();
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  void TearDown() override {
    if (service_) service_->stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  std::uint16_t port() const { return service_->local_endpoint().port(); }
  // Counters are bumped right after the reply leaves, possibly after the client already has it.
  void wait_for(const prometheus::Counter& counter, double value) {
    for (int i = 0; i < 200 && counter.Value() < value; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(counter.Value(), value);
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<StunService> service_;
  std::vector<std::thread> threads_;
};

stun::TransactionId txid(std::uint8_t seed) {
  stun::TransactionId id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(seed + i);
  return id;
}

std::optional<stun::Endpoint> mapped(const stun::Bytes& response, const stun::TransactionId& id) {
  const auto d = stun::decode(response);
  if (!d.message || d.message->type != stun::kBindingSuccess) return std::nullopt;
  if (!std::equal(id.begin(), id.end(), d.message->transaction.begin() + 4)) return std::nullopt;
  const stun::Attribute* a = d.message->find(stun::attr::kXorMappedAddress);
  if (!a) return std::nullopt;
  return stun::decode_xor_address(a->value, d.message->transaction);
}

TEST_F(StunServiceTest, AnswersIpv4) {
  start("127.0.0.1");
  EXPECT_TRUE(service_->local_endpoint().address().is_v4());
  EXPECT_NE(port(), 0);
  Client client(AF_INET);
  client.send_to(stun::make_binding_request(txid(1)), port());
  auto reply = client.receive();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(mapped(*reply, txid(1)), client.local());
  EXPECT_TRUE(stun::has_valid_fingerprint(*reply));
  wait_for(service_->metrics().ipv4_success, 1);
  EXPECT_EQ(service_->metrics().requests.Value(), 1u);
  EXPECT_EQ(service_->metrics().ipv6_success.Value(), 0u);
}

TEST_F(StunServiceTest, AnswersIpv6) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no ::1";
  start("::1");
  Client client(AF_INET6);
  client.send_to(stun::make_binding_request(txid(2)), port());
  auto reply = client.receive();
  ASSERT_TRUE(reply.has_value());
  const auto m = mapped(*reply, txid(2));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->family, stun::Endpoint::Family::V6);
  EXPECT_EQ(*m, client.local());
  wait_for(service_->metrics().ipv6_success, 1);
}

TEST_F(StunServiceTest, DualStackReportsIpv4PeersAsIpv4) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6";
  start("::");
  EXPECT_TRUE(service_->local_endpoint().address().is_v6());
  Client v4(AF_INET);
  v4.send_to(stun::make_binding_request(txid(3)), port());
  auto reply = v4.receive();
  ASSERT_TRUE(reply.has_value());
  const auto m = mapped(*reply, txid(3));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->family, stun::Endpoint::Family::V4);
  EXPECT_EQ(*m, v4.local());

  Client v6(AF_INET6);
  v6.send_to(stun::make_binding_request(txid(4)), port());
  reply = v6.receive();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(mapped(*reply, txid(4)), v6.local());
  wait_for(service_->metrics().ipv4_success, 1);
  wait_for(service_->metrics().ipv6_success, 1);
}

TEST_F(StunServiceTest, IgnoresAndCountsBadInput) {
  start("127.0.0.1");
  Client client(AF_INET);
  const std::string text = "definitely not STUN";
  client.send_to(stun::Bytes(text.begin(), text.end()), port());
  client.send_to(stun::Bytes(3000, 0), port());  // longer than any STUN datagram we accept
  client.send_to(stun::MessageBuilder(0x0011, txid(5)).take(), port());  // indication
  stun::Bytes bad_fingerprint = stun::make_binding_request(txid(6));
  bad_fingerprint.back() ^= 1;
  client.send_to(bad_fingerprint, port());
  client.send_to(stun::MessageBuilder(stun::kBindingRequest, txid(7)).add(0x7777, {}).take(),
                 port());
  client.send_to(stun::make_binding_request(txid(8)), port());

  // Only the 420 and the final request get replies, in order.
  auto first = client.receive();
  ASSERT_TRUE(first.has_value());
  const auto d = stun::decode(*first);
  ASSERT_TRUE(d.message.has_value());
  EXPECT_EQ(d.message->type, stun::kBindingError);
  auto second = client.receive();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(mapped(*second, txid(8)), client.local());

  wait_for(service_->metrics().ipv4_success, 1);
  EXPECT_EQ(service_->metrics().ignored.Value(), 3u);
  EXPECT_EQ(service_->metrics().requests.Value(), 3u);
  EXPECT_EQ(service_->metrics().bad_requests.Value(), 2u);
  EXPECT_EQ(service_->metrics().failures.Value(), 0u);
}

TEST_F(StunServiceTest, AnswersBurstsFromManyClients) {
  start("127.0.0.1");
  constexpr int kClients = 4;
  constexpr int kRounds = 50;
  constexpr int kWindow = 16;
  std::vector<std::unique_ptr<Client>> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(std::make_unique<Client>(AF_INET));
  int answered = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (auto& c : clients) {
      for (int k = 0; k < kWindow; ++k) {
        c->send_to(stun::make_binding_request(txid(static_cast<std::uint8_t>(k))), port());
      }
    }
    for (auto& c : clients) {
      for (int k = 0; k < kWindow; ++k) {
        auto reply = c->receive();
        ASSERT_TRUE(reply.has_value()) << "round " << round;
        if (mapped(*reply, txid(static_cast<std::uint8_t>(k))) == c->local()) ++answered;
      }
    }
  }
  EXPECT_EQ(answered, kClients * kRounds * kWindow);
  wait_for(service_->metrics().ipv4_success, kClients * kRounds * kWindow);
}

TEST_F(StunServiceTest, SeveralSocketsOnSeveralThreads) {
  start("127.0.0.1", 3, 2);
  constexpr int kClients = 8;
  constexpr int kRequests = 20;
  std::vector<std::unique_ptr<Client>> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(std::make_unique<Client>(AF_INET));
  int answered = 0;
  for (int k = 0; k < kRequests; ++k) {
    for (auto& c : clients)
      c->send_to(stun::make_binding_request(txid(static_cast<std::uint8_t>(k))), port());
    for (auto& c : clients) {
      auto reply = c->receive();
      ASSERT_TRUE(reply.has_value());
      if (mapped(*reply, txid(static_cast<std::uint8_t>(k))) == c->local()) ++answered;
    }
  }
  EXPECT_EQ(answered, kClients * kRequests);
  wait_for(service_->metrics().ipv4_success, kClients * kRequests);
}

// Several SO_REUSEPORT sockets: a second STUN service on the same port fails instead of sharing
// the traffic (core/bind_address.hpp).
TEST_F(StunServiceTest, SecondServiceOnTheSamePortFails) {
  start("127.0.0.1", 3, 1);
  config::StunConfig cfg;
  cfg.enabled = true;
  cfg.bind_addr.host = "127.0.0.1";
  cfg.bind_addr.port = port();
  StunService second(io_, cfg,
                     StunOptions{.software = "second", .sockets = 3, .metrics_registry = {}});
  std::string error;
  try {
    second.start();
  } catch (const std::exception& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("stun_bind_addr: cannot bind udp 127.0.0.1:" + std::to_string(port())),
            std::string::npos)
      << error;
}

TEST_F(StunServiceTest, StopClosesTheSocket) {
  start("127.0.0.1");
  const auto port_before = port();
  service_->stop();
  service_->stop();  // idempotent
  // Once the loop is gone the port can be bound again.
  bool rebound = false;
  for (int i = 0; i < 200 && !rebound; ++i) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_before);
    rebound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (!rebound) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(rebound);
}

}  // namespace
}  // namespace iroh::server
