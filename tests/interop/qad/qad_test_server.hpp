// Test fixture: a QadService on loopback (ephemeral port) running on its own io_context thread,
// with a P-256 certificate made by the openssl command line tool in a temporary directory.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "qad/qad_service.hpp"

namespace qad_test {

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// A temporary directory holding cert.pem / key.pem for CN=localhost (SAN localhost, 127.0.0.1).
class TestCertificate {
 public:
  TestCertificate() {
    char pattern[] = "/tmp/qad-test-XXXXXX";
    const char* created = mkdtemp(pattern);
    if (created == nullptr) return;
    dir_ = created;
    const std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
        key_path() + " -out " + cert_path() + " >/dev/null 2>&1";
    ok_ = std::system(command.c_str()) == 0;
  }
  ~TestCertificate() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  bool ok() const { return ok_; }
  std::string cert_path() const { return (dir_ / "cert.pem").string(); }
  std::string key_path() const { return (dir_ / "key.pem").string(); }

 private:
  std::filesystem::path dir_;
  bool ok_ = false;
};

class QadTestServer {
 public:
  // `bind_address`: "127.0.0.1", "::1", or "::" (dual-stack); the port is always ephemeral.
  explicit QadTestServer(const TestCertificate& certificate,
                         iroh::server::QadConfig config = iroh::server::QadConfig{},
                         const std::string& bind_address = "127.0.0.1") {
    config.bind_addr = {boost::asio::ip::make_address(bind_address), 0};
    config.cert_path = certificate.cert_path();
    config.key_path = certificate.key_path();
    service_ = std::make_unique<iroh::server::QadService>(io_, std::move(config));
    service_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~QadTestServer() {
    stop();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  // Runs `f` on the service's thread and returns its result.
  template <class F>
  auto call(F f) -> decltype(f()) {
    std::promise<decltype(f())> promise;
    auto future = promise.get_future();
    boost::asio::post(io_, [&] { promise.set_value(f()); });
    return future.get();
  }
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    call([this] {
      service_->stop();
      return 0;
    });
  }
  // QadService::reload_certificate on the service's thread; returns its error text ("" = ok).
  std::string reload_certificate(const std::string& cert_pem, const std::string& key_pem) {
    return call([&]() -> std::string {
      try {
        service_->reload_certificate(cert_pem, key_pem);
        return {};
      } catch (const std::exception& e) {
        return e.what();
      }
    });
  }
  void set_new_connection_limit(double rate, std::size_t burst) {
    call([&] {
      service_->set_new_connection_limit(rate, burst);
      return 0;
    });
  }
  void set_per_source_limit(double rate, std::size_t burst) {
    call([&] {
      service_->set_per_source_limit(rate, burst);
      return 0;
    });
  }
  std::uint16_t port() const { return service_->local_endpoint().port(); }
  const iroh::server::QadMetrics& metrics() const { return service_->metrics(); }
  std::size_t connection_count() {
    return call([this] { return service_->connection_count(); });
  }

 private:
  boost::asio::io_context io_;
  // Keeps io_.run() going after the service stops, so call() works until destruction.
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  bool stopped_ = false;
  std::unique_ptr<iroh::server::QadService> service_;
  std::thread thread_;
};

}  // namespace qad_test
