#include "lookup/lookup_metrics.hpp"

#include <string>

#include "core/metric.hpp"

namespace iroh::server {
namespace {

// iroh-dns-server's names: dns_server_<field>_total for counters, dns_server_<field> for gauges.
prometheus::Counter& counter(prometheus::Registry& registry, const std::string& field,
                             const std::string& help) {
  return metric::counter(registry, "dns_server_" + field + "_total", help);
}

prometheus::Gauge& gauge(prometheus::Registry& registry, const std::string& field,
                         const std::string& help) {
  return metric::gauge(registry, "dns_server_" + field, help);
}

using metric::histogram;

}  // namespace

LookupMetrics::LookupMetrics(prometheus::Registry& r)
    : pkarr_publish_update(counter(r, "pkarr_publish_update",
                                   "Number of pkarr relay puts that updated the stored packet")),
      pkarr_publish_noop(
          counter(r, "pkarr_publish_noop",
                  "Number of pkarr relay puts that did not change the stored packet")),
      dns_requests(
          counter(r, "dns_requests", "Total number of DNS requests across all transports")),
      dns_requests_udp(counter(r, "dns_requests_udp", "Number of DNS requests received over UDP")),
      dns_requests_https(
          counter(r, "dns_requests_https", "Number of DNS requests received over HTTPS (DoH)")),
      dns_lookup_success(counter(r, "dns_lookup_success",
                                 "Number of DNS lookups that returned at least one answer")),
      dns_lookup_notfound(counter(
          r, "dns_lookup_notfound",
          "Number of DNS lookups that returned no answers (NOERROR/0 answers or NXDOMAIN)")),
      dns_lookup_error(
          counter(r, "dns_lookup_error",
                  "Number of DNS lookups that failed with an error (any other RCODE)")),
      http_requests(
          counter(r, "http_requests", "Number of HTTP requests served (matched routes only)")),
      http_requests_success(counter(r, "http_requests_success",
                                    "Number of HTTP requests that returned a 2xx status code")),
      http_requests_error(counter(r, "http_requests_error",
                                  "Number of HTTP requests that returned a non-2xx status code")),
      http_requests_duration_ms(
          counter(r, "http_requests_duration_ms",
                  "Cumulative duration of all HTTP requests, in milliseconds")),
      store_packets_inserted(counter(r, "store_packets_inserted",
                                     "Number of signed packets newly inserted into the store")),
      store_packets_removed(counter(r, "store_packets_removed",
                                    "Number of signed packets removed from the store (always 0)")),
      store_packets_updated(
          counter(r, "store_packets_updated",
                  "Number of times an existing signed packet was replaced by a newer one")),
      store_packets_expired(counter(r, "store_packets_expired",
                                    "Number of signed packets removed by the eviction task")),
      cache_zones(gauge(r, "cache_zones", "Current number of zones in the main cache")),
      cache_zones_dht(gauge(r, "cache_zones_dht", "Current number of zones in the DHT cache")),
      pkarr_put_duration(histogram(
          r, "dns_server_pkarr_put_duration_seconds",
          "Time from a complete PUT /pkarr request to its response, in seconds",
          {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1})),
      dns_answer_duration(
          histogram(r, "dns_server_dns_answer_duration_seconds",
                    "Time from a parsed DNS query to its encoded answer, in seconds",
                    {kDnsAnswerDurationBuckets.begin(), kDnsAnswerDurationBuckets.end()})),
      store_errors(
          counter(r, "store_errors", "Number of store operations (open, read, write) that failed")),
      store_degraded(gauge(r, "store_degraded",
                           "Store state: 0 ok, 1 degraded (read-only or writes failing), "
                           "2 unavailable")),
      store_reconnects(counter(r, "store_reconnects",
                               "Number of times the store's database connection (PostgreSQL "
                               "backend) was re-established after it was lost")) {}

}  // namespace iroh::server
