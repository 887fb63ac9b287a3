// Metrics of the address lookup services (pkarr HTTP API, DNS, DoH), named like iroh-dns-server's
// `dns_server` group (spec address-lookup.md §9): counters dns_server_<field>_total, gauges
// dns_server_<field>, help texts as in the reference. One instance, created next to the store in
// main.cpp and shared by the pkarr HTTP handlers and the DNS/DoH service. prometheus-cpp metrics
// are thread-safe, so the members are used from any thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>

namespace iroh::server {

// Upper bounds (seconds) of dns_server_dns_answer_duration_seconds; DnsHandler::Tally counts
// into the same buckets.
inline constexpr std::array<double, 13> kDnsAnswerDurationBuckets = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.0025,  0.005,    0.01,    0.025,  0.05,    0.1};

struct LookupMetrics {
  explicit LookupMetrics(prometheus::Registry& registry);
  LookupMetrics(const LookupMetrics&) = delete;
  LookupMetrics& operator=(const LookupMetrics&) = delete;

  prometheus::Counter& pkarr_publish_update;
  prometheus::Counter& pkarr_publish_noop;
  prometheus::Counter& dns_requests;
  prometheus::Counter& dns_requests_udp;
  prometheus::Counter& dns_requests_https;
  prometheus::Counter& dns_lookup_success;
  prometheus::Counter& dns_lookup_notfound;
  prometheus::Counter& dns_lookup_error;
  prometheus::Counter& http_requests;
  prometheus::Counter& http_requests_success;
  prometheus::Counter& http_requests_error;
  prometheus::Counter& http_requests_duration_ms;
  prometheus::Counter& store_packets_inserted;
  prometheus::Counter& store_packets_removed;
  prometheus::Counter& store_packets_updated;
  prometheus::Counter& store_packets_expired;
  prometheus::Gauge& cache_zones;
  prometheus::Gauge& cache_zones_dht;

  // Not in the reference: PUT /pkarr latency (receipt of the body to durable store) and DNS
  // answer latency (query parsed to response encoded), in seconds.
  prometheus::Histogram& pkarr_put_duration;
  prometheus::Histogram& dns_answer_duration;
  // Not in the reference (issue 19 item 3): store calls that failed (open, read or write), and
  // the store's state: 0 ok, 1 degraded (read-only, or writes failing, e.g. a full disk),
  // 2 unavailable (not open).
  prometheus::Counter& store_errors;
  prometheus::Gauge& store_degraded;
  // Issue 15: PostgreSQL connections re-established after a loss (LISTEN or statement pool).
  prometheus::Counter& store_reconnects;
};

}  // namespace iroh::server
