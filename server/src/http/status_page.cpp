#include "http/status_page.hpp"

#include <prometheus/metric_family.h>

#include <boost/asio/awaitable.hpp>
#include <cmath>
#include <cstdio>
#include <map>

namespace iroh::server {

namespace {

namespace asio = boost::asio;

// The reference's index page (relay.md §2.2), exact bytes; the status section follows it.
constexpr std::string_view kIndexHtml =
    "<html><body>\n"
    "<h1>Iroh Relay</h1>\n"
    "<p>\n"
    "  This is an <a href=\"https://iroh.computer/\">Iroh</a> Relay server.\n"
    "</p>\n";

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_uptime(std::chrono::seconds uptime) {
  auto s = uptime.count();
  char text[64];
  std::snprintf(text, sizeof text, "%lldd %02lldh %02lldm %02llds",
                static_cast<long long>(s / 86400), static_cast<long long>(s / 3600 % 24),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return text;
}

// 1234567 -> "1.2 MB" next to the exact number.
std::string format_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double value = double(bytes);
  std::size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", value, kUnits[unit]);
  return text;
}

std::string format_number(double value) {
  char text[64];
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(text, sizeof text, "%.0f", value);
  } else {
    std::snprintf(text, sizeof text, "%g", value);
  }
  return text;
}

void row(std::string& html, std::string_view name, std::string_view value) {
  html += "<tr><th align=\"left\">";
  html += escape_html(name);
  html += "</th><td>";
  html += escape_html(value);
  html += "</td></tr>\n";
}

std::uint64_t load(const Counter& c) {
  return c.load(std::memory_order_relaxed);
}

// Counter and gauge families of the registry, each summed over its label sets.
std::map<std::string, double> registry_totals(prometheus::Registry& registry) {
  std::map<std::string, double> totals;
  for (const auto& family : registry.Collect()) {
    double sum = 0;
    bool numeric = true;
    for (const auto& m : family.metric) {
      switch (family.type) {
        case prometheus::MetricType::Counter:
          sum += m.counter.value;
          break;
        case prometheus::MetricType::Gauge:
          sum += m.gauge.value;
          break;
        case prometheus::MetricType::Untyped:
          sum += m.untyped.value;
          break;
        default:
          numeric = false;
      }
    }
    // The build and start time are on the page already.
    if (family.name == "iroh_relay_build_info" || family.name == "process_start_time_seconds") {
      continue;
    }
    if (numeric && !family.metric.empty()) totals[family.name] = sum;
  }
  return totals;
}

// The sections of the page, in order. Each writes one <h2> and its table, or nothing when its
// service is not in this daemon.

void render_status_section(std::string& html, std::chrono::steady_clock::time_point started) {
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
  html += "<h2>Status</h2>\n<table>\n";
  row(html, "version", IROH_RELAY_VERSION);
  row(html, "uptime", format_uptime(uptime) + " (" + std::to_string(uptime.count()) + " s)");
  html += "</table>\n";
}

void render_services_section(std::string& html, const config::Config& c) {
  html += "<h2>Services</h2>\n<table>\n";
  // On/off only: the page is public, the bind addresses stay private.
  auto service = [&html](std::string_view name, bool on) { row(html, name, on ? "on" : "off"); };
  service("relay", c.enable_relay);
  service("STUN", c.stun.enabled);
  service("QAD (QUIC address discovery)", c.enable_quic_addr_discovery);
  service("pkarr (address lookup HTTP API)", c.pkarr.enabled);
  service("DNS and DoH (address lookup)", c.dns.enabled);
  service("metrics", c.enable_metrics);
  html += "</table>\n";
}

void render_relay_section(std::string& html, const RelayMetrics& m) {
  html += "<h2>Relay</h2>\n<table>\n";
  const auto inactive = load(m.clients_inactive_added) -
                        std::min(load(m.clients_inactive_added), load(m.clients_inactive_removed));
  row(html, "clients connected",
      std::to_string(m.clients_connected.load(std::memory_order_relaxed)) + " (" +
          std::to_string(inactive) + " inactive duplicates)");
  row(html, "open connections", std::to_string(m.open_connections.load(std::memory_order_relaxed)));
  row(html, "clients accepted", std::to_string(load(m.accepts)));
  row(html, "bytes received",
      format_bytes(load(m.bytes_recv)) + " (" + std::to_string(load(m.bytes_recv)) + ")");
  row(html, "bytes sent",
      format_bytes(load(m.bytes_sent)) + " (" + std::to_string(load(m.bytes_sent)) + ")");
  row(html, "datagrams received", std::to_string(load(m.send_packets_recv)));
  row(html, "datagrams relayed", std::to_string(load(m.send_packets_sent)));
  row(html, "datagrams dropped",
      std::to_string(load(m.dropped_unknown_destination) + load(m.dropped_queue_full) +
                     load(m.dropped_total_queue_full) + load(m.dropped_write_error) +
                     load(m.dropped_rate_limited) + load(m.dropped_unencodable) +
                     load(m.dropped_handoff_full) + load(m.dropped_mesh_down) +
                     load(m.dropped_mesh_link_full)));
  row(html, "handshakes denied", std::to_string(load(m.denied)));
  html += "</table>\n";
}

// Issue 16 (docs/mesh.md §7): one row per mesh peer.
void render_mesh_section(std::string& html, const RelayMetrics& m) {
  html += "<h2>Mesh</h2>\n<table>\n";
  row(html, "remote endpoints known",
      std::to_string(m.mesh_remote_endpoints.load(std::memory_order_relaxed)));
  row(html, "datagrams dropped (mesh down)", std::to_string(load(m.dropped_mesh_down)));
  for (const auto& p : m.mesh_peers) {
    row(html, "peer " + p->url,
        std::string(p->up.load(std::memory_order_relaxed) ? "up" : "down") + ", " +
            std::to_string(load(p->forwarded_datagrams)) + " datagrams / " +
            format_bytes(load(p->forwarded_bytes)) + " forwarded" +
            (load(p->presence_dropped) ? ", " + std::to_string(load(p->presence_dropped)) +
                                             " announcements over the limit dropped"
                                       : std::string()));
  }
  html += "</table>\n";
}

void render_lookup_section(std::string& html,
                           const std::function<std::optional<std::size_t>()>& store_size) {
  html += "<h2>Address lookup</h2>\n<table>\n";
  const std::optional<std::size_t> size = store_size();
  row(html, "signed packets stored", size ? std::to_string(*size) : std::string("unavailable"));
  html += "</table>\n";
}

// The families other services registered (STUN, QAD, lookup, ...), one total each.
void render_registry_section(std::string& html, prometheus::Registry& registry) {
  const auto totals = registry_totals(registry);
  if (totals.empty()) return;
  html += "<h2>Other services</h2>\n<table>\n";
  for (const auto& [name, value] : totals) row(html, name, format_number(value));
  html += "</table>\n";
}

}  // namespace

