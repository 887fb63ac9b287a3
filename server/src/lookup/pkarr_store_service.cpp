#include "lookup/pkarr_store_service.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "core/log.hpp"

namespace iroh::server {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// Threads for the store's blocking calls other than puts: reads that miss the store's LRU,
// eviction, reopening.
constexpr std::size_t kStoreThreads = 4;
// Put writers: SQLite has one write connection, so one writer; PostgreSQL commits take a network
// round trip and a WAL flush, so two batches in flight (the store's kLeaders) keep it busy.
constexpr std::size_t kSqliteWriters = 1;
constexpr std::size_t kPostgresWriters = 2;
// Puts per batch a writer takes: the store's own bound (PostgreSQL's kMaxBatch), and a bound on
// how long one batch holds SQLite's write lock against the eviction.
constexpr std::size_t kMaxPutBatch = 256;
// PostgreSQL connections for put/get/evict.
constexpr std::size_t kPostgresConnections = 8;

// Below this much free space a store that is open read-only is not reopened for writing: it
// would fail again, and closing the read-only connection for the attempt interrupts reads.
constexpr std::uintmax_t kMinFreeBytesToReopen = 4 * 1024 * 1024;

std::optional<std::string> create_directory(const fs::path& dir, const char* what) {
  if (dir.empty()) return std::nullopt;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return "cannot create the " + std::string(what) + " " + dir.string() + ": " + ec.message();
  return std::nullopt;
}

// PkarrPutCompletion for one asio completion handler (async_put's coroutine).
template <class Handler>
class PutCompletionFor final : public PkarrPutCompletion {
 public:
  explicit PutCompletionFor(Handler handler) : handler_(std::move(handler)) {}
  void complete(PkarrPutResult result) override {
    auto executor = asio::get_associated_executor(handler_);
    asio::dispatch(executor, [h = std::move(handler_), r = std::move(result)]() mutable {
      std::move(h)(std::move(r));
    });
  }

 private:
  Handler handler_;
};

PkarrStoreError not_open() {
  return PkarrStoreError{"pkarr store: not open", PkarrStoreErrorKind::Unavailable};
}

}  // namespace

std::string_view to_string(PkarrStoreHealth health) {
  switch (health) {
    case PkarrStoreHealth::Ok:
      return "ok";
    case PkarrStoreHealth::Degraded:
      return "degraded";
    case PkarrStoreHealth::Unavailable:
      return "unavailable";
  }
  return "unavailable";
}

// The PkarrStore the HTTP API and DNS hold: forwards to the store open now (which the service
// swaps when it reopens it) and keeps the health state and the error metrics.
class StoreHolder final : public PkarrStore {
 public:
  explicit StoreHolder(LookupMetrics& metrics) : metrics_(metrics) { publish(); }

  std::shared_ptr<PkarrStore> current() const {
    std::lock_guard lock(mu_);
    return inner_;
  }
  bool read_only() const {
    std::lock_guard lock(mu_);
    return inner_ != nullptr && read_only_;
  }

  // Replaces the store; returns the previous one (the caller decides when it is released).
  std::shared_ptr<PkarrStore> set(std::shared_ptr<PkarrStore> store, bool read_only) {
    std::shared_ptr<PkarrStore> old;
    {
      std::lock_guard lock(mu_);
      old = std::exchange(inner_, std::move(store));
      read_only_ = read_only;
      write_failing_ = false;
    }
    // Another store (reopened, read-only, none) may hold other packets.
    if (stamps_) stamps_->changed_all();
    publish();
    return old;
  }

  // The stamps every store this holder opens reports its changes to (SQLite: set before the
  // first set()); null for PostgreSQL, whose other daemons' writes arrive by NOTIFY only while
  // its LISTEN connection is up.
  void use_change_stamps(std::shared_ptr<PkarrChangeStamps> stamps) { stamps_ = std::move(stamps); }
  const PkarrChangeStamps* change_stamps() const override { return stamps_.get(); }

