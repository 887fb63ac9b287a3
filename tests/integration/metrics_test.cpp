// The metrics listener and the status page against an in-process daemon on 127.0.0.1:0, with
// relay traffic from raw WebSocket clients: reference counter names (relay.md §10), drops by
// reason, gauges, the handshake histogram, 404 elsewhere, the connection bound; `/`, `/healthz`;
// the shared serve loop (http/serve_loop.hpp) on the metrics listener: pipelining, limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "http/status_page.hpp"
#include "integration/relay_server_test_client.hpp"
#include "iroh/server/daemon.hpp"
#include "metrics/metrics_service.hpp"

namespace iroh::test {
namespace {

using relay::Bytes;
using relay::SecretKey;
using server::Daemon;

// "name{labels}" -> value of every sample line.
std::map<std::string, double> parse_samples(const std::string& text) {
  std::map<std::string, double> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::Config c;
    c.source = "test";
    c.dev = true;
    c.http_bind_addr = config::SocketAddr{"127.0.0.1", 0};
    c.metrics_bind_addr = config::SocketAddr{"127.0.0.1", 0};
    c.data_dir = std::filesystem::temp_directory_path();
    daemon_ = std::make_unique<Daemon>(std::move(c), 2);
    Daemon* d = daemon_.get();
    auto metrics = server::make_metrics_service(
        server::ServiceContext{d->io_context(), d->metrics_registry()},
        d->config().metrics_bind_addr, d->metrics(), [d] { return d->relay_queue_depth(); },
        [] { return std::optional<std::size_t>(7); });
    metrics_ = metrics.get();
    daemon_->add_service(std::move(metrics));
    server::StatusPageSources status;
    status.config = &daemon_->config();
    status.relay = &daemon_->metrics();
    status.registry = daemon_->metrics_registry();
    status.lookup_store_size = [] { return std::optional<std::size_t>(7); };
    server::add_status_routes(daemon_->router(), std::move(status));
    daemon_->start();
  }
  void TearDown() override { daemon_->stop(); }

  tcp::endpoint relay_ep() const { return *daemon_->http_endpoint(); }
  tcp::endpoint metrics_ep() const { return *metrics_->endpoint(); }

  std::map<std::string, double> scrape() {
    auto res = http_request(metrics_ep(), http::verb::get, "/metrics");
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ((*res)[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
    return parse_samples(res->body());
  }

  std::unique_ptr<RelayTestClient> client(const SecretKey& key) {
    auto c = std::make_unique<RelayTestClient>();
    EXPECT_FALSE(c->connect(relay_ep()));
    auto confirm = c->handshake(key);
    EXPECT_TRUE(confirm && *confirm == Bytes{2});
    EXPECT_TRUE(c->ping_barrier());
    return c;
  }

  std::unique_ptr<Daemon> daemon_;
  server::MetricsService* metrics_ = nullptr;
};

TEST_F(MetricsTest, RelayCountersUnderReferenceNames) {
  auto ka = SecretKey::generate(), kb = SecretKey::generate();
  auto a = client(ka);
  auto b = client(kb);
  const Bytes contents(100, 0x5a);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a->send_datagram(kb.public_key(), contents));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b->read());
  ASSERT_TRUE(a->send_datagram(SecretKey::generate().public_key(), contents));
  ASSERT_TRUE(a->ping_barrier());  // the drop above is counted once the Pong is back

