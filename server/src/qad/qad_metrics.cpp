#include "qad/qad_metrics.hpp"

#include <string>

#include "core/metric.hpp"

namespace iroh::server {
namespace {

using metric::counter;

prometheus::Counter& dropped_counter(prometheus::Registry& registry, const std::string& reason) {
  return counter(registry, "relayserver_qad_datagrams_dropped_total",
                 "Number of UDP datagrams the QAD service dropped, by reason.",
                 {{"reason", reason}});
}

}  // namespace

QadMetrics::QadMetrics(prometheus::Registry& registry)
    : incoming(counter(registry, "relayserver_qad_incoming_total",
                       "Number of incoming QAD connections.")),
      incoming_error(
          counter(registry, "relayserver_qad_incoming_error_total",
                  "Number of QAD QUIC connections that aborted before completing the handshake.")),
      connections(counter(registry, "relayserver_qad_connections_total",
                          "Number of accepted QAD QUIC connections.")),
      connections_closed(
          counter(registry, "relayserver_qad_connections_closed_total",
                  "Number of QAD QUIC connections that disconnected after being accepted.")),
      connections_errored(counter(registry, "relayserver_qad_connections_errored_total",
                                  "Number of QAD QUIC connections that disconnected after being "
                                  "accepted, with an error.")),
      observed_address_frames_sent(
          counter(registry, "relayserver_qad_observed_address_frames_sent_total",
                  "Number of OBSERVED_ADDRESS frames sent by the QAD service.")),
      version_negotiations_sent(
          counter(registry, "relayserver_qad_version_negotiations_sent_total",
                  "Number of QUIC Version Negotiation packets sent by the QAD service.")),
      stateless_resets_sent(counter(registry, "relayserver_qad_stateless_resets_sent_total",
                                    "Number of QUIC Stateless Resets sent by the QAD service.")),
      open_connections(metric::gauge(registry, "relayserver_qad_open_connections",
                                     "QAD QUIC connections open now, handshaking or established.")),
      // Loopback handshakes take ~1 ms; real clients an RTT or two plus signing.
      handshake_duration(
          metric::histogram(registry, "relayserver_qad_handshake_duration_seconds",
                            "Time from a QAD client's first Initial to handshake completion.",
                            {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5})),
      dropped{dropped_counter(registry, "undecodable"),
              dropped_counter(registry, "unknown_connection"),
              dropped_counter(registry, "small_initial"),
              dropped_counter(registry, "unauthenticated"),
              dropped_counter(registry, "connection_limit"),
              dropped_counter(registry, "rate_limited"),
              dropped_counter(registry, "source_rate_limited"),
              dropped_counter(registry, "send_failed")} {}

double QadMetrics::dropped_total() const {
  return dropped.undecodable.Value() + dropped.unknown_connection.Value() +
         dropped.small_initial.Value() + dropped.unauthenticated.Value() +
         dropped.connection_limit.Value() + dropped.rate_limited.Value() +
         dropped.source_rate_limited.Value() + dropped.send_failed.Value();
}

}  // namespace iroh::server
