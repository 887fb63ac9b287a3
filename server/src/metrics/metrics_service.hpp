// The metrics listener: plain HTTP/1.1 on metrics_bind_addr, `GET /metrics` answers the
// Prometheus text format (0.0.4) of the daemon's shared prometheus::Registry and of the relay's
// atomic counters (RelayMetricsCollector, read at scrape time); every other request gets 404.
// Connections are bounded in number and each request in time.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "iroh/config.hpp"
#include "iroh/server/metrics.hpp"
#include "iroh/server/service.hpp"

namespace iroh::server {

// RelayMetrics as Prometheus families: the counters of relay.md §10 under their reference names
// (relayserver_<name>_total), drops by reason, the handshake histogram and the gauges (clients
// connected / active / inactive, open connections, queued datagrams).
class RelayMetricsCollector final : public prometheus::Collectable {
 public:
  // `queue_depth` may be empty (no queue gauges then).
  RelayMetricsCollector(const RelayMetrics& metrics, std::function<RelayQueueDepth()> queue_depth);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const RelayMetrics& metrics_;
  std::function<RelayQueueDepth()> queue_depth_;
};

using MetricsSources = std::vector<std::shared_ptr<const prometheus::Collectable>>;

// The Prometheus text format of every source, in order.
std::string serialize_metrics(const MetricsSources& sources);

struct MetricsServiceOptions {
  boost::asio::ip::tcp::endpoint bind;
  std::size_t max_connections = 64;                  // further connections are closed at accept
  std::chrono::milliseconds request_timeout{10000};  // reading a request (incl. keep-alive idle)
                                                     // and writing its response
};

class MetricsService final : public Service {
 public:
  MetricsService(boost::asio::io_context& ioc, MetricsServiceOptions options,
                 MetricsSources sources);
  ~MetricsService() override;

  std::string_view name() const override { return "metrics"; }
  // Binds and starts accepting; throws boost::system::system_error on bind errors.
  void start() override;
  void stop() override;
  // The bound address (after start()).
  std::optional<boost::asio::ip::tcp::endpoint> endpoint() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// The daemon's metrics listener on `bind_addr` (config metrics_bind_addr): ctx.registry (plus a
// build-info gauge and the process start time registered there), the relay's `relay` counters
// with `relay_queue_depth` read at scrape time and, when `lookup_store_size` is given, the gauge
// dns_server_store_packets read at scrape time. Built by wiring.cpp; takes no Daemon& so that
// the metrics service sits below the daemon (issue 14).
std::unique_ptr<MetricsService> make_metrics_service(
    const ServiceContext& ctx, const config::SocketAddr& bind_addr, const RelayMetrics& relay,
    std::function<RelayQueueDepth()> relay_queue_depth,
    std::function<std::optional<std::size_t>()> lookup_store_size = {});

}  // namespace iroh::server
