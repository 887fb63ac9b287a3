// Helpers of the relay hardening tests (issue 7; hardening_*_test.cpp): connect-and-handshake
// shortcuts and a tiny HTTP server that plays the access callout. In-process daemon on
// 127.0.0.1:0 (daemon_fixture.hpp).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"

namespace iroh::test {

inline relay::Bytes deny(const std::string& reason) {
  return relay::encode(relay::ServerDeniesAuth{reason});
}

// Connects and runs the challenge handshake; returns the server's answer (Confirm or Denies).
inline std::optional<relay::Bytes> try_connect(RelayTestClient& c, const tcp::endpoint& ep,
                                               const relay::SecretKey& key,
                                               const UpgradeOptions& opts = {}) {
  if (c.connect(ep, opts)) return std::nullopt;
  return c.handshake(key);
}

inline std::unique_ptr<RelayTestClient> connected(const tcp::endpoint& ep,
                                                  const relay::SecretKey& key,
                                                  const UpgradeOptions& opts = {}) {
  auto c = std::make_unique<RelayTestClient>();
  auto r = try_connect(*c, ep, key, opts);
  EXPECT_EQ(r, kConfirm);
  EXPECT_TRUE(c->ping_barrier());
  return c;
}

inline UpgradeOptions bearer(const std::string& token) {
  return UpgradeOptions{}.with_header("Authorization", "Bearer " + token);
}

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
  void allow(const relay::EndpointId& id) {
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

inline config::Config callout_config(const std::string& url) {
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::Http;
  cfg.access.http_url = url;
  cfg.access.http_bearer_token = "callout-bearer-secret";
  cfg.access.http_timeout = 500ms;
  return cfg;
}

}  // namespace iroh::test
