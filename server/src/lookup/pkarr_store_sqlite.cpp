// SQLite implementation of PkarrStore (see pkarr_store.hpp for the contract).
//
// Writes: one connection, owned by whichever put() call is the current "leader": concurrent puts
// queue up while a transaction commits and the next leader commits all of them in one
// transaction (group commit), so the cost of a commit (and of its fsync with synchronous=FULL) is
// shared. Reads: a pool of connections (WAL lets them run while the writer commits) behind an LRU
// cache that writes keep up to date.
#include <sodium.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "lookup/pkarr_packet_cache.hpp"
#include "lookup/pkarr_store.hpp"

namespace iroh::server {
namespace {

constexpr int kSchemaVersion = 1;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// One connection with its prepared statements.
struct Connection {
  sqlite3* db = nullptr;
  Stmt get, count, existing, upsert, evict, begin, commit, rollback;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    get.reset();
    count.reset();
    existing.reset();
    upsert.reset();
    evict.reset();
    begin.reset();
    commit.reset();
    rollback.reset();
    if (db != nullptr) sqlite3_close_v2(db);
  }
};

class SqlitePkarrStore final : public GroupCommitPkarrStore {
 public:
  // `writer` null: the read-only fallback (put() fails with Unavailable, eviction does nothing).
  SqlitePkarrStore(PkarrStoreOptions options, std::unique_ptr<Connection> writer,
                   std::vector<std::unique_ptr<Connection>> readers, std::size_t count)
      : options_(std::move(options)),
        writer_(std::move(writer)),
        readers_(std::move(readers)),
        count_(count),
        cache_(options_.cache_entries, options_.change_stamps) {
    for (auto& r : readers_) idle_readers_.push_back(r.get());
  }

  void put_batch(std::span<const pkarr::SignedPacket* const> packets,
                 std::span<PkarrPutResult> results) override;
  PkarrGetResult get(const pkarr::PublicKey& key) override;
  std::size_t evict_older_than(std::uint64_t cutoff_us) override;
  std::size_t size() override { return count_.load(std::memory_order_relaxed); }
  std::uint64_t count_scans() const override { return 1; }
  // Every change of this single-writer store passes cache_ (commit_batch, evict_older_than).
  const PkarrChangeStamps* change_stamps() const override { return options_.change_stamps.get(); }

 private:
  struct PendingPut {
    const pkarr::SignedPacket* packet;
    PkarrPutResult result = PkarrStoreError{"not written"};
    bool done = false;
  };

  void commit_batch(const std::vector<PendingPut*>& batch);
  std::variant<PkarrPutOutcome, PkarrStoreError> apply_put(const pkarr::SignedPacket& packet,
                                                           std::size_t stored);
  PkarrStoreError error(std::string_view what, sqlite3* db) const;
  bool exec_stmt(sqlite3_stmt* stmt);

  Connection* acquire_reader();
  void release_reader(Connection* c);

  PkarrStoreOptions options_;
  std::unique_ptr<Connection> writer_;
  std::vector<std::unique_ptr<Connection>> readers_;

  std::mutex write_mu_;
  std::condition_variable write_cv_;
  bool writer_busy_ = false;
  std::vector<PendingPut*> queue_;
  std::uint64_t put_batches_ = 0;  // put batches committed (or failed) so far
  // Rows in the table as of the last commit (only changed by the writer, under writer_busy_).
  std::atomic<std::size_t> count_;

  std::mutex reader_mu_;
  std::condition_variable reader_cv_;
  std::vector<Connection*> idle_readers_;

