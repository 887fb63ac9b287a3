// Counters of the relay service, named like the reference's `relayserver` metrics group
// (spec relay.md §10) so an exporter can print them as relayserver_<name>_total.
#pragma once

#include <atomic>
#include <cstdint>

namespace iroh::server {

using Counter = std::atomic<std::uint64_t>;

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

  // Not in the reference: datagrams dropped, by reason.
  Counter dropped_unknown_destination{0};  // dst not registered (also in send_packets_dropped)
  Counter dropped_queue_full{0};           // recipient's datagram queue full
  Counter dropped_write_error{0};          // recipient's connection failed with frames queued
  Counter dropped_rate_limited{0};         // reserved: frames discarded by the rx limiter
  Counter dropped_unencodable{0};          // empty or oversize datagram dropped at the sender

  // Not in the reference: connection-level outcomes.
  Counter denied{0};                // handshakes answered with ServerDeniesAuth
  Counter handshake_failures{0};    // connections dropped before ServerConfirmsAuth
  Counter connections_rejected{0};  // closed at accept because of limits.max_connections
  Counter malformed_frames{0};      // relay frames that failed to decode (client closed)
  Counter ping_timeouts{0};         // clients closed because a server Ping got no Pong
  Counter write_timeouts{0};        // clients closed because one frame write took too long
  Counter control_dropped{0};       // control frames dropped because the priority lane was full

  // Gauges.
  std::atomic<std::int64_t> clients_connected{0};  // authenticated relay connections
  std::atomic<std::int64_t> open_connections{0};   // TCP connections on the relay listeners
};

}  // namespace iroh::server
