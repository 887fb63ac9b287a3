// The address lookup store as a daemon service: opens the one PkarrStore (SQLite, or PostgreSQL
// shared with other daemons, issue 15) used by the pkarr HTTP API and the DNS server (creating
// the data directory), owns the LookupMetrics, runs the periodic eviction (spec address-lookup.md
// §7.2) on the io_context, and runs the store's blocking calls on a small thread pool so that no
// io_context thread waits for SQLite.
//
// Storage trouble is never fatal (issue 19 item 3): if the store cannot be opened for writing
// (full disk, unwritable or broken file), the service serves it read-only when it can (see
// open_sqlite_pkarr_store_read_only) or not at all, PUTs fail with Unavailable (the HTTP API
// answers 503), and the eviction loop retries the full open every eviction_interval. A write
// that fails because the disk is full makes the state `degraded` until a write succeeds again.
//
//   auto lookup = std::make_unique<PkarrStoreService>(daemon.io_context(), config,
//                                                     *daemon.metrics_registry());
//   PkarrStoreService& store = *lookup;                // stays valid while the daemon lives
//   daemon.add_service(std::move(lookup));
//   auto result = co_await store.async_put(packet);    // from any coroutine
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "iroh/config.hpp"
#include "iroh/server/service.hpp"
#include "lookup/lookup_metrics.hpp"
#include "lookup/pkarr_store.hpp"

namespace iroh::server {

class StoreHolder;

// What /healthz and dns_server_store_degraded report.
enum class PkarrStoreHealth { Ok, Degraded, Unavailable };
std::string_view to_string(PkarrStoreHealth health);

// Resumes one PkarrStoreService::async_put() with its result, on the coroutine's executor. Our
// own type erasure: Boost 1.81's any_completion_handler recurses without end when moved into
// place (seen as a stack overflow on the first PUT).
struct PkarrPutCompletion {
  virtual ~PkarrPutCompletion() = default;
  virtual void complete(PkarrPutResult result) = 0;
};

class PkarrStoreService final : public Service {
 public:
  // Creates config.data_dir and the store's directory and opens the store; on failure logs the
  // reason and carries on read-only or without a store (see above).
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

  // Never null: forwards to the store currently open (errors with Unavailable when none is).
  std::shared_ptr<PkarrStore> store() const;
  LookupMetrics& metrics() { return metrics_; }
  PkarrStoreHealth health() const;
  // How often a store that is not fully open is retried (the retry-after of a 503 PUT).
  std::chrono::seconds retry_interval() const { return eviction_interval_; }
  // Packets stored (a maintained count, O(1)); nullopt while no store is open.
  std::optional<std::size_t> packet_count() const;
  // The two above as callables that stay valid after the service is gone (they hold the store,
  // not the service): for the status page, /healthz and the metrics listener.
  std::function<std::optional<std::size_t>()> packet_count_source() const;
  std::function<std::string_view()> health_source() const;

  // Puts go to the store's writer thread(s) through one queue: a writer takes every put queued
  // while it committed the previous batch and hands them to PkarrStore::put_batch (one group
  // commit), then resumes all their coroutines with one post to the io_context. A put thus costs
  // no thread of its own and no wake-up of its own (issue 15 item 7: the per-PUT hand-offs of a
  // thread pool were ~15 % of the CPU per PUT). The result is only delivered once the write is
  // durable (committed). Counts store_packets_inserted / _updated.
  boost::asio::awaitable<PkarrPutResult> async_put(pkarr::SignedPacket packet);
  // Batches handed to PkarrStore::put_batch so far (tests: PUTs of one round share a commit).
  std::uint64_t put_batches() const { return put_batches_.load(std::memory_order_relaxed); }
  // Writers waiting for puts (tests: a batch starts from an idle writer).
  std::size_t idle_writers() const {
    std::lock_guard lock(puts_->mu);
    return puts_->idle_writers;
  }
  boost::asio::awaitable<PkarrGetResult> async_get(pkarr::PublicKey key);

  // One eviction pass now (what the timer runs); returns the number of packets removed.
  boost::asio::awaitable<std::size_t> evict_now();
  // When the store is not fully open, tries to open it for writing again (what the timer runs
  // before each eviction); true if it is fully open afterwards.
  boost::asio::awaitable<bool> reopen_if_degraded();

 private:
  struct PutWaiter {
    pkarr::SignedPacket packet;
    PkarrPutResult result;
    std::unique_ptr<PkarrPutCompletion> completion;
  };
  // `executor`: where the PUT's coroutine runs (an idle writer's wake-up is posted there).
  void enqueue_put(std::unique_ptr<PutWaiter> waiter, boost::asio::any_io_executor executor);
  void writer_loop();
  void stop_writers();

  boost::asio::awaitable<void> eviction_loop();
  // Opens the store (read-write, else read-only, else none) into store_. Blocking.
  void open_store();
  // For logs: the SQLite file, or "PostgreSQL" (the URL may hold a password).
  std::string store_name() const;

  std::chrono::seconds eviction_age_;
  std::chrono::seconds eviction_interval_;
  std::filesystem::path data_dir_;
  PkarrStoreOptions options_;
  LookupMetrics metrics_;
  std::shared_ptr<StoreHolder> store_;
  bool postgres_ = false;        // zone_store.backend: postgres (issue 15)
  std::string last_open_error_;  // logged once per distinct message
  boost::asio::io_context& ioc_;
  // Reads, eviction and reopening (blocking store calls that are not puts).
  boost::asio::thread_pool pool_;
  // The put queue (see async_put); shared with the writer wake-ups posted to io_contexts, which
  // may run after this service is gone.
  struct PutQueue {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::unique_ptr<PutWaiter>> waiting;
    std::size_t idle_writers = 0;
    bool wake_posted = false;  // a wake-up of an idle writer is posted (enqueue_put)
    bool stopping = false;
  };
  std::shared_ptr<PutQueue> puts_ = std::make_shared<PutQueue>();
  std::atomic<std::uint64_t> put_batches_{0};
  std::vector<std::thread> writers_;
  // The eviction loop and its timer live on this strand (the io_context has several threads).
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer eviction_timer_;
  bool started_ = false;
  std::atomic<bool> stopped_ = false;
};

}  // namespace iroh::server
