// PostgresPkarrStore (issue 15; contract in pkarr_store.hpp), private to lookup/: the class and
// what its three files share. The files go by subject:
//   pkarr_store_postgres.cpp              writes (group commit), reads, eviction, and the factory
//                                         open_postgres_pkarr_store();
//   pkarr_store_postgres_connections.cpp  the connection pool, reconnect with backoff and the
//                                         LISTEN connection that turns other daemons' writes
//                                         into cache invalidations (NOTIFY);
//   pkarr_store_postgres_schema.cpp       the SQL statements, schema creation and migrations.
#pragma once

#include <libpq-fe.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "lookup/pkarr_packet_cache.hpp"
#include "lookup/pkarr_store.hpp"

namespace iroh::server::postgres_store {

using Clock = std::chrono::steady_clock;

constexpr int kSchemaVersion = 1;
constexpr const char* kChannel = "iroh_pkarr";
// pg_advisory_*lock keys: arbitrary constants ("iroh" + a role), one per purpose.
constexpr const char* kEvictLock = "1769107300";
constexpr const char* kSchemaLock = "1769107301";
// Reconnect backoff (issue 15 item 4): quick first retry, capped so that a PUT succeeds within a
// few seconds of PostgreSQL coming back.
constexpr std::chrono::milliseconds kBackoffMin{100};
constexpr std::chrono::milliseconds kBackoffMax{5000};
// Group commit: batches committing at once per daemon, and packets per batch.
constexpr std::size_t kLeaders = 2;
constexpr std::size_t kMaxBatch = 256;
// How long put/get wait for a free connection before answering Unavailable.
constexpr std::chrono::seconds kAcquireTimeout{5};

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

inline std::string first_line(std::string text) {
  text = text.substr(0, text.find_first_of("\r\n"));
  return text;
}

// libpq messages end with a newline and may span lines; one line for our logs.
inline std::string pq_message(const PGconn* c) {
  std::string m = c != nullptr ? PQerrorMessage(c) : "out of memory";
  std::replace(m.begin(), m.end(), '\n', ' ');
  while (!m.empty() && m.back() == ' ') m.pop_back();
  return m;
}

class PostgresPkarrStore final : public GroupCommitPkarrStore {
 public:
  explicit PostgresPkarrStore(PkarrStoreOptions options)
      : options_(std::move(options)), cache_(options_.cache_entries) {
    std::uint64_t id = 0;
    randombytes_buf(&id, sizeof id);
    node_ = std::to_string(id);
  }
  ~PostgresPkarrStore() override;

  // Connects, creates or migrates the schema, LISTENs and counts; then starts the listener.
  std::optional<PkarrStoreError> open();

  void put_batch(std::span<const pkarr::SignedPacket* const> packets,
                 std::span<PkarrPutResult> results) override;
  PkarrGetResult get(const pkarr::PublicKey& key) override;
  std::size_t evict_older_than(std::uint64_t cutoff_us) override;
  std::size_t size() override { return count_.load(std::memory_order_relaxed); }
  std::uint64_t count_scans() const override { return scans_.load(); }
  bool degraded() const override { return !listening_.load() || down_.load(); }

 private:
  struct Lease {
    PGconn* conn = nullptr;
    bool reused = false;
  };

  PGconn* connect(std::string& error) const;
  std::variant<Lease, PkarrStoreError> acquire();
  void release(PGconn* conn);
  // After a statement failed on `conn`: a broken connection is closed (and with it the idle
  // ones, which lost the same server) and reported as Unavailable.
  PkarrStoreError failed(PGconn* conn, std::string_view what);
  void mark_down(const std::string& why);
  // `count`: report a reconnect (the LISTEN connection reports its own).
  void mark_up(bool count);
  bool prepare(PGconn* c, std::string& error) const;
  std::optional<std::size_t> count_rows(PGconn* c);

  void listen_loop(PGconn* first);
  void on_notification(const char* payload);

  struct PendingPut {
    const pkarr::SignedPacket* packet;
    PkarrPutResult result = PkarrStoreError{"not written"};
    bool done = false;
  };
  PkarrPutResult put_one(const pkarr::SignedPacket& packet);
  void commit_batch(const std::vector<PendingPut*>& batch);

  // Group commit (like the SQLite store): puts queue up, up to kLeaders of them at a time commit
  // everything queued so far in one statement.
  std::mutex write_mu_;
  std::condition_variable write_cv_;
  std::vector<PendingPut*> queue_;
  std::size_t leaders_ = 0;

  PkarrStoreOptions options_;
  std::string node_;  // random id: our own notifications are already applied
  PacketCache cache_;
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> scans_{0};

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<PGconn*> idle_;
  std::size_t open_ = 0;     // connections in idle_ or leased, plus one being opened
  bool connecting_ = false;  // while down, one connection attempt at a time
  Clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_ = kBackoffMin;
  std::atomic<bool> down_{false};

  std::atomic<bool> listening_{false};
  std::atomic<bool> stop_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::thread listener_;
};

}  // namespace iroh::server::postgres_store
