#include "qad/qad_thread_service.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cmath>
#include <future>
#include <stdexcept>

#include "core/log.hpp"

namespace iroh::server {

std::pair<double, std::size_t> qad_new_connection_limit(const config::Limits& limits) {
  if (!limits.qad_new_conn_rate) return {0.0, 0};
  const double rate = *limits.qad_new_conn_rate;
  return {rate, limits.qad_new_conn_burst.value_or(
                    std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(rate))))};
}

std::pair<double, std::size_t> qad_per_source_limit(const config::Limits& limits) {
  if (!limits.qad_per_source_rate) return {0.0, 0};
  const double rate = *limits.qad_per_source_rate;
  return {rate, limits.qad_per_source_burst.value_or(
                    std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(2 * rate))))};
}

QadThreadService::QadThreadService(QadConfig config)
    : service_(std::make_unique<QadService>(io_, std::move(config))) {}

QadThreadService::~QadThreadService() {
  stop();
}

void QadThreadService::start() {
  service_->start();  // io_ is not running yet, so this thread may touch the service
  auto bound = service_->local_endpoint();
  const auto ip = bound.address();
  log::info("qad: listening on udp ", ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string(), ":",
            bound.port());
  work_.emplace(io_.get_executor());
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      log::error("qad: event loop ended: ", e.what());
    }
  });
}

void QadThreadService::reload_certificate(const std::string& cert_chain_pem,
                                          const std::string& key_pem) {
  std::string error;
  auto credentials = quic::ServerCredentials::from_pem({cert_chain_pem, key_pem}, error);
  if (!credentials) throw std::runtime_error("qad: certificate reload: " + error);
  if (!thread_.joinable()) {
    service_->set_credentials(std::move(credentials));
    return;
  }
  boost::asio::post(io_, [this, credentials = std::move(credentials)]() mutable {
    service_->set_credentials(std::move(credentials));
  });
  log::info("qad: certificate reloaded");
}

void QadThreadService::reload(const config::Config& next) {
  const auto [rate, burst] = qad_new_connection_limit(next.limits);
  const auto [source_rate, source_burst] = qad_per_source_limit(next.limits);
  auto apply = [this, rate, burst, source_rate, source_burst] {
    service_->set_new_connection_limit(rate, burst);
    service_->set_per_source_limit(source_rate, source_burst);
  };
  if (!thread_.joinable()) {
    apply();
    return;
  }
  boost::asio::post(io_, apply);
}

void QadThreadService::stop() {
  if (!thread_.joinable()) return;
  std::promise<void> stopped;
  boost::asio::post(io_, [this, &stopped] {
    service_->stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  work_.reset();
  io_.stop();
  thread_.join();
}

}  // namespace iroh::server
