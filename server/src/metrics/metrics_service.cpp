#include "metrics/metrics_service.hpp"

#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <span>
#include <sstream>
#include <unordered_set>

#include "core/accept_backoff.hpp"
#include "core/await.hpp"
#include "core/bind_address.hpp"
#include "core/log.hpp"
#include "core/net.hpp"
#include "http/serve_loop.hpp"
#include "iroh/server/http_router.hpp"

namespace iroh::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxRequestBytes = 8 * 1024;
constexpr std::size_t kMaxRequestsPerConnection = 1000;
constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

prometheus::ClientMetric counter_sample(double value,
                                        std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

prometheus::ClientMetric gauge_sample(double value) {
  prometheus::ClientMetric m;
  m.gauge.value = value;
  return m;
}

double load(const Counter& c) {
  return double(c.load(std::memory_order_relaxed));
}

// Issue 16 (docs/mesh.md §7): the mesh families, per configured peer labelled with its URL.
void collect_mesh(const RelayMetrics& m, std::vector<prometheus::MetricFamily>& out) {
  using prometheus::MetricType;
  auto up = family("relayserver_mesh_peer_up", "1 while the outgoing mesh link to the peer is up.",
                   MetricType::Gauge);
  auto dgrams = family("relayserver_mesh_forwarded_datagrams_total",
                       "Datagrams forwarded to the mesh peer.", MetricType::Counter);
  auto bytes = family("relayserver_mesh_forwarded_bytes_total",
                      "Bytes of datagram frames forwarded to the mesh peer.", MetricType::Counter);
  auto over = family("relayserver_mesh_presence_dropped_total",
                     "Present frames for a new endpoint dropped because the peer already "
                     "announced mesh.max_remote_endpoints endpoints.",
                     MetricType::Counter);
  double peers_up = 0;
  for (const auto& p : m.mesh_peers) {
    const bool is_up = p->up.load(std::memory_order_relaxed);
    peers_up += is_up ? 1 : 0;
    auto g = gauge_sample(is_up ? 1 : 0);
    g.label = {{"peer", p->url}};
    up.metric.push_back(std::move(g));
    dgrams.metric.push_back(counter_sample(load(p->forwarded_datagrams), {{"peer", p->url}}));
    bytes.metric.push_back(counter_sample(load(p->forwarded_bytes), {{"peer", p->url}}));
    over.metric.push_back(counter_sample(load(p->presence_dropped), {{"peer", p->url}}));
  }
  out.push_back(std::move(up));
  out.push_back(std::move(dgrams));
  out.push_back(std::move(bytes));
  out.push_back(std::move(over));
  auto n = family("relayserver_mesh_peers_up", "Mesh peers whose outgoing link is up.",
                  MetricType::Gauge);
  n.metric.push_back(gauge_sample(peers_up));
  out.push_back(std::move(n));
  auto remote = family("relayserver_mesh_remote_endpoints",
                       "Endpoints known to be connected at mesh peers.", MetricType::Gauge);
  remote.metric.push_back(
      gauge_sample(double(m.mesh_remote_endpoints.load(std::memory_order_relaxed))));
  out.push_back(std::move(remote));
  auto refused = family("relayserver_mesh_links_refused_total",
                        "Incoming mesh links that failed authentication.", MetricType::Counter);
  refused.metric.push_back(counter_sample(load(m.mesh_links_refused)));
  out.push_back(std::move(refused));
}

// One gauge family per (name, help), with the value of the same index.
template <std::size_t N>
void collect_gauges(const std::pair<const char*, const char*> (&names)[N],
                    const double (&values)[N], std::vector<prometheus::MetricFamily>& out) {
  for (std::size_t i = 0; i < N; ++i) {
    auto f = family(names[i].first, names[i].second, prometheus::MetricType::Gauge);
    f.metric.push_back(gauge_sample(values[i]));
    out.push_back(std::move(f));
  }
}

// The send queues' depth, read by walking the client registry at scrape time.
void collect_queue_depth(const RelayQueueDepth& depth, std::vector<prometheus::MetricFamily>& out) {
  const std::pair<const char*, const char*> depth_names[] = {
      {"relayserver_queued_datagrams",
       "Datagrams waiting in the per-client send queues, all clients together."},
      {"relayserver_client_queue_max_datagrams",
       "Datagrams waiting in the longest per-client send queue."},
      {"relayserver_queued_bytes",
       "Datagram bytes waiting in the per-client send queues, all clients together (capped by "
       "limits.total_queue_bytes)."},
      {"relayserver_client_queue_max_bytes",
       "Datagram bytes waiting in the largest per-client send queue (capped by "
       "limits.client_queue_bytes)."},
  };
  const double depth_values[] = {double(depth.total), double(depth.max), double(depth.total_bytes),
                                 double(depth.max_bytes)};
  collect_gauges(depth_names, depth_values, out);
}

// One counter family per entry, named relayserver_<name>_total.
struct CounterRef {
  const char* name;
  const char* help;
  const Counter& value;
};
void collect_counters(std::span<const CounterRef> counters,
                      std::vector<prometheus::MetricFamily>& out) {
  for (const auto& r : counters) {
    std::string name = std::string("relayserver_") + r.name;
    if (!name.ends_with("_total")) name += "_total";
    auto f = family(std::move(name), r.help, prometheus::MetricType::Counter);
    f.metric.push_back(counter_sample(load(r.value)));
    out.push_back(std::move(f));
  }
}

// relay.md §10: group `relayserver`, help texts as in the reference (with its trailing '.'). Two
// reference names already end in _total and get no second one.
void collect_reference(const RelayMetrics& m, std::vector<prometheus::MetricFamily>& out) {
  const CounterRef reference[] = {
      {"bytes_sent", "Number of bytes sent.", m.bytes_sent},
      {"bytes_recv", "Number of bytes received.", m.bytes_recv},
      {"send_packets_sent", "Number of 'send' packets relayed.", m.send_packets_sent},
      {"send_packets_recv", "Number of 'send' packets received.", m.send_packets_recv},
      {"send_packets_dropped", "Number of 'send' packets dropped.", m.send_packets_dropped},
      {"other_packets_sent", "Number of packets sent that were not 'send' packets.",
       m.other_packets_sent},
      {"other_packets_recv", "Number of packets received that were not 'send' packets.",
       m.other_packets_recv},
      {"other_packets_dropped", "Number of times, non-send packet was dropped.",
       m.other_packets_dropped},
      {"got_ping", "Number of times the server has received a Ping from a client.", m.got_ping},
      {"sent_pong", "Number of times the server has sent a Pong to a client.", m.sent_pong},
      {"unknown_frames", "Number of unknown frames sent to this server.", m.unknown_frames},
      {"bytes_rx_ratelimited_total",
       "Number of bytes received from client connection which have been rate-limited.",
       m.bytes_rx_ratelimited_total},
      {"conns_rx_ratelimited_total",
       "Number of client connections which have had any frames rate-limited.",
       m.conns_rx_ratelimited_total},
      {"accepts", "Number of times this server has accepted a connection.", m.accepts},
      {"disconnects", "Number of clients that have then disconnected.", m.disconnects},
      {"unique_client_keys", "Number of unique client keys per day.", m.unique_client_keys},
      {"clients_inactive_added", "Number of times a client was moved into the inactive state.",
       m.clients_inactive_added},
      {"clients_inactive_removed", "Number of times a client was removed from the inactive state.",
       m.clients_inactive_removed},
      {"http_connections", "Number of accepted HTTP(S) connections.", m.http_connections},
      {"http_connections_closed", "Number of terminated HTTP(S) connections.",
       m.http_connections_closed},
      {"http_connections_errored", "Number of HTTP(S) connections that terminated with an error.",
       m.http_connections_errored},
  };
  collect_counters(reference, out);
}

// Ours: the same families in the same group, drops by reason first.
void collect_ours(const RelayMetrics& m, std::vector<prometheus::MetricFamily>& out) {
  auto dropped = family("relayserver_packets_dropped_total",
                        "Datagrams the relay dropped, by reason.", prometheus::MetricType::Counter);
  const std::pair<const char*, const Counter&> reasons[] = {
      {"unknown_destination", m.dropped_unknown_destination},
      {"queue_full", m.dropped_queue_full},
      {"total_queue_full", m.dropped_total_queue_full},
      {"write_error", m.dropped_write_error},
      {"rate_limited", m.dropped_rate_limited},
      {"unencodable", m.dropped_unencodable},
      {"handoff_full", m.dropped_handoff_full},
      {"mesh_down", m.dropped_mesh_down},
      {"mesh_link_full", m.dropped_mesh_link_full},
  };
  for (const auto& [reason, value] : reasons) {
    dropped.metric.push_back(counter_sample(load(value), {{"reason", reason}}));
  }
  out.push_back(std::move(dropped));
  const CounterRef ours[] = {
      {"handshakes_denied", "Relay handshakes answered with ServerDeniesAuth.", m.denied},
      {"handshake_failures", "Connections that ended before ServerConfirmsAuth.",
       m.handshake_failures},
      {"connections_rejected", "Connections closed at accept because of limits.max_connections.",
       m.connections_rejected},
      {"malformed_frames", "Relay frames that failed to decode (the client was closed).",
       m.malformed_frames},
      {"ping_timeouts", "Clients closed because a server Ping got no Pong.", m.ping_timeouts},
      {"write_timeouts", "Clients closed because a write made no progress in time.",
       m.write_timeouts},
      {"senders_throttled",
       "Times a sender was paused because its datagrams filled a queue past three quarters.",
       m.senders_throttled},
      {"control_frames_dropped", "Control frames dropped because the priority lane was full.",
       m.control_dropped},
      {"tls_unexpected_eof",
       "TLS connections whose peer closed TCP without close_notify (maybe inside a record).",
       m.tls_unexpected_eof},
      {"tls_errors",
       "TLS connections closed on a TLS error (e.g. a record that failed to decrypt).",
       m.tls_errors},
      {"tls_ktls_send", "TLS handshakes after which kernel TLS carries the sends.",
       m.tls_ktls_send},
      {"tls_ktls_recv", "TLS handshakes after which kernel TLS carries the receives.",
       m.tls_ktls_recv},
  };
  collect_counters(ours, out);
}

// Time from accept to ServerConfirmsAuth, cumulative buckets as Prometheus wants them.
void collect_handshake_histogram(const RelayMetrics& m,
                                 std::vector<prometheus::MetricFamily>& out) {
  auto snap = m.handshake_duration.snapshot();
  auto f = family("relayserver_handshake_duration_seconds",
                  "Time from TCP accept to ServerConfirmsAuth written (TLS, HTTP upgrade, relay "
                  "handshake, access check).",
                  prometheus::MetricType::Histogram);
  prometheus::ClientMetric h;
  h.histogram.sample_count = snap.count;
  h.histogram.sample_sum = snap.sum_seconds;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < snap.counts.size(); ++i) {
    cumulative += snap.counts[i];
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < DurationHistogram::kBounds.size() ? DurationHistogram::kBounds[i]
                                                          : std::numeric_limits<double>::infinity();
    h.histogram.bucket.push_back(b);
  }
  f.metric.push_back(std::move(h));
  out.push_back(std::move(f));
}