  PkarrStoreHealth health() const {
    std::lock_guard lock(mu_);
    if (!inner_) return PkarrStoreHealth::Unavailable;
    return read_only_ || write_failing_ || inner_->degraded() ? PkarrStoreHealth::Degraded
                                                              : PkarrStoreHealth::Ok;
  }

  PkarrPutResult put(const pkarr::SignedPacket& packet) override {
    const pkarr::SignedPacket* one[1] = {&packet};
    PkarrPutResult result;
    put_batch(one, std::span<PkarrPutResult>(&result, 1));
    return result;
  }

  void put_batch(std::span<const pkarr::SignedPacket* const> packets,
                 std::span<PkarrPutResult> results) override {
    auto store = current();
    if (store) {
      store->put_batch(packets, results);
    } else {
      for (auto& r : results) r = not_open();
    }
    // The batch's storage fault, if any (a full disk wins: it decides the state below); at
    // capacity is a policy answer, not a storage fault.
    const PkarrStoreError* fault = nullptr;
    bool written = false;
    for (const auto& r : results) {
      const auto* e = std::get_if<PkarrStoreError>(&r);
      if (e == nullptr) {
        written = true;
        continue;
      }
      if (e->kind == PkarrStoreErrorKind::AtCapacity) continue;
      metrics_.store_errors.Increment();
      if (fault == nullptr || e->kind == PkarrStoreErrorKind::Full) fault = e;
    }
    if (fault == nullptr && !written) return;
    bool was_failing = false, failing = false;
    {
      std::lock_guard lock(mu_);
      was_failing = write_failing_;
      if (store == inner_) {
        write_failing_ = fault != nullptr && fault->kind == PkarrStoreErrorKind::Full;
      }
      failing = write_failing_;
    }
    if (failing && !was_failing) {
      log::warn(fault->message, "; PUTs of new packets answer 507 until space is back");
    } else if (was_failing && !failing && fault == nullptr) {
      log::info("pkarr store: writes succeed again");
    }
    publish();
  }

  PkarrGetResult get(const pkarr::PublicKey& key) override {
    auto store = current();
    PkarrGetResult result = store ? store->get(key) : PkarrGetResult(not_open());
    if (std::holds_alternative<PkarrStoreError>(result)) metrics_.store_errors.Increment();
    return result;
  }

  std::size_t evict_older_than(std::uint64_t cutoff_us) override {
    auto store = current();
    const std::size_t removed = store ? store->evict_older_than(cutoff_us) : 0;
    // The PostgreSQL store's health changes without a put(): refresh the gauge every pass.
    publish();
    return removed;
  }

  std::size_t size() override {
    auto store = current();
    return store ? store->size() : 0;
  }

  std::uint64_t count_scans() const override {
    auto store = current();
    return store ? store->count_scans() : 0;
  }

  bool degraded() const override {
    auto store = current();
    return store && store->degraded();
  }

 private:
  void publish() { metrics_.store_degraded.Set(static_cast<double>(health())); }

  LookupMetrics& metrics_;
  std::shared_ptr<PkarrChangeStamps> stamps_;
  mutable std::mutex mu_;
  std::shared_ptr<PkarrStore> inner_;
  bool read_only_ = false;
  bool write_failing_ = false;
};

