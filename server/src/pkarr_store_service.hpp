// The address lookup store as a daemon service: opens the one SQLite PkarrStore shared by the
// pkarr HTTP API and the DNS server (creating the data directory), owns the LookupMetrics, runs
// the periodic eviction (spec address-lookup.md §7.2) on the io_context, and runs the store's
// blocking calls on a small thread pool so that no io_context thread waits for SQLite.
//
//   auto lookup = std::make_unique<PkarrStoreService>(daemon.io_context(), config,
//                                                     *daemon.metrics_registry());
//   PkarrStoreService& store = *lookup;                // stays valid while the daemon lives
//   daemon.add_service(std::move(lookup));
//   auto result = co_await store.async_put(packet);    // from any coroutine
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>

#include "iroh/config.hpp"
#include "iroh/server/daemon.hpp"
#include "lookup_metrics.hpp"
#include "pkarr_store.hpp"

namespace iroh::server {

class PkarrStoreService final : public Service {
 public:
  // Creates config.data_dir and the store's directory and opens the store; throws
  // std::runtime_error naming the path on failure.
  PkarrStoreService(boost::asio::io_context& ioc, const config::Config& config,
                    prometheus::Registry& registry);
  ~PkarrStoreService() override;

  std::string_view name() const override { return "pkarr store"; }
  // Starts the eviction timer (first run right away, then every eviction_interval).
  void start() override;
  // Stops the eviction timer and waits for store calls in flight (each bounded by SQLite's busy
  // timeout). Every acknowledged PUT is already durable; the database file is closed when the
  // last owner of store() lets go of it.
  void stop() override;

  std::shared_ptr<PkarrStore> store() const { return store_; }
  LookupMetrics& metrics() { return metrics_; }

  // The store's blocking calls run on the store thread pool; the coroutine resumes on its own
  // executor. Concurrent puts share one SQLite transaction (group commit), and the result is only
  // delivered once the write is durable. Counts store_packets_inserted / _updated.
  boost::asio::awaitable<PkarrPutResult> async_put(pkarr::SignedPacket packet);
  boost::asio::awaitable<PkarrGetResult> async_get(pkarr::PublicKey key);

  // One eviction pass now (what the timer runs); returns the number of packets removed.
  boost::asio::awaitable<std::size_t> evict_now();

 private:
  boost::asio::awaitable<void> eviction_loop();

  std::chrono::seconds eviction_age_;
  std::chrono::seconds eviction_interval_;
  LookupMetrics metrics_;
  std::shared_ptr<PkarrStore> store_;
  // Enough threads that concurrent PUTs queue up behind a committing one and share its commit.
  boost::asio::thread_pool pool_;
  // The eviction loop and its timer live on this strand (the io_context has several threads).
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer eviction_timer_;
  bool started_ = false;
  std::atomic<bool> stopped_ = false;
};

}  // namespace iroh::server