// Gauges. Inactive = duplicates of an endpoint id that a newer connection displaced (§6.2).
void collect_client_gauges(const RelayMetrics& m, std::vector<prometheus::MetricFamily>& out) {
  const auto connected = double(m.clients_connected.load(std::memory_order_relaxed));
  const auto inactive_added = load(m.clients_inactive_added);
  const auto inactive_removed = load(m.clients_inactive_removed);
  const double inactive = std::max(0.0, inactive_added - inactive_removed);
  const std::pair<const char*, const char*> gauge_names[] = {
      {"relayserver_clients_connected", "Authenticated relay connections."},
      {"relayserver_clients_active", "Relay connections that receive their endpoint's traffic."},
      {"relayserver_clients_inactive",
       "Relay connections displaced by a newer connection of the same endpoint id."},
      {"relayserver_open_connections", "TCP connections open on the relay listeners."},
  };
  const double gauge_values[] = {connected, std::max(0.0, connected - inactive), inactive,
                                 double(m.open_connections.load(std::memory_order_relaxed))};
  collect_gauges(gauge_names, gauge_values, out);
}

}  // namespace

RelayMetricsCollector::RelayMetricsCollector(const RelayMetrics& metrics,
                                             std::function<RelayQueueDepth()> queue_depth)
    : metrics_(metrics), queue_depth_(std::move(queue_depth)) {}