  // Sent-side counters are bumped after the write completes, which may be just after the client
  // read the bytes: poll (bounded) until they caught up.
  std::map<std::string, double> s;
  for (int i = 0; i < 500; ++i) {
    s = scrape();
    if (s["relayserver_send_packets_sent_total"] >= 10 && s["relayserver_sent_pong_total"] >= 3)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(s["relayserver_send_packets_recv_total"], 11);
  EXPECT_EQ(s["relayserver_send_packets_sent_total"], 10);
  EXPECT_EQ(s["relayserver_bytes_recv_total"], 1100);
  EXPECT_EQ(s["relayserver_bytes_sent_total"], 1000);
  EXPECT_EQ(s["relayserver_send_packets_dropped_total"], 1);
  EXPECT_EQ(s["relayserver_packets_dropped_total{reason=\"unknown_destination\"}"], 1);
  EXPECT_EQ(s["relayserver_packets_dropped_total{reason=\"queue_full\"}"], 0);
  EXPECT_TRUE(s.contains("relayserver_packets_dropped_total{reason=\"write_error\"}"));
  EXPECT_TRUE(s.contains("relayserver_packets_dropped_total{reason=\"rate_limited\"}"));
  EXPECT_EQ(s["relayserver_accepts_total"], 2);
  EXPECT_GE(s["relayserver_got_ping_total"], 3);
  EXPECT_GE(s["relayserver_sent_pong_total"], 3);
  // No double _total for the two reference names that already end in it.
  EXPECT_TRUE(s.contains("relayserver_bytes_rx_ratelimited_total"));
  EXPECT_TRUE(s.contains("relayserver_conns_rx_ratelimited_total"));
  EXPECT_TRUE(s.contains("relayserver_http_connections_total"));
  EXPECT_EQ(s["relayserver_clients_connected"], 2);
  EXPECT_EQ(s["relayserver_clients_active"], 2);
  EXPECT_EQ(s["relayserver_clients_inactive"], 0);
  EXPECT_GE(s["relayserver_open_connections"], 2);
  EXPECT_EQ(s["relayserver_queued_datagrams"], 0);
  EXPECT_TRUE(s.contains("relayserver_client_queue_max_datagrams"));
  EXPECT_EQ(s["relayserver_queued_bytes"], 0);
  EXPECT_TRUE(s.contains("relayserver_client_queue_max_bytes"));
  EXPECT_TRUE(s.contains("relayserver_packets_dropped_total{reason=\"total_queue_full\"}"));
  EXPECT_TRUE(s.contains("relayserver_senders_throttled_total"));
  EXPECT_EQ(s["relayserver_handshake_duration_seconds_count"], 2);
  EXPECT_EQ(s["relayserver_handshake_duration_seconds_bucket{le=\"+Inf\"}"], 2);
  EXPECT_EQ(s["dns_server_store_packets"], 7);
  EXPECT_EQ(s["iroh_relay_build_info{version=\"" IROH_RELAY_VERSION "\"}"], 1);
  EXPECT_GT(s["process_start_time_seconds"], 1.6e9);
}

TEST_F(MetricsTest, DuplicateEndpointIdIsInactive) {
  auto key = SecretKey::generate();
  auto first = client(key);
  auto second = client(key);
  auto s = scrape();
  EXPECT_EQ(s["relayserver_clients_connected"], 2);
  EXPECT_EQ(s["relayserver_clients_inactive"], 1);
  EXPECT_EQ(s["relayserver_clients_active"], 1);
}

TEST_F(MetricsTest, OnlyMetricsPathIsServed) {
  for (const char* target : {"/", "/metricsx", "/foo"}) {
    auto res = http_request(metrics_ep(), http::verb::get, target);
    ASSERT_TRUE(res) << target;
    EXPECT_EQ(res->result_int(), 404) << target;
  }
  auto post = http_request(metrics_ep(), http::verb::post, "/metrics");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->result_int(), 404);
  auto query = http_request(metrics_ep(), http::verb::get, "/metrics?x=1");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->result_int(), 200);
}

