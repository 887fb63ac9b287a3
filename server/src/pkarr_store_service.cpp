#include "pkarr_store_service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <future>
#include <stdexcept>

#include "log.hpp"

namespace iroh::server {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// Threads blocked in PkarrStore calls. PUTs queued behind a committing one are committed together,
// so this bounds the group commit batch; reads mostly hit the store's LRU.
constexpr std::size_t kStoreThreads = 8;

void create_directory(const fs::path& dir, const char* what) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create the " + std::string(what) + " " + dir.string() + ": " +
                             ec.message());
  }
}

std::shared_ptr<PkarrStore> open_store(const config::Config& config) {
  create_directory(config.data_dir, "data directory (data_dir)");
  create_directory(config.zone_store.path.parent_path(), "directory of zone_store.path");
  PkarrStoreOptions options;
  options.path = config.zone_store.path;
  options.max_age = config.zone_store.eviction;
  options.cache_entries = config.zone_store.cache_capacity;
  // NORMAL in WAL mode: a commit is in the WAL (page cache) before put() returns, which survives
  // SIGKILL and crashes of the process (the brief's durability requirement) without an fsync per
  // commit.
  options.synchronous = PkarrSynchronous::Normal;
  auto opened = open_sqlite_pkarr_store(options);
  if (auto* e = std::get_if<PkarrStoreError>(&opened)) throw std::runtime_error(e->message);
  return std::shared_ptr<PkarrStore>(std::move(std::get<std::unique_ptr<PkarrStore>>(opened)));
}

}  // namespace

PkarrStoreService::PkarrStoreService(asio::io_context& ioc, const config::Config& config,
                                     prometheus::Registry& registry)
    : eviction_age_(config.zone_store.eviction),
      eviction_interval_(config.zone_store.eviction_interval),
      metrics_(registry),
      store_(open_store(config)),
      pool_(kStoreThreads),
      strand_(asio::make_strand(ioc)),
      eviction_timer_(strand_) {
  log::info("pkarr store ", config.zone_store.path.string(), " (", store_->size(),
            " packets, eviction after ", eviction_age_.count(), " s)");
}

PkarrStoreService::~PkarrStoreService() {
  stop();
  // Store calls in flight finish (their results are posted to the io_context, which no longer
  // runs them); then the database is closed unless someone else still holds it.
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
  auto work = [store = store_, packet = std::move(packet)]() -> asio::awaitable<PkarrPutResult> {
    co_return store->put(packet);
  };
  auto on_pool = asio::co_spawn(pool_, std::move(work), asio::use_awaitable);
  PkarrPutResult result = co_await std::move(on_pool);
  if (const auto* outcome = std::get_if<PkarrPutOutcome>(&result)) {
    if (*outcome == PkarrPutOutcome::Inserted) metrics_.store_packets_inserted.Increment();
    if (*outcome == PkarrPutOutcome::Updated) metrics_.store_packets_updated.Increment();
  }
  co_return result;
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

asio::awaitable<void> PkarrStoreService::eviction_loop() {
  for (;;) {
    co_await evict_now();
    if (stopped_) co_return;
    eviction_timer_.expires_after(eviction_interval_);
    boost::system::error_code ec;
    co_await eviction_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopped_) co_return;
  }
}

}  // namespace iroh::server
