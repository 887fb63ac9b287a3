// Persistent store of signed pkarr packets (spec address-lookup.md §2.4, §7): one packet per
// public key, the most recent one wins, packets older than `max_age` are evicted.
//
// The interface is what the HTTP API, the DNS server and the eviction task need and nothing more,
// so that a shared backend (PostgreSQL for several instances) can implement it too; such a backend
// must bound the age of its per-instance cache (or invalidate it on NOTIFY), since other
// instances write behind its back. Every method
// is thread-safe and blocking (call it from a thread pool, not from an io_context thread that
// serves latency-sensitive traffic, when the backend may be slow).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "iroh/pkarr.hpp"
#include "lookup/pkarr_change_stamps.hpp"

namespace iroh::server {

// What went wrong, so that the HTTP API can answer 507/503 instead of 500 and the service can
// tell a full disk from a broken store (issue 19 item 3).
enum class PkarrStoreErrorKind {
  Other,        // I/O error, corruption, ... (500)
  Full,         // the disk (or SQLite's page limit) is full: retry once space is back (507)
  AtCapacity,   // put() of a new key while max_records packets are stored (507)
  Unavailable,  // the store is not open for writing (read-only fallback or not open; 503)
};

struct PkarrStoreError {
  std::string message;
  PkarrStoreErrorKind kind = PkarrStoreErrorKind::Other;
};

enum class PkarrPutOutcome {
  Inserted,  // no packet was stored for this key
  Updated,   // replaced a less recent packet
  NotNewer,  // the stored packet is as recent or more recent (§2.4): nothing changed
};
// The outcome is only reported once the write is durable (see PkarrSynchronous); on any error
// nothing was acknowledged and the previously stored packet is still there.
using PkarrPutResult = std::variant<PkarrPutOutcome, PkarrStoreError>;
// nullopt = no packet stored for the key (or evicted).
using PkarrGetResult = std::variant<std::optional<pkarr::SignedPacket>, PkarrStoreError>;

class PkarrStore {
 public:
  virtual ~PkarrStore() = default;

  // Stores `packet` unless the stored packet for its key is as recent or more recent (§2.4:
  // newer timestamp, or same timestamp and lexicographically greater DNS bytes). Atomic per key.
  // A new key while `max_records` packets are stored fails with AtCapacity; updates of stored
  // keys still work.
  virtual PkarrPutResult put(const pkarr::SignedPacket& packet) = 0;
  // put() of each of `packets` (same size as `results`; results[i] answers *packets[i]), in
  // one call so that a backend with group commit commits them together: PkarrStoreService's
  // writer hands over every PUT that queued during the previous commit at once (one wake-up per
  // batch, not one thread per PUT). The default calls put() for each.
  virtual void put_batch(std::span<const pkarr::SignedPacket* const> packets,
                         std::span<PkarrPutResult> results) {
    for (std::size_t i = 0; i < packets.size() && i < results.size(); ++i) {
      results[i] = put(*packets[i]);
    }
  }
  virtual PkarrGetResult get(const pkarr::PublicKey& key) = 0;
  // Deletes every packet whose signed timestamp is < `cutoff_us` (µs since the epoch, §7.2) and
  // returns how many were deleted (0 on error: eviction is retried by the next run).
  virtual std::size_t evict_older_than(std::uint64_t cutoff_us) = 0;
  // Number of stored packets: a count kept on insert and eviction (counted once at open), so it
  // is O(1) and safe on any thread (issue 19 item 7).
  virtual std::size_t size() = 0;
  // Full-table counts run so far (1 for a SQLite store: the one at open). Lets tests check that
  // size() never scans.
  virtual std::uint64_t count_scans() const { return 0; }
  // True while the store works only in part (PostgreSQL unreachable: reads come from the cache,
  // writes fail with Unavailable); /healthz then says degraded.
  virtual bool degraded() const { return false; }
  // Stamps of every change of this store's packets, for caches of answers derived from them
  // (pkarr_change_stamps.hpp); null when the store cannot tell of every change (then nothing
  // derived may be cached beyond a get()).
  virtual const PkarrChangeStamps* change_stamps() const { return nullptr; }
};

// A store that commits puts in groups (SQLite, PostgreSQL): put() is put_batch() of one, so that
// a lone PUT takes the same path, and the same queue, as a batch. The one home of that wrapper.
class GroupCommitPkarrStore : public PkarrStore {
 public:
  PkarrPutResult put(const pkarr::SignedPacket& packet) final {
    const pkarr::SignedPacket* one[1] = {&packet};
    PkarrPutResult result;
    put_batch(one, std::span<PkarrPutResult>(&result, 1));
    return result;
  }
  void put_batch(std::span<const pkarr::SignedPacket* const> packets,
                 std::span<PkarrPutResult> results) override = 0;
};

// SQLite `synchronous` in WAL mode:
//  Normal: a commit is written to the WAL (the OS page cache) before put() returns, so an
//          acknowledged packet survives a crash or SIGKILL of the process; the WAL is fsynced at
//          checkpoints only, so a power loss or kernel crash may lose the last commits.
//  Full:   every commit is fsynced as well (survives power loss; costs one fsync per commit,
//          amortised by group commit of concurrent puts).
enum class PkarrSynchronous { Normal, Full };

struct PkarrStoreOptions {
  std::filesystem::path path;                   // database file, e.g. <data_dir>/pkarr.db
  std::chrono::seconds max_age{7 * 24 * 3600};  // §7.2 eviction age (used by callers)
  std::size_t cache_entries = 65536;            // bounded LRU in front of the database
  PkarrSynchronous synchronous = PkarrSynchronous::Normal;
  std::size_t read_connections = 4;              // concurrent readers (WAL allows them)
  std::chrono::milliseconds busy_timeout{5000};  // another process holding the write lock
  // Rows deleted per write transaction; puts that queued meanwhile are committed between two
  // chunks, so a mass eviction delays a put by about one chunk (issue 19 item 8).
  std::size_t evict_batch = 1000;
  std::size_t max_records = 0;  // 0 = no bound; else new keys beyond it fail with AtCapacity
  // SQLite backend: told of every change (PkarrStore::change_stamps() then returns it).
  std::shared_ptr<PkarrChangeStamps> change_stamps;