PkarrStoreService::PkarrStoreService(asio::io_context& ioc, const config::Config& config,
                                     prometheus::Registry& registry)
    : eviction_age_(config.zone_store.eviction),
      eviction_interval_(config.zone_store.eviction_interval),
      data_dir_(config.data_dir),
      metrics_(registry),
      store_(std::make_shared<StoreHolder>(metrics_)),
      ioc_(ioc),
      pool_(kStoreThreads),
      strand_(asio::make_strand(ioc)),
      eviction_timer_(strand_) {
  options_.path = config.zone_store.path;
  options_.max_age = config.zone_store.eviction;
  options_.cache_entries = config.zone_store.cache_capacity;
  options_.max_records = config.zone_store.max_records;
  // NORMAL in WAL mode: a commit is in the WAL (page cache) before put() returns, which survives
  // SIGKILL and crashes of the process (the brief's durability requirement) without an fsync per
  // commit.
  options_.synchronous = PkarrSynchronous::Normal;
  postgres_ = config.zone_store.backend == config::ZoneStoreBackend::Postgres;
  options_.postgres_conninfo = config.zone_store.postgres_url;
  options_.postgres_password_file = config.zone_store.postgres_password_file;
  // Enough for every writer and every pool thread at once: a put never waits for a connection.
  options_.postgres_connections = kPostgresConnections;
  options_.on_reconnect = [metrics = &metrics_] { metrics->store_reconnects.Increment(); };
  if (!postgres_) {
    // Every change of the SQLite store is this process's own: caches derived from its packets
    // (the DNS answer cache) can follow them.
    options_.change_stamps = std::make_shared<PkarrChangeStamps>();
    store_->use_change_stamps(options_.change_stamps);
  }
  open_store();
  const std::size_t writers = postgres_ ? kPostgresWriters : kSqliteWriters;
  for (std::size_t i = 0; i < writers; ++i) writers_.emplace_back([this] { writer_loop(); });
  if (auto count = packet_count()) {
    log::info("pkarr store ", store_name(), " (", *count, " packets",
              store_->read_only() ? ", read-only" : "", ", eviction after ", eviction_age_.count(),
              " s)");
  }
}

std::string PkarrStoreService::store_name() const {
  // Never the URL itself: it may carry a password.
  return postgres_ ? std::string("PostgreSQL (zone_store.postgres_url)") : options_.path.string();
}

void PkarrStoreService::open_store() {
  std::optional<std::string> failure = create_directory(data_dir_, "data directory (data_dir)");
  if (postgres_) {
    // No read-only fallback: while PostgreSQL cannot be reached at all there is nothing to
    // serve; the eviction loop retries the open every eviction_interval.
    auto opened = open_postgres_pkarr_store(options_);
    if (auto* store = std::get_if<std::unique_ptr<PkarrStore>>(&opened)) {
      store_->set(std::shared_ptr<PkarrStore>(std::move(*store)), false);
      if (!last_open_error_.empty()) log::info("pkarr store ", store_name(), ": open again");
      last_open_error_.clear();
      return;
    }
    metrics_.store_errors.Increment();
    const std::string& message = std::get<PkarrStoreError>(opened).message;
    if (message != last_open_error_) {
      log::error(message, "; address lookup has no store, retrying every ",
                 eviction_interval_.count(), " s");
      last_open_error_ = message;
    }
    store_->set(nullptr, false);
    return;
  }
  if (!failure) {
    failure = create_directory(options_.path.parent_path(), "directory of zone_store.path");
  }
  if (!failure) {
    auto opened = open_sqlite_pkarr_store(options_);
    if (auto* store = std::get_if<std::unique_ptr<PkarrStore>>(&opened)) {
      store_->set(std::shared_ptr<PkarrStore>(std::move(*store)), false);
      if (!last_open_error_.empty()) {
        log::info("pkarr store ", store_name(), ": open for writing again");
      }
      last_open_error_.clear();
      return;
    }
    failure = std::get<PkarrStoreError>(opened).message;
  }
  metrics_.store_errors.Increment();
  auto read_only = open_sqlite_pkarr_store_read_only(options_);
  const bool serving = std::holds_alternative<std::unique_ptr<PkarrStore>>(read_only);
  if (*failure != last_open_error_) {
    // Logged once per distinct reason, not at every retry.
    log::error(*failure, serving ? "; serving it read-only, PUTs answer 503 until it opens"
                                 : "; address lookup has no store, retrying every " +
                                       std::to_string(eviction_interval_.count()) + " s");
    last_open_error_ = *failure;
  }
  if (serving) {
    store_->set(
        std::shared_ptr<PkarrStore>(std::move(std::get<std::unique_ptr<PkarrStore>>(read_only))),
        true);
  } else {
    store_->set(nullptr, false);
  }
}

std::shared_ptr<PkarrStore> PkarrStoreService::store() const {
  return store_;
}