std::string render_status_page(const StatusPageSources& sources) {
  std::string html(kIndexHtml);
  render_status_section(html, sources.started);
  if (sources.config) render_services_section(html, *sources.config);
  if (sources.relay) {
    render_relay_section(html, *sources.relay);
    if (!sources.relay->mesh_peers.empty()) render_mesh_section(html, *sources.relay);
  }
  if (sources.lookup_store_size) render_lookup_section(html, sources.lookup_store_size);
  if (sources.registry) render_registry_section(html, *sources.registry);
  html += "<p>Prometheus metrics are served on the metrics listener at /metrics.</p>\n";
  html += "</body></html>\n";
  return html;
}

std::string render_healthz(std::chrono::steady_clock::duration uptime,
                           std::optional<std::string_view> store) {
  // The relay answering is what `status` reports; a degraded lookup store is its own field, so a
  // full data disk does not get the relay taken out of a load balancer.
  std::string out =
      "{\"status\":\"ok\",\"version\":\"" IROH_RELAY_VERSION
      "\",\"git_hash\":\"unknown\",\"uptime_secs\":" +
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(uptime).count());
  if (store) out += ",\"store\":\"" + std::string(*store) + "\"";
  return out + "}";
}

void add_status_routes(HttpRouter& router, StatusPageSources sources) {
  add_status_routes(router, std::make_shared<const StatusPageSources>(std::move(sources)));
}

void add_status_routes(HttpRouter& router, std::shared_ptr<const StatusPageSources> shared) {
  auto index = [shared](const HttpRequest& req,
                        const RequestInfo&) -> asio::awaitable<HttpResponse> {
    co_return make_response(req, http::status::ok, render_status_page(*shared),
                            "text/html; charset=utf-8");
  };
  router.add(http::verb::get, "/", index);
  router.add(http::verb::get, "/index.html", index);
  router.add(http::verb::get, "/healthz",
             [shared](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
               co_return make_response(
                   req, http::status::ok,
                   render_healthz(std::chrono::steady_clock::now() - shared->started,
                                  shared->lookup_store_health ? std::optional<std::string_view>(
                                                                    shared->lookup_store_health())
                                                              : std::nullopt),
                   "application/json");
             });
}

}  // namespace iroh::server