  PacketCache cache_;
};

// SQLITE_FULL is a full disk (or max_page_count); the shared-memory index reports ENOSPC as an
// I/O error.
PkarrStoreErrorKind error_kind(sqlite3* db) {
  if (db == nullptr) return PkarrStoreErrorKind::Other;
  if ((sqlite3_extended_errcode(db) & 0xff) == SQLITE_FULL || sqlite3_system_errno(db) == ENOSPC) {
    return PkarrStoreErrorKind::Full;
  }
  return PkarrStoreErrorKind::Other;
}

PkarrStoreError SqlitePkarrStore::error(std::string_view what, sqlite3* db) const {
  return PkarrStoreError{"pkarr store " + options_.path.string() + ": " + std::string(what) + ": " +
                             sqlite3_errmsg(db),
                         error_kind(db)};
}

bool SqlitePkarrStore::exec_stmt(sqlite3_stmt* stmt) {
  const int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

std::variant<PkarrPutOutcome, PkarrStoreError> SqlitePkarrStore::apply_put(
    const pkarr::SignedPacket& packet, std::size_t stored) {
  sqlite3* db = writer_->db;
  const auto& key = packet.public_key().bytes;

  // Below max_records a new key is always welcome: whether the upsert inserted or updated is
  // told by the rowid it leaves (an insert sets the last insert rowid, an update leaves it),
  // without a lookup of the key of its own (issue 15 item 7). At the bound, a new key is refused
  // before anything is written.
  std::optional<bool> existed;
  if (options_.max_records > 0 && stored >= options_.max_records) {
    sqlite3_stmt* existing = writer_->existing.get();
    sqlite3_bind_blob(existing, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    const int rc = sqlite3_step(existing);
    sqlite3_reset(existing);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return error("read", db);
    existed = rc == SQLITE_ROW;
    if (!*existed) {
      return PkarrStoreError{"pkarr store " + options_.path.string() + ": full (max_records " +
                                 std::to_string(options_.max_records) + " packets)",
                             PkarrStoreErrorKind::AtCapacity};
    }
  }
  // Rowids SQLite picks are >= 1: 0 after the upsert means no row was inserted.
  sqlite3_set_last_insert_rowid(db, 0);

  // Newest wins inside SQL (§2.4): the update only happens if the new packet is more recent.
  sqlite3_stmt* upsert = writer_->upsert.get();
  const auto bytes = packet.bytes();
  sqlite3_bind_blob(upsert, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_int64(upsert, 2, timestamp_key(packet.timestamp_us()));
  sqlite3_bind_blob(upsert, 3, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
  sqlite3_bind_int64(upsert, 4, now_us());
  const int urc = sqlite3_step(upsert);
  sqlite3_reset(upsert);
  sqlite3_clear_bindings(upsert);
  if (urc != SQLITE_DONE) return error("write", db);
  if (sqlite3_changes(db) == 0) return PkarrPutOutcome::NotNewer;
  if (existed) return *existed ? PkarrPutOutcome::Updated : PkarrPutOutcome::Inserted;
  return sqlite3_last_insert_rowid(db) != 0 ? PkarrPutOutcome::Inserted : PkarrPutOutcome::Updated;
}

void SqlitePkarrStore::commit_batch(const std::vector<PendingPut*>& batch) {
  sqlite3* db = writer_->db;
  auto fail_all = [&](const PkarrStoreError& e) {
    for (PendingPut* p : batch) p->result = e;
  };
  if (!exec_stmt(writer_->begin.get())) {
    fail_all(error("begin", db));
    return;
  }
  std::size_t stored = count_.load(std::memory_order_relaxed);
  for (PendingPut* p : batch) {
    auto outcome = apply_put(*p->packet, stored);
    if (auto* e = std::get_if<PkarrStoreError>(&outcome);
        e != nullptr && e->kind == PkarrStoreErrorKind::AtCapacity) {
      // Refuses this packet only; the others of the batch are committed.
      p->result = *e;
      continue;
    }
    if (auto* e = std::get_if<PkarrStoreError>(&outcome)) {
      // Nothing of this transaction is acknowledged, so nothing is lost by rolling it back.
      PkarrStoreError err = *e;
      exec_stmt(writer_->rollback.get());
      fail_all(err);
      return;
    }
    p->result = std::get<PkarrPutOutcome>(outcome);
    if (std::get<PkarrPutOutcome>(outcome) == PkarrPutOutcome::Inserted) ++stored;
  }
  if (!exec_stmt(writer_->commit.get())) {
    PkarrStoreError err = error("commit", db);
    if (!sqlite3_get_autocommit(db)) exec_stmt(writer_->rollback.get());
    fail_all(err);
    return;
  }
  count_.store(stored, std::memory_order_relaxed);
  for (PendingPut* p : batch) {
    auto* outcome = std::get_if<PkarrPutOutcome>(&p->result);
    if (outcome && *outcome != PkarrPutOutcome::NotNewer) cache_.store(*p->packet);
  }
}

void SqlitePkarrStore::put_batch(std::span<const pkarr::SignedPacket* const> packets,
                                 std::span<PkarrPutResult> results) {
  const std::size_t n = std::min(packets.size(), results.size());
  if (n == 0) return;
  if (!writer_) {
    for (std::size_t i = 0; i < n; ++i) {
      results[i] = PkarrStoreError{"pkarr store " + options_.path.string() + ": open read-only",
                                   PkarrStoreErrorKind::Unavailable};
    }
    return;
  }
  std::vector<PendingPut> requests;
  requests.reserve(n);
  for (std::size_t i = 0; i < n; ++i) requests.push_back(PendingPut{packets[i]});
  std::unique_lock lock(write_mu_);
  for (PendingPut& r : requests) queue_.push_back(&r);
  // A leader commits the whole queue, so ours (queued together) are done together.
  while (!requests.back().done) {
    if (writer_busy_) {
      write_cv_.wait(lock);
      continue;
    }
    writer_busy_ = true;
    std::vector<PendingPut*> batch;
    batch.swap(queue_);
    lock.unlock();
    commit_batch(batch);
    lock.lock();
    for (PendingPut* p : batch) p->done = true;
    ++put_batches_;
    writer_busy_ = false;
    write_cv_.notify_all();
  }
  lock.unlock();
  for (std::size_t i = 0; i < n; ++i) results[i] = std::move(requests[i].result);
}

Connection* SqlitePkarrStore::acquire_reader() {
  std::unique_lock lock(reader_mu_);
  reader_cv_.wait(lock, [&] { return !idle_readers_.empty(); });
  Connection* c = idle_readers_.back();
  idle_readers_.pop_back();
  return c;
}

void SqlitePkarrStore::release_reader(Connection* c) {
  {
    std::lock_guard lock(reader_mu_);
    idle_readers_.push_back(c);
  }
  reader_cv_.notify_one();
}

PkarrGetResult SqlitePkarrStore::get(const pkarr::PublicKey& key) {
  std::optional<pkarr::SignedPacket> cached;
  if (cache_.lookup(key, cached)) return cached;
  const std::uint64_t epoch = cache_.epoch();

  Connection* c = acquire_reader();
  sqlite3_stmt* stmt = c->get.get();
  sqlite3_bind_blob(stmt, 1, key.bytes.data(), static_cast<int>(key.bytes.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(stmt);
  PkarrGetResult result = std::optional<pkarr::SignedPacket>{};
  if (rc == SQLITE_ROW) {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, 0));
    const int size = sqlite3_column_bytes(stmt, 0);
    // Re-verified: a damaged row is reported, never served.
    auto parsed = pkarr::SignedPacket::from_bytes(
        pkarr::ByteSpan(data, data == nullptr ? 0 : static_cast<std::size_t>(size)));
    auto* packet = std::get_if<pkarr::SignedPacket>(&parsed);
    if (packet != nullptr && packet->public_key() == key) {
      result = std::optional<pkarr::SignedPacket>(std::move(*packet));
    } else {
      result = PkarrStoreError{"pkarr store " + options_.path.string() + ": damaged row for key " +
                               pkarr::key_to_z32(key)};
    }
  } else if (rc != SQLITE_DONE) {
    result = error("read", c->db);
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  release_reader(c);

  if (auto* value = std::get_if<std::optional<pkarr::SignedPacket>>(&result)) {
    cache_.insert_if_unchanged(key, *value, epoch);
  }
  return result;
}

std::size_t SqlitePkarrStore::evict_older_than(std::uint64_t cutoff_us) {
  if (!writer_) return 0;
  std::size_t total = 0;
  const std::size_t batch = std::max<std::size_t>(options_.evict_batch, 1);
  // Chunks of `batch` rows, each its own transaction. Before each chunk the eviction lets the
  // puts queued meanwhile commit (one group commit): a mutex hand-off alone lets this loop take
  // the writer again before the woken puts run, which stalled them for seconds (issue 19 item
  // 8). Puts and chunks then alternate, so a put waits for at most one chunk and the eviction
  // still progresses under a steady PUT load.
  for (;;) {
    {
      std::unique_lock lock(write_mu_);
      const std::uint64_t seen = put_batches_;
      const bool puts_waiting = !queue_.empty();
      write_cv_.wait(lock,
                     [&] { return !writer_busy_ && (!puts_waiting || put_batches_ != seen); });
      writer_busy_ = true;
    }
    sqlite3_stmt* stmt = writer_->evict.get();
    sqlite3_bind_int64(stmt, 1, timestamp_key(cutoff_us));
    sqlite3_bind_int64(stmt, 2, static_cast<std::int64_t>(batch));
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    const std::size_t deleted =
        rc == SQLITE_DONE ? static_cast<std::size_t>(sqlite3_changes(writer_->db)) : 0;
    if (deleted > 0) {
      const std::size_t before = count_.load(std::memory_order_relaxed);
      count_.store(before - std::min(before, deleted), std::memory_order_relaxed);
    }
    {
      std::lock_guard lock(write_mu_);
      writer_busy_ = false;
    }
    write_cv_.notify_all();
    total += deleted;
    if (rc != SQLITE_DONE || deleted < batch) break;
  }
  // Once per pass: until now a cached evicted packet may still be served, as it was a moment ago.
  if (total > 0) cache_.evict_older_than(cutoff_us);
  return total;
}

// ---- opening ------------------------------------------------------------------------------------

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS pkarr_packets (
  public_key BLOB PRIMARY KEY NOT NULL,
  timestamp INTEGER NOT NULL,  -- signed packet timestamp (µs) with the top bit flipped
  packet BLOB NOT NULL,        -- full signed packet: key || signature || timestamp || DNS
  stored_at INTEGER NOT NULL   -- µs since the epoch of the last write
);
CREATE INDEX IF NOT EXISTS pkarr_packets_by_timestamp ON pkarr_packets(timestamp);
)sql";

// §2.4 in SQL: newer timestamp, or the same timestamp and greater DNS bytes (BLOB comparison is
// memcmp, shorter prefix first; the DNS message starts at byte 105).
constexpr const char* kUpsert = R"sql(
INSERT INTO pkarr_packets (public_key, timestamp, packet, stored_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (public_key) DO UPDATE SET
  timestamp = excluded.timestamp, packet = excluded.packet, stored_at = excluded.stored_at
WHERE excluded.timestamp > pkarr_packets.timestamp
   OR (excluded.timestamp = pkarr_packets.timestamp
       AND substr(excluded.packet, 105) > substr(pkarr_packets.packet, 105))
)sql";

constexpr const char* kEvict = R"sql(
DELETE FROM pkarr_packets WHERE rowid IN
  (SELECT rowid FROM pkarr_packets WHERE timestamp < ?1 LIMIT ?2)
)sql";

struct Opener {
  const PkarrStoreOptions& options;

  PkarrStoreError fail(std::string_view what, sqlite3* db) const {
    return PkarrStoreError{"pkarr store " + options.path.string() + ": " + std::string(what) +
                               ": " + (db ? sqlite3_errmsg(db) : "out of memory"),
                           error_kind(db)};
  }

  std::optional<PkarrStoreError> exec(sqlite3* db, const char* sql, std::string_view what) const {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      PkarrStoreError e{"pkarr store " + options.path.string() + ": " + std::string(what) + ": " +
                            (message ? message : sqlite3_errmsg(db)),
                        error_kind(db)};
      sqlite3_free(message);
      return e;
    }
    return std::nullopt;
  }

  std::optional<PkarrStoreError> prepare(sqlite3* db, const char* sql, Stmt& out) const {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      return fail("prepare", db);
    }
    out.reset(stmt);
    return std::nullopt;
  }

  enum class Role { Writer, Reader, ExclusiveReader };

  std::variant<std::unique_ptr<Connection>, PkarrStoreError> connect(Role role) const {
    const bool writer = role == Role::Writer;
    auto c = std::make_unique<Connection>();
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (writer) flags |= SQLITE_OPEN_CREATE;
    const int rc = sqlite3_open_v2(options.path.c_str(), &c->db, flags, nullptr);
    if (rc != SQLITE_OK) return fail("cannot open", c->db);
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, static_cast<int>(options.busy_timeout.count()));
    if (writer) {
      // journal_mode answers with the mode in effect; anything but "wal" means no durability
      // guarantee we can document, so it is an error. A database already in WAL mode is not
      // written to.
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &stmt, nullptr) != SQLITE_OK) {
        return fail("not a usable database", c->db);
      }
      Stmt guard(stmt);
      if (sqlite3_step(stmt) != SQLITE_ROW) return fail("not a usable database", c->db);
      const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (mode == nullptr || std::strcmp(mode, "wal") != 0) {
        return PkarrStoreError{"pkarr store " + options.path.string() +
                               ": cannot switch to WAL journal mode"};
      }
      guard.reset();
      const char* sync = options.synchronous == PkarrSynchronous::Full
                             ? "PRAGMA synchronous=FULL"
                             : "PRAGMA synchronous=NORMAL";
      if (auto e = exec(c->db, sync, "synchronous")) return *e;
      // Truncate the WAL back to 64 MiB after checkpoints instead of keeping its peak size.
      if (auto e = exec(c->db, "PRAGMA journal_size_limit=67108864", "journal_size_limit")) {
        return *e;
      }
      auto version = check_version(c->db);
      if (auto* e = std::get_if<PkarrStoreError>(&version)) return *e;
      // Only a new (or pre-versioning) file is written to: a store with the current schema opens
      // without a write, so the daemon starts on a full disk (issue 19 item 3).
      if (std::get<int>(version) < kSchemaVersion) {
        if (auto e = exec(c->db, kSchema, "create schema")) return *e;
        if (auto e = exec(c->db, "PRAGMA user_version=1", "schema version")) return *e;
      }
      if (auto e =
              prepare(c->db, "SELECT 1 FROM pkarr_packets WHERE public_key = ?1", c->existing)) {
        return *e;
      }
      if (auto e = prepare(c->db, kUpsert, c->upsert)) return *e;
      if (auto e = prepare(c->db, kEvict, c->evict)) return *e;
      if (auto e = prepare(c->db, "BEGIN IMMEDIATE", c->begin)) return *e;
      if (auto e = prepare(c->db, "COMMIT", c->commit)) return *e;
      if (auto e = prepare(c->db, "ROLLBACK", c->rollback)) return *e;
    } else {
      if (role == Role::ExclusiveReader) {
        // Before the first read: the WAL index then lives in heap memory, no -shm file is needed.
        if (auto e = exec(c->db, "PRAGMA locking_mode=EXCLUSIVE", "read-only connection")) {
          return *e;
        }
        auto version = check_version(c->db);
        if (auto* e = std::get_if<PkarrStoreError>(&version)) return *e;
        if (std::get<int>(version) < kSchemaVersion) {
          return PkarrStoreError{"pkarr store " + options.path.string() +
                                 ": no current schema to serve read-only"};
        }
      }
      if (auto e = exec(c->db, "PRAGMA query_only=1", "read connection")) return *e;
      if (auto e =
              prepare(c->db, "SELECT packet FROM pkarr_packets WHERE public_key = ?1", c->get)) {
        return *e;
      }
      if (auto e = prepare(c->db, "SELECT count(*) FROM pkarr_packets", c->count)) return *e;
    }
    return c;
  }

  // The schema version of the file (0 for a new file), or an error if it is newer than ours.
  std::variant<int, PkarrStoreError> check_version(sqlite3* db) const {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) {
      return fail("not a usable database", db);
    }
    Stmt guard(stmt);
    if (sqlite3_step(stmt) != SQLITE_ROW) return fail("not a usable database", db);
    const int version = sqlite3_column_int(stmt, 0);
    if (version > kSchemaVersion) {
      return PkarrStoreError{"pkarr store " + options.path.string() + ": schema version " +
                             std::to_string(version) + " is newer than this build supports (" +
                             std::to_string(kSchemaVersion) + ")"};
    }
    return version;
  }

  // The store on open connections, after the one full-table count of its life (size() is
  // maintained from here on).
  PkarrStoreOpenResult make_store(std::unique_ptr<Connection> writer,
                                  std::vector<std::unique_ptr<Connection>> readers) const {
    Connection& c = *readers.front();
    sqlite3_stmt* stmt = c.count.get();
    const int rc = sqlite3_step(stmt);
    std::size_t n = 0;
    if (rc == SQLITE_ROW) n = static_cast<std::size_t>(sqlite3_column_int64(stmt, 0));
    sqlite3_reset(stmt);
    if (rc != SQLITE_ROW) return fail("count", c.db);
    return std::unique_ptr<PkarrStore>(
        std::make_unique<SqlitePkarrStore>(options, std::move(writer), std::move(readers), n));
  }
};

}  // namespace

