#include "iroh/server/daemon.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "log.hpp"
#include "relay_service.hpp"

namespace iroh::server {

namespace asio = boost::asio;

struct Daemon::Impl {
  // Declared before io_context: handlers still queued when the io_context is destroyed refer to
  // them.
  config::Config config;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  RelayMetrics metrics;
  unsigned thread_count;
  asio::io_context ioc;
  std::unique_ptr<RelayService> relay;
  std::vector<std::unique_ptr<Service>> services;
  std::vector<std::thread> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  bool started = false;
  bool stopped = false;

  Impl(config::Config c, unsigned threads)
      : config(std::move(c)),
        thread_count(threads ? threads : std::max(1u, std::thread::hardware_concurrency())),
        ioc(int(thread_count)) {}
};

Daemon::Daemon(config::Config config, unsigned threads)
    : impl_(std::make_unique<Impl>(std::move(config), threads)) {
  impl_->relay = std::make_unique<RelayService>(impl_->config, impl_->metrics);
}

Daemon::~Daemon() {
  stop();
  impl_->relay.reset();
  impl_->services.clear();
}

HttpRouter& Daemon::router() {
  return impl_->relay->router();
}

void Daemon::add_service(std::unique_ptr<Service> service) {
  impl_->services.push_back(std::move(service));
}

void Daemon::start() {
  auto& d = *impl_;
  if (d.started) return;
  d.started = true;
  d.work.emplace(d.ioc.get_executor());
  d.relay->start(d.ioc);
  for (auto& s : d.services) {
    log::info("starting ", s->name());
    s->start();
  }
  for (unsigned i = 0; i < d.thread_count; ++i) {
    d.threads.emplace_back([&d] {
      for (;;) {
        try {
          d.ioc.run();
          return;
        } catch (const std::exception& e) {
          log::error("unhandled exception in event loop: ", e.what());
        }
      }
    });
  }
}

void Daemon::wait() {
  std::unique_lock lock(impl_->stop_mutex);
  impl_->stop_cv.wait(lock, [&] { return impl_->stop_requested; });
}

void Daemon::request_stop() {
  {
    std::lock_guard lock(impl_->stop_mutex);
    impl_->stop_requested = true;
  }
  impl_->stop_cv.notify_all();
}

void Daemon::stop() {
  auto& d = *impl_;
  if (!d.started || d.stopped) return;
  d.stopped = true;
  request_stop();
  for (auto it = d.services.rbegin(); it != d.services.rend(); ++it) (*it)->stop();
  d.relay->stop();
  // Let connections close on their own strands before the loop stops (bounded).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (d.relay->open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  d.work.reset();
  d.ioc.stop();
  for (auto& t : d.threads) t.join();
  d.threads.clear();
}

std::optional<asio::ip::tcp::endpoint> Daemon::http_endpoint() const {
  return impl_->relay->http_endpoint();
}
std::optional<asio::ip::tcp::endpoint> Daemon::https_endpoint() const {
  return impl_->relay->https_endpoint();
}
const config::Config& Daemon::config() const {
  return impl_->config;
}
asio::io_context& Daemon::io_context() {
  return impl_->ioc;
}
RelayMetrics& Daemon::metrics() {
  return impl_->metrics;
}
std::shared_ptr<prometheus::Registry> Daemon::metrics_registry() {
  return impl_->registry;
}
std::size_t Daemon::client_count() const {
  return impl_->relay->client_count();
}

}  // namespace iroh::server
