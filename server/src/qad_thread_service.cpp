#include "qad_thread_service.hpp"

#include <boost/asio/post.hpp>
#include <future>

#include "log.hpp"

namespace iroh::server {

QadThreadService::QadThreadService(QadConfig config)
    : service_(std::make_unique<QadService>(io_, std::move(config))) {}

QadThreadService::~QadThreadService() { stop(); }

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
