// Runs a QadService as a daemon Service. QadService is single-threaded by design (its connection
// table and timer set are touched without locks), while the daemon's io_context runs one thread
// per core; so QAD gets an io_context and a thread of its own. Its traffic is a handful of small
// packets per endpoint every few minutes, far from needing more.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <thread>

#include "iroh/server/daemon.hpp"
#include "qad/qad_service.hpp"

namespace iroh::server {

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
  const QadCounters& counters() const { return service_->counters(); }

 private:
  boost::asio::io_context io_{1};
  std::unique_ptr<QadService> service_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace iroh::server
