// Prometheus metrics of the QAD service, registered in the daemon's shared registry. The five
// connection counters carry the reference's names (spec relay.md §10, group `relayserver`); the
// rest are ours. Registering twice in one registry yields the same metrics (prometheus-cpp merges
// families), so several services may share them.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace iroh::server {

struct QadMetrics {
  explicit QadMetrics(prometheus::Registry& registry);

  // Spec §10.
  prometheus::Counter& incoming;             // an Initial created a connection
  prometheus::Counter& incoming_error;       // ended before the handshake completed
  prometheus::Counter& connections;          // handshake completed
  prometheus::Counter& connections_closed;   // ended after the handshake
  prometheus::Counter& connections_errored;  // ... with anything but application code 1
  // Ours.
  prometheus::Counter& observed_address_frames_sent;
  prometheus::Counter& version_negotiations_sent;
  prometheus::Counter& stateless_resets_sent;  // answers to 1-RTT packets of unknown connections
  prometheus::Gauge& open_connections;
  prometheus::Histogram& handshake_duration;  // seconds from the first Initial to completion

  // Datagrams dropped, by reason (label `reason`).
  struct Dropped {
    prometheus::Counter& undecodable;         // no QUIC header, or a Version Negotiation packet
    prometheus::Counter& unknown_connection;  // not an Initial and no connection has its DCID
    prometheus::Counter& small_initial;       // Initial (or unknown version) under 1200 bytes
    prometheus::Counter& unauthenticated;     // Initial that did not decrypt
    prometheus::Counter& connection_limit;    // Initial over max_connections
    prometheus::Counter& rate_limited;        // Initial over the new-connection rate
    prometheus::Counter& source_rate_limited;  // Initial over its source's new-connection rate
    prometheus::Counter& send_failed;         // a datagram the socket refused
  } dropped;
  double dropped_total() const;
};

}  // namespace iroh::server
