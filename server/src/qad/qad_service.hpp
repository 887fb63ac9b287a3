// QUIC address discovery service (spec relay.md §7): a UDP socket, the QAD connections routed by
// connection ID, and one timer, all on one io_context (C++20 coroutines).
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/rate_limit.hpp"
#include "iroh/config.hpp"
#include "iroh/quic/connection.hpp"
#include "iroh/quic/tls.hpp"
#include "qad/qad_metrics.hpp"

namespace iroh::server {

struct QadConfig {
  boost::asio::ip::udp::endpoint bind_addr{boost::asio::ip::udp::v6(), config::kDefaultQuicPort};
  // Certificate: PEM files (the HTTPS certificate), or PEM text (e.g. the --dev self-signed one
  // from quic::generate_self_signed_certificate). PEM text wins when both are set.
  std::string cert_path;
  std::string key_path;
  std::optional<quic::PemCertificate> certificate_pem;
  std::size_t max_connections = 10000;
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds handshake_timeout{10000};
  // New connections per second (token bucket, `new_connection_burst` deep); 0 = unlimited.
  // Config keys limits.qad_new_conn_rate / limits.qad_new_conn_burst.
  double new_connection_rate = 0;
  std::size_t new_connection_burst = 0;
  // New connections per second from one source (IPv4 address, IPv6 /64), `..._burst` deep;
  // 0 = unlimited. Config keys limits.qad_per_source_rate / limits.qad_per_source_burst.
  double per_source_rate = 0;
  std::size_t per_source_burst = 0;
  // Where the metrics are registered (the daemon's registry); nullptr = a private one.
  std::shared_ptr<prometheus::Registry> metrics_registry;
  // Optional sink for one-line diagnostics.
  std::function<void(std::string_view)> log;
};

// Not thread-safe: construct, start(), stop() and destroy it on the thread that runs `io` (or
// while `io` is not running). metrics() may be read from any thread.
class QadService {
 public:
  QadService(boost::asio::io_context& io, QadConfig config);
  ~QadService();
  QadService(const QadService&) = delete;
  QadService& operator=(const QadService&) = delete;

  // Loads the certificate and binds the socket; throws std::runtime_error with a message a person
  // can act on.
  void start();
  // Closes every connection with application code 1 "finished" (spec §7.1), then the socket.
  void stop();
  boost::asio::ip::udp::endpoint local_endpoint() const;
  // New connections use this certificate chain and key from now on; established ones keep
  // theirs. Throws std::runtime_error (and keeps the old one) if the PEM data does not load.
  void reload_certificate(const std::string& cert_chain_pem, const std::string& key_pem);
  void set_credentials(std::shared_ptr<quic::ServerCredentials> credentials);
  // New connections per second and burst (rate 0 = unlimited), as QadConfig's fields.
  void set_new_connection_limit(double rate, std::size_t burst);
  // New connections per second and burst from one source (rate 0 = unlimited).
  void set_per_source_limit(double rate, std::size_t burst);
  const QadMetrics& metrics() const { return metrics_; }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  using ConnectionPtr = std::shared_ptr<quic::QadConnection>;

  boost::asio::awaitable<void> receive_loop();
  boost::asio::awaitable<void> timer_loop();
  void on_datagram(quic::ByteSpan datagram, const boost::asio::ip::udp::endpoint& from);
  void accept_initial(const quic::PacketHeader& header, quic::ByteSpan datagram,
                      const boost::asio::ip::udp::endpoint& from);
  // Sends what the connection has queued, reschedules its timer, forgets it once closed.
  void flush(const ConnectionPtr& connection);
  void send(const boost::asio::ip::udp::endpoint& to, quic::ByteSpan data);
  // Answers a 1-RTT packet of a connection we do not have (RFC 9000 §10.3).
  void send_stateless_reset(const quic::PacketHeader& header, std::size_t datagram_size,
                            const boost::asio::ip::udp::endpoint& to);
  void remove(const ConnectionPtr& connection);
  void log(std::string_view message) const;
  // The per-source and the global limit of new connections; true = this one may be created
  // (a drop is counted under its reason).
  bool admit_new_connection(const boost::asio::ip::udp::endpoint& from,
                            quic::Clock::time_point now);

  boost::asio::io_context& io_;
  QadConfig config_;
  std::shared_ptr<prometheus::Registry> registry_;
  QadMetrics metrics_;
  TokenBucket new_connections_;
  std::optional<PrefixRateLimiter> per_source_;  // unset = unlimited
  std::shared_ptr<quic::ServerCredentials> credentials_;
  quic::StatelessResetKey reset_key_{};  // random per process
  boost::asio::ip::udp::socket socket_;
  boost::asio::steady_timer timer_;
  bool running_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unordered_map<std::string, ConnectionPtr> by_cid_;  // original DCID and local CID
  std::map<quic::QadConnection*, ConnectionPtr> connections_;
  std::set<std::pair<quic::Clock::time_point, quic::QadConnection*>> deadlines_;
  std::map<quic::QadConnection*, quic::Clock::time_point> scheduled_;
  std::set<quic::QadConnection*> counted_established_;
};

}  // namespace iroh::server