PkarrStoreHealth PkarrStoreService::health() const {
  return store_->health();
}

std::optional<std::size_t> PkarrStoreService::packet_count() const {
  return packet_count_source()();
}

std::function<std::optional<std::size_t>()> PkarrStoreService::packet_count_source() const {
  return [holder = store_]() -> std::optional<std::size_t> {
    auto store = holder->current();
    if (!store) return std::nullopt;
    return store->size();
  };
}

std::function<std::string_view()> PkarrStoreService::health_source() const {
  return [holder = store_]() { return to_string(holder->health()); };
}

PkarrStoreService::~PkarrStoreService() {
  stop();
  // Store calls in flight finish and queued puts are written (their results are posted to the
  // io_context, which no longer runs them); then the database is closed unless someone else
  // still holds it.
  stop_writers();
  pool_.join();
  store_.reset();
}

void PkarrStoreService::start() {
  if (started_) return;
  started_ = true;
  asio::co_spawn(strand_, eviction_loop(), asio::detached);
}

void PkarrStoreService::stop() {
  if (!started_) return;
  // The timer belongs to the io_context threads: cancel it there, and wait (bounded) so that the
  // loop does not touch this object after stop() returns.
  if (stopped_.exchange(true)) return;
  auto cancelled = std::make_shared<std::promise<void>>();
  auto done = cancelled->get_future();
  asio::post(strand_, [this, cancelled] {
    eviction_timer_.cancel();
    cancelled->set_value();
  });
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    log::warn("pkarr store: the io_context did not run the eviction stop in time");
  }
}

asio::awaitable<PkarrPutResult> PkarrStoreService::async_put(pkarr::SignedPacket packet) {
  auto waiter = std::make_unique<PutWaiter>(PutWaiter{std::move(packet), {}, {}});
  auto op = asio::async_initiate<const asio::use_awaitable_t<>&, void(PkarrPutResult)>(
      [this, &waiter](auto handler) {
        asio::any_io_executor executor = asio::get_associated_executor(handler);
        waiter->completion =
            std::make_unique<PutCompletionFor<decltype(handler)>>(std::move(handler));
        enqueue_put(std::move(waiter), std::move(executor));
      },
      asio::use_awaitable);
  PkarrPutResult result = co_await std::move(op);
  if (const auto* outcome = std::get_if<PkarrPutOutcome>(&result)) {
    if (*outcome == PkarrPutOutcome::Inserted) metrics_.store_packets_inserted.Increment();
    if (*outcome == PkarrPutOutcome::Updated) metrics_.store_packets_updated.Increment();
  }
  co_return result;
}

void PkarrStoreService::enqueue_put(std::unique_ptr<PutWaiter> waiter,
                                    asio::any_io_executor executor) {
  PutQueue& q = *puts_;
  std::unique_lock lock(q.mu);
  q.waiting.push_back(std::move(waiter));
  // A busy writer takes this put with its next batch: wake one only if one is idle, so that a
  // put arriving during a commit costs no futex call. And not at once: the wake-up is posted to
  // the PUT's executor, so it runs behind the handlers queued on that io_context now (the other
  // pipelined PUTs being verified, other connections' reads), and the writer wakes once for all
  // the PUTs of that round and commits them together. Woken at once, the writer preempted the
  // io thread for nearly every PUT on a busy CPU (~3 PUTs per commit, > 1 context switch per
  // PUT; issue 15 item 7).
  if (q.idle_writers == 0 || q.wake_posted) return;
  q.wake_posted = true;
  lock.unlock();
  asio::post(executor, [puts = puts_] {
    {
      std::lock_guard guard(puts->mu);
      puts->wake_posted = false;
    }
    puts->cv.notify_one();
  });
}