TEST(MetricsService, BoundsConnectionsAndIdleTime) {
  asio::io_context ioc;
  server::MetricsServiceOptions options;
  options.bind = tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
  options.max_connections = 2;
  options.request_timeout = std::chrono::milliseconds(300);
  auto registry = std::make_shared<prometheus::Registry>();
  server::MetricsService service(ioc, options, {registry});
  service.start();
  std::thread loop([&ioc] { ioc.run_for(std::chrono::seconds(20)); });
  const tcp::endpoint ep = *service.endpoint();

  // Two idle connections take both slots; a third is closed at once.
  asio::io_context client_ioc;
  tcp::socket idle1(client_ioc), idle2(client_ioc), third(client_ioc);
  idle1.connect(ep);
  idle2.connect(ep);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  third.connect(ep);
  std::array<char, 16> buf{};
  error_code ec;
  third.read_some(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::eof);
  // The idle ones are closed by the request timeout (a blocking read returns, bounded by it).
  idle1.read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  idle2.read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  // Slots are free again.
  auto res = http_request(ep, http::verb::get, "/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  service.stop();
  ioc.stop();
  loop.join();
}

// A MetricsService of its own on 127.0.0.1:0 (empty registry), its loop on a thread, and a raw
// connection that writes pipelined requests and reads the answers, every step bounded.
class MetricsServeLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server::MetricsServiceOptions options;
    options.bind = tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    options.request_timeout = std::chrono::milliseconds(5000);
    service_ = std::make_unique<server::MetricsService>(
        ioc_, options, server::MetricsSources{std::make_shared<prometheus::Registry>()});
    service_->start();
    loop_ = std::thread([this] { ioc_.run_for(std::chrono::seconds(60)); });
  }
  void TearDown() override {
    service_->stop();
    ioc_.stop();
    loop_.join();
  }
  // Connects and sends `wire` in one write.
  bool send(const std::string& wire) {
    auto close = [this] {
      error_code ignored;
      socket_.close(ignored);
    };
    return !run_op(
               client_, [&](auto h) { socket_.async_connect(*service_->endpoint(), h); }, close,
               5s) &&
           !run_op(
               client_, [&](auto h) { asio::async_write(socket_, asio::buffer(wire), h); }, close,
               5s);
  }
  // The next answer, or nullopt once the connection ended (or after 5 s).
  std::optional<http::response<http::string_body>> answer(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    auto close = [this] {
      error_code ignored;
      socket_.close(ignored);
    };
    if (run_op(
            client_, [&](auto h) { http::async_read(socket_, buffer_, parser, h); }, close, 5s)) {
      return std::nullopt;
    }
    return parser.release();
  }
  static std::string get(const std::string& target, const std::string& extra = {}) {
    return "GET " + target + " HTTP/1.1\r\nHost: m\r\n" + extra + "\r\n";
  }

  asio::io_context ioc_;
  std::unique_ptr<server::MetricsService> service_;
  std::thread loop_;
  asio::io_context client_;
  tcp::socket socket_{client_};
  beast::flat_buffer buffer_;
};

