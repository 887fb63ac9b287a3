// Counters of the relay service, named like the reference's `relayserver` metrics group
// (spec relay.md §10). The hot path only does relaxed atomic increments here; the metrics
// listener (server/src/metrics/metrics_service.hpp) reads them at scrape time and prints them as
// relayserver_<name>_total, next to the families other services register in the daemon's shared
// prometheus::Registry. Plain atomics rather than prometheus::Counter: a relaxed fetch_add on
// uint64 costs 0.45-0.7x of prometheus-cpp 1.0's compare-exchange loop on an atomic<double>
// (1 and 2 threads, /tmp/h4/bench.cpp in the metrics helper's report).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace iroh::server {

using Counter = std::atomic<std::uint64_t>;

// A fixed-bucket histogram of durations, lock-free to observe; exported as a Prometheus
// histogram in seconds.
class DurationHistogram {
 public:
  // Upper bounds in seconds (the +Inf bucket is implicit).
  static constexpr std::array<double, 12> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1.0,  2.5,   10.0};

  void observe(std::chrono::steady_clock::duration d) {
    const double seconds = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    sum_ns_.fetch_add(ns > 0 ? std::uint64_t(ns) : 0, std::memory_order_relaxed);
  }

  struct Snapshot {
    std::array<std::uint64_t, kBounds.size() + 1> counts{};  // per bucket, not cumulative
    std::uint64_t count = 0;
    double sum_seconds = 0;
  };
  Snapshot snapshot() const {
    Snapshot s;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      s.counts[i] = buckets_[i].load(std::memory_order_relaxed);
      s.count += s.counts[i];
    }
    s.sum_seconds = double(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// Datagrams waiting in the per-client queues, summed over the connected clients (read at scrape
// time by walking the client registry).
struct RelayQueueDepth {
  std::size_t clients = 0;  // connections walked (active and inactive)
  std::size_t total = 0;    // datagrams queued over all of them
  std::size_t max = 0;      // the longest single queue
  std::size_t total_bytes = 0;  // datagram bytes queued over all of them
  std::size_t max_bytes = 0;    // the largest single queue, in bytes
};

// One relay mesh peer (issue 16, docs/mesh.md §7).
struct MeshPeerMetrics {
  explicit MeshPeerMetrics(std::string u) : url(std::move(u)) {}
  const std::string url;
  std::atomic<bool> up{false};     // the outgoing link is authenticated
  Counter forwarded_datagrams{0};  // datagrams sent to this peer
  Counter forwarded_bytes{0};      // their encoded relay frames, in bytes
  Counter link_full{0};            // datagrams dropped: the link's queue was full
  // Present frames for a new id dropped: the peer already announced mesh.max_remote_endpoints.
  Counter presence_dropped{0};
};

struct RelayMetrics {
  Counter bytes_sent{0};
  Counter bytes_recv{0};
  Counter send_packets_sent{0};
  Counter send_packets_recv{0};
  Counter send_packets_dropped{0};
  Counter other_packets_sent{0};
  Counter other_packets_recv{0};
  Counter other_packets_dropped{0};
  Counter got_ping{0};
  Counter sent_pong{0};
  Counter unknown_frames{0};
  Counter bytes_rx_ratelimited_total{0};
  Counter conns_rx_ratelimited_total{0};
  Counter accepts{0};
  Counter disconnects{0};
  Counter unique_client_keys{0};
  Counter clients_inactive_added{0};
  Counter clients_inactive_removed{0};
  Counter http_connections{0};
  Counter http_connections_closed{0};
  Counter http_connections_errored{0};

  // Not in the reference: datagrams dropped, by reason
  // (relayserver_packets_dropped_total{reason="..."}).
  Counter dropped_unknown_destination{0};  // dst not registered (also in send_packets_dropped)
  Counter dropped_queue_full{0};           // recipient's datagram queue full
  Counter dropped_total_queue_full{0};     // limits.total_queue_bytes reached (all clients)
  Counter dropped_write_error{0};          // recipient's connection failed with frames queued
  Counter dropped_rate_limited{0};         // frames discarded by the rx limiter (it normally
                                           // delays reading instead of dropping)
  Counter dropped_unencodable{0};          // empty or oversize datagram dropped at the sender
  Counter dropped_handoff_full{0};  // the recipient's worker's hand-off queue was full (issue 13)
  Counter dropped_mesh_down{0};     // dst known only at mesh peers whose links are down (issue 16)
  Counter dropped_mesh_link_full{0};  // the mesh link to dst's peer had a full queue (issue 16)

  // Not in the reference: connection-level outcomes.
  Counter denied{0};                // handshakes answered with ServerDeniesAuth
  Counter handshake_failures{0};    // connections dropped before ServerConfirmsAuth
  Counter connections_rejected{0};  // closed at accept because of limits.max_connections
  Counter malformed_frames{0};      // relay frames that failed to decode (client closed)
  Counter ping_timeouts{0};         // clients closed because a server Ping got no Pong
  Counter write_timeouts{0};        // clients closed because a write made no progress in time
  // Not in the reference: times a sender was read more slowly because its datagrams found a full
  // destination queue (TCP back-pressure instead of reading and dropping).
  Counter senders_throttled{0};
  Counter control_dropped{0};       // control frames dropped because the priority lane was full
  // TLS relay connections (issue 13): how the record stream ended when not with close_notify,
  // and how many handshakes got kernel TLS for sending / receiving.
  Counter tls_unexpected_eof{0};  // the peer closed TCP without close_notify
  Counter tls_errors{0};          // a TLS error, e.g. a record that failed (garbage, bad MAC)
  Counter tls_ktls_send{0};
  Counter tls_ktls_recv{0};

  // TCP accept to ServerConfirmsAuth written (TLS, HTTP upgrade, relay handshake, access check).
  DurationHistogram handshake_duration;

  // Gauges.
  std::atomic<std::int64_t> clients_connected{0};  // authenticated relay connections
  std::atomic<std::int64_t> open_connections{0};   // TCP connections on the relay listeners

  // Relay mesh (issue 16): one per configured peer, filled before the services start.
  std::vector<std::unique_ptr<MeshPeerMetrics>> mesh_peers;
  std::atomic<std::int64_t> mesh_remote_endpoints{0};  // endpoints known at peers
  Counter mesh_links_refused{0};                       // incoming links that failed authentication
};

}  // namespace iroh::server