std::uint64_t pkarr_eviction_cutoff(const PkarrStoreOptions& options,
                                    std::chrono::system_clock::time_point now) {
  const auto now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const auto age_us =
      std::chrono::duration_cast<std::chrono::microseconds>(options.max_age).count();
  return now_us > age_us ? static_cast<std::uint64_t>(now_us - age_us) : 0;
}

PkarrStoreOpenResult open_sqlite_pkarr_store(const PkarrStoreOptions& options) {
  if (sodium_init() < 0) return PkarrStoreError{"pkarr store: libsodium initialisation failed"};
  if (options.path.empty()) return PkarrStoreError{"pkarr store: no database path configured"};
  Opener opener{options};
  auto writer = opener.connect(Opener::Role::Writer);
  if (auto* e = std::get_if<PkarrStoreError>(&writer)) return *e;
  std::vector<std::unique_ptr<Connection>> readers;
  const std::size_t reader_count = std::max<std::size_t>(options.read_connections, 1);
  for (std::size_t i = 0; i < reader_count; ++i) {
    auto reader = opener.connect(Opener::Role::Reader);
    if (auto* e = std::get_if<PkarrStoreError>(&reader)) return *e;
    readers.push_back(std::move(std::get<std::unique_ptr<Connection>>(reader)));
  }
  return opener.make_store(std::move(std::get<std::unique_ptr<Connection>>(writer)),
                           std::move(readers));
}

PkarrStoreOpenResult open_sqlite_pkarr_store_read_only(const PkarrStoreOptions& options) {
  if (sodium_init() < 0) return PkarrStoreError{"pkarr store: libsodium initialisation failed"};
  if (options.path.empty()) return PkarrStoreError{"pkarr store: no database path configured"};
  Opener opener{options};
  auto reader = opener.connect(Opener::Role::ExclusiveReader);
  if (auto* e = std::get_if<PkarrStoreError>(&reader)) return *e;
  std::vector<std::unique_ptr<Connection>> readers;
  readers.push_back(std::move(std::get<std::unique_ptr<Connection>>(reader)));
  return opener.make_store(nullptr, std::move(readers));
}

}  // namespace iroh::server