void PkarrStoreService::writer_loop() {
  PutQueue& q = *puts_;
  std::vector<std::unique_ptr<PutWaiter>> batch;
  std::vector<const pkarr::SignedPacket*> packets;
  std::vector<PkarrPutResult> results;
  std::unique_lock lock(q.mu);
  for (;;) {
    ++q.idle_writers;
    q.cv.wait(lock, [&q] { return !q.waiting.empty() || q.stopping; });
    --q.idle_writers;
    // Stopping: the queue is written first, so that no put already queued is dropped.
    if (q.waiting.empty()) return;
    const std::size_t take = std::min(q.waiting.size(), kMaxPutBatch);
    const auto end = q.waiting.begin() + static_cast<std::ptrdiff_t>(take);
    batch.assign(std::make_move_iterator(q.waiting.begin()), std::make_move_iterator(end));
    q.waiting.erase(q.waiting.begin(), end);
    // More left (a batch was full): another idle writer may start on them now.
    if (!q.waiting.empty() && q.idle_writers > 0) q.cv.notify_one();
    lock.unlock();

    packets.clear();
    for (const auto& w : batch) packets.push_back(&w->packet);
    results.assign(batch.size(), PkarrPutResult{});
    store_->put_batch(packets, results);
    put_batches_.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(results[i]);
    // One post resumes the whole batch: each coroutine continues on its own executor (dispatch
    // runs it right here unless its strand is busy on another thread).
    asio::post(ioc_, [done = std::move(batch)]() mutable {
      for (auto& w : done) w->completion->complete(std::move(w->result));
    });
    batch.clear();
    lock.lock();
  }
}

void PkarrStoreService::stop_writers() {
  {
    std::lock_guard lock(puts_->mu);
    puts_->stopping = true;
  }
  puts_->cv.notify_all();
  for (auto& t : writers_) {
    if (t.joinable()) t.join();
  }
  writers_.clear();
}

asio::awaitable<PkarrGetResult> PkarrStoreService::async_get(pkarr::PublicKey key) {
  auto work = [store = store_, key]() -> asio::awaitable<PkarrGetResult> {
    co_return store->get(key);
  };
  auto on_pool = asio::co_spawn(pool_, std::move(work), asio::use_awaitable);
  PkarrGetResult result = co_await std::move(on_pool);
  co_return result;
}

asio::awaitable<std::size_t> PkarrStoreService::evict_now() {
  PkarrStoreOptions options;
  options.max_age = eviction_age_;
  const std::uint64_t cutoff = pkarr_eviction_cutoff(options, std::chrono::system_clock::now());
  auto work = [store = store_, cutoff]() -> asio::awaitable<std::size_t> {
    co_return store->evict_older_than(cutoff);
  };
  auto on_pool = asio::co_spawn(pool_, std::move(work), asio::use_awaitable);
  std::size_t removed = co_await std::move(on_pool);
  if (removed > 0) {
    metrics_.store_packets_expired.Increment(static_cast<double>(removed));
    log::debug("pkarr store: evicted ", removed, " packets older than ", eviction_age_.count(),
               " s");
  }
  co_return removed;
}

asio::awaitable<bool> PkarrStoreService::reopen_if_degraded() {
  if (store_->current() && !store_->read_only()) co_return true;
  auto work = [this]() -> asio::awaitable<bool> {
    if (store_->read_only()) {
      std::error_code ec;
      const auto space = fs::space(
          options_.path.parent_path().empty() ? fs::path(".") : options_.path.parent_path(), ec);
      if (ec || space.available < kMinFreeBytesToReopen) co_return false;
      // The read-only connection holds the database lock: release it (reads in flight finish
      // first, bounded by their busy timeout) before opening for writing.
      std::shared_ptr<PkarrStore> old = store_->set(nullptr, false);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (old.use_count() > 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      old.reset();
    }
    open_store();
    co_return store_->current() && !store_->read_only();
  };
  co_return co_await asio::co_spawn(pool_, std::move(work), asio::use_awaitable);
}

asio::awaitable<void> PkarrStoreService::eviction_loop() {
  for (;;) {
    co_await reopen_if_degraded();
    if (stopped_) co_return;
    co_await evict_now();
    if (stopped_) co_return;
    eviction_timer_.expires_after(eviction_interval_);
    boost::system::error_code ec;
    co_await eviction_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopped_) co_return;
  }
}

}  // namespace iroh::server