std::vector<prometheus::MetricFamily> RelayMetricsCollector::Collect() const {
  const RelayMetrics& m = metrics_;
  std::vector<prometheus::MetricFamily> out;
  collect_reference(m, out);
  collect_ours(m, out);
  collect_handshake_histogram(m, out);
  collect_client_gauges(m, out);
  if (!m.mesh_peers.empty()) collect_mesh(m, out);
  if (queue_depth_) collect_queue_depth(queue_depth_(), out);
  return out;
}

std::string serialize_metrics(const MetricsSources& sources) {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& source : sources) {
    auto collected = source->Collect();
    families.insert(families.end(), std::make_move_iterator(collected.begin()),
                    std::make_move_iterator(collected.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return std::move(out).str();
}

// ---- the listener ------------------------------------------------------------------------------

struct MetricsService::State : std::enable_shared_from_this<MetricsService::State> {
  State(asio::io_context& c, MetricsServiceOptions o, MetricsSources s)
      : ioc(c), options(std::move(o)), sources(std::move(s)), acceptor(asio::make_strand(ioc)) {}

  asio::io_context& ioc;
  MetricsServiceOptions options;
  MetricsSources sources;
  HttpRouter router;
  tcp::acceptor acceptor;
  std::optional<tcp::endpoint> bound;
  std::atomic<bool> stopping{false};

  // Open connections, so that stop() can close them.
  std::mutex mutex;
  std::unordered_set<std::shared_ptr<beast::tcp_stream>> streams;
};

namespace {

// GET and HEAD /metrics (the query ignored); every other request gets the serve loop's 404.
void add_metrics_routes(HttpRouter& router, const MetricsSources& sources) {
  HttpHandler scrape = [&sources](const HttpRequest& req,
                                  const RequestInfo&) -> asio::awaitable<HttpResponse> {
    HttpResponse res =
        make_response(req, http::status::ok, serialize_metrics(sources), kContentType);
    // HEAD: the GET's Content-Length, no body (RFC 9110 §9.3.2).
    if (req.method() == http::verb::head) res.body().clear();
    co_return res;
  };
  router.add(http::verb::get, "/metrics", scrape);
  router.add(http::verb::head, "/metrics", scrape);
}

// One connection through the shared serve loop (http/serve_loop.hpp), with the listener's
// limits: 8 KiB of header and body, kMaxRequestsPerConnection requests, and request_timeout
// for reading each request (including the keep-alive idle time) and writing its answers.
asio::awaitable<void> serve(std::shared_ptr<MetricsService::State> state,
                            std::shared_ptr<beast::tcp_stream> stream) {
  HttpServeHooks hooks;
  hooks.router = &state->router;
  error_code ignored;
  hooks.info = RequestInfo{stream->socket().remote_endpoint(ignored),
                           stream->socket().local_endpoint(ignored), false};
  hooks.not_found_type = "text/plain; charset=utf-8";
  hooks.arm_deadline = [stream, timeout = state->options.request_timeout] {
    stream->expires_after(timeout);
  };
  hooks.stopping = [state] { return state->stopping.load(); };
  hooks.owner = state;
  hooks.plain_socket = &stream->socket();
  beast::flat_buffer buffer;
  HttpServeLoop<beast::tcp_stream> loop(
      *stream, buffer, std::move(hooks),
      HttpServeLimits{kMaxRequestBytes, kMaxRequestBytes, kMaxRequestsPerConnection});
  co_await loop.run();
  stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream->close();
  std::lock_guard lock(state->mutex);
  state->streams.erase(stream);
}

asio::awaitable<void> accept_loop(std::shared_ptr<MetricsService::State> state) {
  AcceptBackoff backoff("metrics: accept");
  for (;;) {
    tcp::socket socket(asio::make_strand(state->ioc));
    error_code ec;
    co_await state->acceptor.async_accept(socket, ec_token(ec));
    if (state->stopping.load()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !state->acceptor.is_open()) co_return;
      // e.g. EMFILE: pause instead of spinning, one WARN per 10 s.
      co_await backoff.pause(state->acceptor.get_executor(), ec);
      continue;
    }
    backoff.succeeded();
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    {
      std::lock_guard lock(state->mutex);
      if (state->streams.size() >= state->options.max_connections) {
        log::debug("metrics: connection limit reached, closing a new connection");
        stream->close();
        continue;
      }
      state->streams.insert(stream);
    }
    asio::co_spawn(stream->get_executor(), serve(state, stream), asio::detached);
  }
}

}  // namespace

MetricsService::MetricsService(asio::io_context& ioc, MetricsServiceOptions options,
                               MetricsSources sources)
    : state_(std::make_shared<State>(ioc, std::move(options), std::move(sources))) {
  add_metrics_routes(state_->router, state_->sources);
}

MetricsService::~MetricsService() {
  stop();
}

void MetricsService::start() {
  auto& a = state_->acceptor;
  const tcp::endpoint ep = state_->options.bind;
  a.open(ep.protocol());
  a.set_option(asio::socket_base::reuse_address(true));
  if (ep.address().is_v6()) {
    error_code ignored;
    a.set_option(asio::ip::v6_only(false), ignored);
  }
  error_code ec;
  a.bind(ep, ec);
  if (ec) {
    throw boost::system::system_error(
        boost::system::error_code(ec.value(), ec.category()),
        "metrics_bind_addr: cannot bind tcp " + net::format_endpoint(ep));
  }
  a.listen(asio::socket_base::max_listen_connections);
  state_->bound = a.local_endpoint();
  // Stable format, parsed by tests and scripts.
  log::info("listening metrics on ", net::format_endpoint(*state_->bound));
  asio::co_spawn(a.get_executor(), accept_loop(state_), asio::detached);
}

void MetricsService::stop() {
  if (state_->stopping.exchange(true)) return;
  asio::post(state_->acceptor.get_executor(), [state = state_] {
    error_code ec;
    state->acceptor.close(ec);
  });
  std::lock_guard lock(state_->mutex);
  for (const auto& stream : state_->streams) {
    asio::post(stream->get_executor(), [stream] { stream->close(); });
  }
}

std::optional<tcp::endpoint> MetricsService::endpoint() const {
  return state_->bound;
}

namespace {

// Signed packets in the address-lookup store, asked at scrape time.
class LookupStoreCollector final : public prometheus::Collectable {
 public:
  explicit LookupStoreCollector(std::function<std::optional<std::size_t>()> size)
      : size_(std::move(size)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    const std::optional<std::size_t> size = size_();
    if (!size) return {};
    auto f = family("dns_server_store_packets", "Signed packets in the address-lookup store.",
                    prometheus::MetricType::Gauge);
    f.metric.push_back(gauge_sample(double(*size)));
    return {std::move(f)};
  }

 private:
  std::function<std::optional<std::size_t>()> size_;
};

}  // namespace

std::unique_ptr<MetricsService> make_metrics_service(
    const ServiceContext& ctx, const config::SocketAddr& bind_addr, const RelayMetrics& relay,
    std::function<RelayQueueDepth()> relay_queue_depth,
    std::function<std::optional<std::size_t>()> lookup_store_size) {
  auto registry = ctx.registry;
  prometheus::BuildGauge()
      .Name("iroh_relay_build_info")
      .Help("Build of the iroh-relay daemon (value 1).")
      .Register(*registry)
      .Add({{"version", IROH_RELAY_VERSION}})
      .Set(1);
  prometheus::BuildGauge()
      .Name("process_start_time_seconds")
      .Help("Start time of the process since the Unix epoch in seconds.")
      .Register(*registry)
      .Add({})
      .SetToCurrentTime();
  MetricsServiceOptions options;
  options.bind = resolve_bind_endpoint<tcp::endpoint>(bind_addr, "metrics_bind_addr");
  auto relay_collector =
      std::make_shared<RelayMetricsCollector>(relay, std::move(relay_queue_depth));
  MetricsSources sources{relay_collector, registry};
  if (lookup_store_size) {
    sources.push_back(std::make_shared<LookupStoreCollector>(std::move(lookup_store_size)));
  }
  return std::make_unique<MetricsService>(ctx.io, std::move(options), std::move(sources));
}

}  // namespace iroh::server