  // PostgreSQL backend only (issue 15): libpq URI or conninfo, the password file (first line;
  // empty = none, then PGPASSWORD / PGPASSFILE apply), the bound on connections used by
  // put/get/evict (plus one for LISTEN), and a callback for every reconnect after a lost
  // connection (metrics).
  std::string postgres_conninfo;
  std::filesystem::path postgres_password_file;
  std::size_t postgres_connections = 8;
  std::function<void()> on_reconnect;
};

// Microseconds since the Unix epoch of `now - options.max_age`: the cutoff for
// evict_older_than().
std::uint64_t pkarr_eviction_cutoff(const PkarrStoreOptions& options,
                                    std::chrono::system_clock::time_point now);

using PkarrStoreOpenResult = std::variant<std::unique_ptr<PkarrStore>, PkarrStoreError>;

// Embedded SQLite store (WAL). Creates the file (not its directory) if missing. Fails with a
// message naming the file if it cannot be created or opened, is not a database, is corrupt, or
// was written by a newer schema. Concurrent put() calls are committed in one transaction (group
// commit); get() is served by an LRU cache and a small pool of read connections.
// Opening writes nothing when the schema is current, so that a store on a full disk opens.
PkarrStoreOpenResult open_sqlite_pkarr_store(const PkarrStoreOptions& options);

// The fallback when open_sqlite_pkarr_store() fails, e.g. on a full disk, where WAL readers cannot
// create their shared-memory index: one read connection in exclusive locking mode (index in heap
// memory, no -shm file), which serves get() and size() while put() fails with Unavailable and
// evict_older_than() does nothing. Holds the database lock until destroyed: destroy it before
// opening the store for writing again.
PkarrStoreOpenResult open_sqlite_pkarr_store_read_only(const PkarrStoreOptions& options);

// PostgreSQL store shared by several daemons (issue 15, pkarr_store_postgres.cpp). Creates or
// migrates the schema (version table iroh_pkarr_schema) and fails if the database cannot be
// reached or has a newer schema. Newest-wins (§2.4) is one conditional upsert inside PostgreSQL;
// put() returns after the commit. get() is served from a local LRU that a LISTEN connection keeps
// coherent with the writes of the other daemons (NOTIFY in each write's transaction) and that is
// dropped after that connection is re-established. While PostgreSQL is unreachable put() fails
// with Unavailable, get() answers from the cache, and connections are retried with backoff
// (100 ms doubling to 5 s). evict_older_than() runs on one daemon at a time (advisory lock).
PkarrStoreOpenResult open_postgres_pkarr_store(const PkarrStoreOptions& options);

}  // namespace iroh::server