TEST_F(MetricsServeLoopTest, PipelinedRequestsAreAnsweredInOrder) {
  ASSERT_TRUE(send(get("/metrics") + get("/nope") + "HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\n" +
                   get("/metrics?x=1", "Connection: close\r\n")));
  auto first = answer();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->result_int(), 200);
  EXPECT_EQ((*first)[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  auto missing = answer();
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->result_int(), 404);
  EXPECT_EQ((*missing)[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ(missing->body(), "Not Found");
  auto head = answer(/*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->result_int(), 200);
  EXPECT_EQ((*head)[http::field::content_length], (*first)[http::field::content_length]);
  EXPECT_TRUE(head->body().empty());
  auto last = answer();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->result_int(), 200);
  EXPECT_FALSE(last->keep_alive());
  EXPECT_FALSE(answer()) << "Connection: close ends the connection";
}

// The metrics listener's limits: 8 KiB of header, 8 KiB of body; each answered, then closed.
TEST_F(MetricsServeLoopTest, OversizeHeaderOrBodyIsAnsweredAndCloses) {
  const std::pair<std::string, unsigned> cases[] = {
      {get("/metrics", "X-Pad: " + std::string(9000, 'a') + "\r\n"), 431},
      {"POST /metrics HTTP/1.1\r\nHost: m\r\nContent-Length: 9000\r\n\r\n", 413},
  };
  for (const auto& [wire, status] : cases) {
    ASSERT_TRUE(send(wire)) << status;
    auto res = answer();
    ASSERT_TRUE(res) << status;
    EXPECT_EQ(res->result_int(), status);
    EXPECT_FALSE(res->keep_alive());
    EXPECT_FALSE(answer()) << status;
    error_code ignored;
    socket_.close(ignored);
    buffer_.clear();
  }
}

TEST_F(MetricsServeLoopTest, AtMost1000RequestsPerConnection) {
  std::string wire;
  for (int i = 0; i < 1001; ++i) wire += get("/x");
  ASSERT_TRUE(send(wire));
  int answered = 0;
  for (int i = 0; i < 1001; ++i) {
    auto res = answer();
    if (!res) break;
    EXPECT_EQ(res->result_int(), 404);
    ++answered;
  }
  EXPECT_EQ(answered, 1000);
}

TEST_F(MetricsTest, StatusPageAndHealthz) {
  auto ka = SecretKey::generate();
  auto a = client(ka);
  auto index = http_request(relay_ep(), http::verb::get, "/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->result_int(), 200);
  EXPECT_EQ((*index)[http::field::content_type], "text/html; charset=utf-8");
  const std::string& html = index->body();
  // The reference's index page first, byte for byte (relay.md §2.2).
  EXPECT_TRUE(
      html.starts_with("<html><body>\n<h1>Iroh Relay</h1>\n<p>\n  This is an <a "
                       "href=\"https://iroh.computer/\">Iroh</a> Relay server.\n</p>\n"))
      << html;
  EXPECT_NE(html.find("<th align=\"left\">version</th><td>" IROH_RELAY_VERSION "</td>"),
            std::string::npos);
  EXPECT_NE(html.find("<th align=\"left\">clients connected</th><td>1 "), std::string::npos)
      << html;
  EXPECT_NE(html.find("<th align=\"left\">relay</th><td>on</td>"), std::string::npos);
  EXPECT_NE(html.find("<th align=\"left\">metrics</th><td>on</td>"), std::string::npos);
  EXPECT_NE(html.find("<th align=\"left\">signed packets stored</th><td>7</td>"),
            std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos) << "no external assets";
  EXPECT_EQ(html.find("<script"), std::string::npos);
  auto same = http_request(relay_ep(), http::verb::get, "/index.html");
  ASSERT_TRUE(same);
  EXPECT_TRUE(same->body().starts_with("<html><body>\n<h1>Iroh Relay</h1>\n"));

  auto health = http_request(relay_ep(), http::verb::get, "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->result_int(), 200);
  EXPECT_EQ((*health)[http::field::content_type], "application/json");
  auto json = nlohmann::json::parse(health->body());
  EXPECT_EQ(json["status"], "ok");
  EXPECT_EQ(json["version"], IROH_RELAY_VERSION);
  EXPECT_EQ(json["git_hash"], "unknown");
  EXPECT_TRUE(json["uptime_secs"].is_number_unsigned());
}

TEST(StatusPage, RendersWithoutSources) {
  server::StatusPageSources none;
  std::string html = server::render_status_page(none);
  EXPECT_TRUE(html.starts_with("<html><body>\n<h1>Iroh Relay</h1>\n"));
  EXPECT_EQ(html.find("Services"), std::string::npos);
  EXPECT_EQ(server::render_healthz(std::chrono::seconds(42)),
            "{\"status\":\"ok\",\"version\":\"" IROH_RELAY_VERSION
            "\",\"git_hash\":\"unknown\",\"uptime_secs\":42}");
}

}  // namespace
}  // namespace iroh::test
