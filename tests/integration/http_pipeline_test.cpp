// Pipelined requests on one connection (issue 15 item 7, serve_http in relay/handshake.cpp):
// requests of a Pipelining::Concurrent route are handled while the connection parses the next
// ones, their answers still go out in request order, a Serial request waits for every request
// before it, and one connection has at most 64 requests / 64 KiB of them in flight.
// Deterministic: the test's handlers wait on a gate the test opens; every wait is bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <string>
#include <vector>

#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"

namespace iroh::test {
namespace {

using server::HttpRequest;
using server::HttpResponse;
using server::HttpRouter;
using server::RequestInfo;

// The handlers' view of the test: how many started / finished, and whether they may finish.
struct Gate {
  std::atomic<bool> open = false;
  std::atomic<int> started = 0;
  std::atomic<int> finished = 0;
};

// Waits (on the connection's thread, without blocking it) until the gate opens; at most ~20 s so
// that a broken test cannot hang the daemon.
asio::awaitable<void> wait_open(Gate& gate) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int i = 0; i < 20000 && !gate.open.load(); ++i) {
    timer.expires_after(1ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

// The request's number: the last path segment of /slow/<n> or /hold/<n>.
std::string number_of(const HttpRequest& req) {
  std::string_view target = req.target();
  return std::string(target.substr(target.rfind('/') + 1));
}

class PkarrPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<server::Daemon>(test_config(), 2);
    Gate* gate = &gate_;
    // /slow/0 waits for the gate, /slow/<n> for n > 0 answers at once.
    daemon_->router().add(
        http::verb::put, "/slow/",
        [gate](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
          gate->started.fetch_add(1);
          const std::string n = number_of(req);
          if (n == "0") co_await wait_open(*gate);
          gate->finished.fetch_add(1);
          co_return server::make_response(req, http::status::ok, n);
        },
        HttpRouter::Match::Prefix, 0, HttpRouter::Pipelining::Concurrent);
    // /hold/<n> all wait for the gate.
    daemon_->router().add(
        http::verb::put, "/hold/",
        [gate](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
          gate->started.fetch_add(1);
          co_await wait_open(*gate);
          gate->finished.fetch_add(1);
          co_return server::make_response(req, http::status::ok, number_of(req));
        },
        HttpRouter::Match::Prefix, 0, HttpRouter::Pipelining::Concurrent);
    // A Serial route: answers how many handlers had finished when it ran.
    daemon_->router().add(
        http::verb::get, "/finished",
        [gate](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
          co_return server::make_response(req, http::status::ok,
                                          std::to_string(gate->finished.load()));
        });
    daemon_->start();
  }
  void TearDown() override {
    gate_.open = true;
    if (daemon_) daemon_->stop();
  }

  // Connects and writes `wire` (pipelined requests) in one write.
  bool send(const std::string& wire) {
    auto close = [&] {
      error_code ignored;
      socket_.close(ignored);
    };
    if (run_op(
            ioc_, [&](auto h) { socket_.async_connect(*daemon_->http_endpoint(), h); }, close,
            5s)) {
      return false;
    }
    return !run_op(
        ioc_, [&](auto h) { asio::async_write(socket_, asio::buffer(wire), h); }, close, 5s);
  }
  // Reads up to `n` answers (fewer if one fails or times out); their status and body.
  std::vector<std::pair<unsigned, std::string>> read_answers(int n) {
    std::vector<std::pair<unsigned, std::string>> out;
    auto close = [&] {
      error_code ignored;
      socket_.close(ignored);
    };
    for (int i = 0; i < n; ++i) {
      http::response_parser<http::string_body> parser;
      if (run_op(
              ioc_, [&](auto h) { http::async_read(socket_, buffer_, parser, h); }, close, 10s)) {
        break;
      }
      out.emplace_back(parser.get().result_int(), parser.get().body());
    }
    return out;
  }

  static std::string put(const std::string& target, std::size_t body_size = 0) {
    return "PUT " + target +
           " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body_size) + "\r\n\r\n" +
           std::string(body_size, 'x');
  }
  static std::vector<std::pair<unsigned, std::string>> numbered(int n) {
    std::vector<std::pair<unsigned, std::string>> out;
    for (int i = 0; i < n; ++i) out.emplace_back(200, std::to_string(i));
    return out;
  }

  Gate gate_;
  std::unique_ptr<server::Daemon> daemon_;
  asio::io_context ioc_;
  tcp::socket socket_{ioc_};
  beast::flat_buffer buffer_;
};

// The first request is slow: the nine behind it finish while it waits (they were handled
// concurrently), and the answers still come in request order.
TEST_F(PkarrPipelineTest, AnswersInOrderBehindASlowFirstRequest) {
  std::string wire;
  for (int i = 0; i < 10; ++i) wire += put("/slow/" + std::to_string(i));
  ASSERT_TRUE(send(wire));
  EXPECT_TRUE(eventually([&] { return gate_.finished.load() == 9; }, 10s))
      << "requests behind a slow one were not handled concurrently (finished "
      << gate_.finished.load() << ")";
  EXPECT_EQ(gate_.started.load(), 10);
  gate_.open = true;
  EXPECT_EQ(read_answers(10), numbered(10));
}

// A Serial request behind Concurrent ones waits for all of them (it sees their effects, like a
// GET /pkarr behind PUTs of the same key).
TEST_F(PkarrPipelineTest, SerialRequestWaitsForTheOnesBeforeIt) {
  ASSERT_TRUE(send(put("/slow/0") + put("/slow/1") + "GET /finished HTTP/1.1\r\nHost: t\r\n\r\n" +
                   put("/slow/2")));
  EXPECT_TRUE(eventually([&] { return gate_.finished.load() == 1; }, 10s));
  gate_.open = true;
  auto answers = read_answers(4);
  std::vector<std::pair<unsigned, std::string>> expected = {
      {200, "0"}, {200, "1"}, {200, "2"}, {200, "2"}};
  EXPECT_EQ(answers, expected);
}

// 100 pipelined requests that all wait: at most 64 handlers run at once on one connection (what
// a client can pin is bounded), and all 100 are answered in order once they may finish.
TEST_F(PkarrPipelineTest, AtMost64InFlightPerConnection) {
  std::string wire;
  for (int i = 0; i < 100; ++i) wire += put("/hold/" + std::to_string(i));
  ASSERT_TRUE(send(wire));
  EXPECT_TRUE(eventually([&] { return gate_.started.load() == 64; }, 10s))
      << "started " << gate_.started.load();
  // A correct server never starts a 65th here; the window only matters for a broken one.
  EXPECT_FALSE(eventually([&] { return gate_.started.load() > 64; }, 1s))
      << "started " << gate_.started.load() << " at once";
  gate_.open = true;
  EXPECT_EQ(read_answers(100), numbered(100));
  EXPECT_EQ(gate_.started.load(), 100);
}

// Large requests: the 64 KiB of requests in flight bound them before the count does.
TEST_F(PkarrPipelineTest, AtMost64KiBOfRequestsInFlight) {
  constexpr std::size_t kBody = 8000;
  std::string wire;
  for (int i = 0; i < 20; ++i) wire += put("/hold/" + std::to_string(i), kBody);
  ASSERT_TRUE(send(wire));
  EXPECT_TRUE(eventually([&] { return gate_.started.load() >= 1; }, 10s));
  EXPECT_FALSE(eventually([&] { return gate_.started.load() > 8; }, 1s))
      << "started " << gate_.started.load() << " requests of " << kBody << " bytes at once";
  gate_.open = true;
  EXPECT_EQ(read_answers(20), numbered(20));
  EXPECT_EQ(gate_.started.load(), 20);
}

}  // namespace
}  // namespace iroh::test
