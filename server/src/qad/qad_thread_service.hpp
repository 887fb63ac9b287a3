// Runs a QadService as a daemon Service. QadService is single-threaded by design (its connection
// table and timer set are touched without locks), while the daemon's io_context runs one thread
// per core; so QAD gets an io_context and a thread of its own. Its traffic is a handful of small
// packets per endpoint every few minutes, far from needing more.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "iroh/server/service.hpp"
#include "qad/qad_service.hpp"

namespace iroh::server {

// limits.qad_new_conn_rate / limits.qad_new_conn_burst as QadConfig's new_connection_rate and
// new_connection_burst (rate 0 = unlimited; burst defaults to the rate rounded up).
std::pair<double, std::size_t> qad_new_connection_limit(const config::Limits& limits);
// limits.qad_per_source_rate / limits.qad_per_source_burst as QadConfig's per_source_rate and
// per_source_burst (rate 0 = unlimited; burst defaults to twice the rate rounded up).
std::pair<double, std::size_t> qad_per_source_limit(const config::Limits& limits);

class QadThreadService final : public Service {
 public:
  explicit QadThreadService(QadConfig config);
  ~QadThreadService() override;

  std::string_view name() const override { return "qad"; }
  // Loads the certificate and binds on the caller's thread (errors surface as exceptions at
  // start-up), then hands the socket to the QAD thread.
  void start() override;
  // Closes every connection with code 1 "finished" and joins the thread.
  void stop() override;

  boost::asio::ip::udp::endpoint local_endpoint() const { return service_->local_endpoint(); }
  const QadMetrics& metrics() const { return service_->metrics(); }
  // Thread-safe. Loads the PEM certificate chain and key on the caller's thread (throws
  // std::runtime_error and keeps the old certificate if they do not load), then hands them to the
  // QAD thread: handshakes that start afterwards use them, open connections are unaffected.
  void reload_certificate(const std::string& cert_chain_pem, const std::string& key_pem) override;
  // SIGHUP: applies limits.qad_new_conn_rate / qad_new_conn_burst (other QAD settings need a
  // restart).
  void reload(const config::Config& next) override;

 private:
  boost::asio::io_context io_{1};
  std::unique_ptr<QadService> service_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace iroh::server
