// PostgreSQL implementation of PkarrStore (issue 15; contract in pkarr_store.hpp): N daemons on
// one database. Every method blocks (libpq's synchronous API on a bounded pool of connections);
// PkarrStoreService calls them from its thread pool, never from an io_context thread.
//
// Correctness under races (spec address-lookup.md §2.4): the newest-wins rule is the WHERE clause
// of one INSERT ... ON CONFLICT DO UPDATE, so PostgreSQL's row lock decides between two daemons
// racing on one key, and the statement is its own transaction: put() reports an outcome only after
// the commit. The same statement NOTIFYs the write (delivered at commit), which the LISTEN
// connection of every daemon turns into a cache invalidation. The writing daemon caches its own
// committed packet unless it saw another write of the key meanwhile (PacketCache::store_committed).
#include <libpq-fe.h>
#include <poll.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/log.hpp"
#include "lookup/pkarr_packet_cache.hpp"
#include "lookup/pkarr_store.hpp"

namespace iroh::server {
namespace {

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

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS iroh_pkarr_packets (
  public_key bytea PRIMARY KEY,
  ts bigint NOT NULL,            -- signed packet timestamp (µs) with the top bit flipped
  packet bytea NOT NULL,         -- full signed packet: key || signature || timestamp || DNS
  stored_at timestamptz NOT NULL -- time of the last write
);
CREATE INDEX IF NOT EXISTS iroh_pkarr_packets_ts ON iroh_pkarr_packets (ts);
)sql";

// §2.4 inside PostgreSQL: newer timestamp, or the same timestamp and greater DNS bytes (bytea
// compares like memcmp, shorter prefix first; the DNS message starts at byte 105, 1-based), the
// same rule as the SQLite store. No row returned = not newer. xmax = 0 tells an insert from an
// update. $4 is the notification payload "<node> p <key hex> <timestamp>"; " i" / " u" is added.
constexpr const char* kUpsert = R"sql(
WITH up AS (
  INSERT INTO iroh_pkarr_packets AS t (public_key, ts, packet, stored_at)
  VALUES ($1, $2, $3, now())
  ON CONFLICT (public_key) DO UPDATE
    SET ts = excluded.ts, packet = excluded.packet, stored_at = excluded.stored_at
  WHERE excluded.ts > t.ts
     OR (excluded.ts = t.ts AND substring(excluded.packet from 105) > substring(t.packet from 105))
  RETURNING (xmax = 0) AS inserted)
SELECT inserted, pg_notify('iroh_pkarr', $4 || CASE WHEN inserted THEN ' i' ELSE ' u' END)
FROM up
)sql";

// The same upsert for a batch of packets (group commit: one statement, one transaction, one WAL
// flush for all puts queued meanwhile); keys are distinct within a batch. $1..$3 are arrays,
// $4 is the payload prefix "<node> p "; the key (hex), the stored ts and " i" / " u" follow.
constexpr const char* kUpsertBatch = R"sql(
WITH up AS (
  INSERT INTO iroh_pkarr_packets AS t (public_key, ts, packet, stored_at)
  SELECT k, s, p, now() FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) AS i(k, s, p)
  ON CONFLICT (public_key) DO UPDATE
    SET ts = excluded.ts, packet = excluded.packet, stored_at = excluded.stored_at
  WHERE excluded.ts > t.ts
     OR (excluded.ts = t.ts AND substring(excluded.packet from 105) > substring(t.packet from 105))
  RETURNING t.public_key, (xmax = 0) AS inserted, t.ts)
SELECT public_key, inserted,
       pg_notify('iroh_pkarr', $4 || encode(public_key, 'hex') || ' ' || ts ||
                               CASE WHEN inserted THEN ' i' ELSE ' u' END)
FROM up
)sql";

constexpr const char* kGet = "SELECT packet FROM iroh_pkarr_packets WHERE public_key = $1";
constexpr const char* kExists = "SELECT 1 FROM iroh_pkarr_packets WHERE public_key = $1";

// One chunk of an eviction; $3 is the payload "<node> e <cutoff>", the count is appended.
constexpr const char* kEvict = R"sql(
WITH d AS (
  DELETE FROM iroh_pkarr_packets WHERE public_key IN
    (SELECT public_key FROM iroh_pkarr_packets WHERE ts < $1 LIMIT $2)
  RETURNING 1),
n AS (SELECT count(*) AS n FROM d)
SELECT n.n, (SELECT count(*) FROM (SELECT pg_notify('iroh_pkarr', $3 || ' ' || n.n)
                                   WHERE n.n > 0) x)
FROM n
)sql";

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

std::string first_line(std::string text) {
  text = text.substr(0, text.find_first_of("\r\n"));
  return text;
}

// libpq messages end with a newline and may span lines; one line for our logs.
std::string pq_message(const PGconn* c) {
  std::string m = c != nullptr ? PQerrorMessage(c) : "out of memory";
  std::replace(m.begin(), m.end(), '\n', ' ');
  while (!m.empty() && m.back() == ' ') m.pop_back();
  return m;
}

void put_be64(std::uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

class PostgresPkarrStore final : public PkarrStore {
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

  PkarrPutResult put(const pkarr::SignedPacket& packet) override;
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

PGconn* PostgresPkarrStore::connect(std::string& error) const {
  // Our defaults first: the URL (expand_dbname) overrides them, the password file overrides it.
  std::vector<const char*> keys{"application_name",    "connect_timeout",  "keepalives_idle",
                                "keepalives_interval", "keepalives_count", "dbname"};
  std::vector<const char*> values{"iroh-relay", "3", "10",
                                  "5",          "3", options_.postgres_conninfo.c_str()};
  std::string password;
  if (!options_.postgres_password_file.empty()) {
    std::ifstream in(options_.postgres_password_file);
    if (!in) {
      error = "cannot read zone_store.postgres_password_file " +
              options_.postgres_password_file.string();
      return nullptr;
    }
    std::getline(in, password);
    password = first_line(password);
    keys.push_back("password");
    values.push_back(password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), 1);
  sodium_memzero(password.data(), password.size());
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    error = "cannot connect to PostgreSQL: " + pq_message(c);
    if (c != nullptr) PQfinish(c);
    return nullptr;
  }
  // A hung server must not hold a store thread forever.
  Result r(PQexec(c, "SET statement_timeout = '10s'"));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    error = "PostgreSQL: " + pq_message(c);
    PQfinish(c);
    return nullptr;
  }
  return c;
}

bool PostgresPkarrStore::prepare(PGconn* c, std::string& error) const {
  // Parameter types spelled out (bytea 17, int8 20, text 25): the values are sent in binary.
  static const Oid upsert_types[] = {17, 20, 17, 25};
  static const Oid batch_types[] = {1001, 1016, 1001, 25};  // bytea[], int8[], bytea[], text
  static const Oid key_types[] = {17};
  static const Oid evict_types[] = {20, 20, 25};
  struct Statement {
    const char* name;
    const char* sql;
    int count;
    const Oid* types;
  };
  const Statement statements[] = {{"upsert", kUpsert, 4, upsert_types},
                                  {"upsert_batch", kUpsertBatch, 4, batch_types},
                                  {"get", kGet, 1, key_types},
                                  {"exists", kExists, 1, key_types},
                                  {"evict", kEvict, 3, evict_types}};
  for (const auto& st : statements) {
    Result r(PQprepare(c, st.name, st.sql, st.count, st.types));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      error = std::string("PostgreSQL: prepare ") + st.name + ": " + pq_message(c);
      return false;
    }
  }
  return true;
}

void PostgresPkarrStore::mark_down(const std::string& why) {
  if (!down_.exchange(true)) {
    log::warn("pkarr store: PostgreSQL unavailable (", why,
              "); PUTs answer 503, cached packets are still served, reconnecting with backoff");
  }
}

void PostgresPkarrStore::mark_up(bool count) {
  if (down_.exchange(false)) {
    log::info("pkarr store: PostgreSQL reachable again");
    if (count && options_.on_reconnect) options_.on_reconnect();
  }
}

std::variant<PostgresPkarrStore::Lease, PkarrStoreError> PostgresPkarrStore::acquire() {
  std::unique_lock lock(pool_mu_);
  const auto deadline = Clock::now() + kAcquireTimeout;
  for (;;) {
    if (stop_) return PkarrStoreError{"pkarr store: closing", PkarrStoreErrorKind::Unavailable};
    if (!idle_.empty()) {
      PGconn* c = idle_.back();
      idle_.pop_back();
      return Lease{c, true};
    }
    const std::size_t limit = std::max<std::size_t>(options_.postgres_connections, 1);
    if (open_ < limit && !(down_ && connecting_)) {
      if (down_ && Clock::now() < retry_at_) {
        return PkarrStoreError{"pkarr store: PostgreSQL unavailable, retrying",
                               PkarrStoreErrorKind::Unavailable};
      }
      ++open_;
      connecting_ = true;
      lock.unlock();
      std::string error;
      PGconn* c = connect(error);
      if (c != nullptr && !prepare(c, error)) {
        PQfinish(c);
        c = nullptr;
      }
      lock.lock();
      connecting_ = false;
      if (c == nullptr) {
        --open_;
        retry_at_ = Clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, kBackoffMax);
        lock.unlock();
        mark_down(error);
        pool_cv_.notify_all();
        return PkarrStoreError{"pkarr store: " + error, PkarrStoreErrorKind::Unavailable};
      }
      backoff_ = kBackoffMin;
      lock.unlock();
      mark_up(true);
      return Lease{c, false};
    }
    if (down_) {
      return PkarrStoreError{"pkarr store: PostgreSQL unavailable, retrying",
                             PkarrStoreErrorKind::Unavailable};
    }
    if (pool_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return PkarrStoreError{"pkarr store: no free PostgreSQL connection within 5 s",
                             PkarrStoreErrorKind::Unavailable};
    }
  }
}

void PostgresPkarrStore::release(PGconn* conn) {
  {
    std::lock_guard lock(pool_mu_);
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE) {
      idle_.push_back(conn);
    } else {
      PQfinish(conn);
      --open_;
    }
  }
  pool_cv_.notify_one();
}

PkarrStoreError PostgresPkarrStore::failed(PGconn* conn, std::string_view what) {
  std::string message = "pkarr store: PostgreSQL " + std::string(what) + ": " + pq_message(conn);
  if (PQstatus(conn) == CONNECTION_OK) {
    release(conn);
    return PkarrStoreError{message, PkarrStoreErrorKind::Other};
  }
  const std::string why = pq_message(conn);
  std::vector<PGconn*> stale;
  {
    std::lock_guard lock(pool_mu_);
    PQfinish(conn);
    --open_;
    stale.swap(idle_);
    open_ -= stale.size();
    retry_at_ = Clock::now();
  }
  for (PGconn* c : stale) PQfinish(c);
  mark_down(why);
  pool_cv_.notify_all();
  return PkarrStoreError{message, PkarrStoreErrorKind::Unavailable};
}

std::optional<std::size_t> PostgresPkarrStore::count_rows(PGconn* c) {
  Result r(PQexec(c, "SELECT count(*) FROM iroh_pkarr_packets"));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) return std::nullopt;
  ++scans_;
  return static_cast<std::size_t>(std::stoull(PQgetvalue(r.get(), 0, 0)));
}

std::optional<PkarrStoreError> PostgresPkarrStore::open() {
  auto fail = [](std::string m) {
    return PkarrStoreError{"pkarr store: " + m, PkarrStoreErrorKind::Unavailable};
  };
  std::string error;
  PGconn* c = connect(error);
  if (c == nullptr) return fail(error);
  auto exec = [&](const char* sql, ExecStatusType want) -> bool {
    Result r(PQexec(c, sql));
    if (PQresultStatus(r.get()) == want) return true;
    error = pq_message(c);
    return false;
  };
  // Schema creation and migration: one daemon at a time (transaction-scoped advisory lock).
  bool ok = exec("BEGIN", PGRES_COMMAND_OK) &&
            exec((std::string("SELECT pg_advisory_xact_lock(") + kSchemaLock + ")").c_str(),
                 PGRES_TUPLES_OK) &&
            exec("CREATE TABLE IF NOT EXISTS iroh_pkarr_schema (version integer NOT NULL)",
                 PGRES_COMMAND_OK);
  int version = 0;
  if (ok) {
    Result r(PQexec(c, "SELECT coalesce(max(version), 0) FROM iroh_pkarr_schema"));
    ok = PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) == 1;
    if (ok) version = std::atoi(PQgetvalue(r.get(), 0, 0));
    if (!ok) error = pq_message(c);
  }
  if (ok && version > kSchemaVersion) {
    PQfinish(c);
    return PkarrStoreError{"pkarr store: PostgreSQL schema version " + std::to_string(version) +
                           " is newer than this build supports (" + std::to_string(kSchemaVersion) +
                           ")"};
  }
  if (ok && version < kSchemaVersion) {
    // Migrations from older versions go here, one step per version.
    ok = exec(kSchema, PGRES_COMMAND_OK) &&
         exec("INSERT INTO iroh_pkarr_schema (version) VALUES (1)", PGRES_COMMAND_OK);
  }
  ok = ok && exec("COMMIT", PGRES_COMMAND_OK);
  // LISTEN before counting: a write committed after the count is notified.
  ok = ok && exec((std::string("LISTEN ") + kChannel).c_str(), PGRES_COMMAND_OK);
  std::optional<std::size_t> n;
  if (ok) n = count_rows(c);
  if (!ok || !n) {
    if (error.empty()) error = pq_message(c);
    PQfinish(c);
    return fail("PostgreSQL schema: " + error);
  }
  count_ = *n;
  listening_ = true;
  listener_ = std::thread([this, c] { listen_loop(c); });
  return std::nullopt;
}

PostgresPkarrStore::~PostgresPkarrStore() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (listener_.joinable()) listener_.join();
  std::lock_guard lock(pool_mu_);
  for (PGconn* c : idle_) PQfinish(c);
  idle_.clear();
}

void PostgresPkarrStore::on_notification(const char* payload) {
  // "<node> p <key hex> <ts> <i|u>" or "<node> e <cutoff> <n>"
  std::istringstream in(payload);
  std::string node, kind;
  in >> node >> kind;
  if (node == node_) return;  // applied when we wrote it
  if (kind == "p") {
    std::string hex, ts, op;
    in >> hex >> ts >> op;
    auto key = pkarr::PublicKey::parse(hex);
    if (!key) return;
    cache_.forget(*key);
    if (op == "i") count_.fetch_add(1, std::memory_order_relaxed);
  } else if (kind == "e") {
    std::uint64_t cutoff = 0, n = 0;
    in >> cutoff >> n;
    if (!in) return;
    cache_.evict_older_than(cutoff);
    std::size_t before = count_.load(std::memory_order_relaxed);
    count_.store(before - std::min<std::size_t>(before, n), std::memory_order_relaxed);
  }
}

void PostgresPkarrStore::listen_loop(PGconn* first) {
  PGconn* c = first;
  auto backoff = kBackoffMin;
  bool lost = false;
  while (!stop_) {
    if (c == nullptr) {
      std::string error;
      c = connect(error);
      if (c != nullptr) {
        Result r(PQexec(c, (std::string("LISTEN ") + kChannel).c_str()));
        std::optional<std::size_t> n;
        if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) n = count_rows(c);
        if (!n) {
          PQfinish(c);
          c = nullptr;
        } else {
          // Notifications were missed while disconnected: nothing cached can be trusted.
          cache_.clear();
          count_ = *n;
          listening_ = true;
          backoff = kBackoffMin;
          if (lost) log::info("pkarr store: PostgreSQL LISTEN connection re-established");
          lost = false;
          mark_up(false);
          if (options_.on_reconnect) options_.on_reconnect();
        }
      }
      if (c == nullptr) {
        std::unique_lock lock(stop_mu_);
        stop_cv_.wait_for(lock, backoff, [&] { return stop_.load(); });
        backoff = std::min(backoff * 2, kBackoffMax);
        continue;
      }
    }
    pollfd pfd{PQsocket(c), POLLIN, 0};
    // 200 ms bounds how long the destructor waits for this thread.
    const int rc = pfd.fd >= 0 ? ::poll(&pfd, 1, 200) : -1;
    bool broken = rc < 0 && errno != EINTR;
    if (rc > 0 && PQconsumeInput(c) == 0) broken = true;
    while (PGnotify* n = PQnotifies(c)) {
      on_notification(n->extra);
      PQfreemem(n);
    }
    if (broken || PQstatus(c) != CONNECTION_OK) {
      listening_ = false;
      if (!lost) log::warn("pkarr store: PostgreSQL LISTEN connection lost: ", pq_message(c));
      lost = true;
      mark_down("LISTEN connection lost");
      PQfinish(c);
      c = nullptr;
    }
  }
  if (c != nullptr) PQfinish(c);
}

PkarrPutResult PostgresPkarrStore::put(const pkarr::SignedPacket& packet) {
  const pkarr::SignedPacket* one[1] = {&packet};
  PkarrPutResult result;
  put_batch(one, std::span<PkarrPutResult>(&result, 1));
  return result;
}

void PostgresPkarrStore::put_batch(std::span<const pkarr::SignedPacket* const> packets,
                                   std::span<PkarrPutResult> results) {
  const std::size_t n = std::min(packets.size(), results.size());
  if (n == 0) return;
  // At the max_records bound each new key needs its own check: one at a time.
  if (options_.max_records > 0 && size() >= options_.max_records) {
    for (std::size_t i = 0; i < n; ++i) results[i] = put_one(*packets[i]);
    return;
  }
  std::vector<PendingPut> requests;
  requests.reserve(n);
  for (std::size_t i = 0; i < n; ++i) requests.push_back(PendingPut{packets[i]});
  auto all_done = [&] {
    return std::all_of(requests.begin(), requests.end(),
                       [](const PendingPut& p) { return p.done; });
  };
  std::unique_lock lock(write_mu_);
  for (PendingPut& r : requests) queue_.push_back(&r);
  // Ours may be split over two leaders' batches (kMaxBatch), which finish in any order.
  while (!all_done()) {
    // Queued in another leader's batch, or enough leaders at work: wait for them.
    if (queue_.empty() || leaders_ >= kLeaders) {
      write_cv_.wait(lock);
      continue;
    }
    ++leaders_;
    std::vector<PendingPut*> batch;
    const std::size_t take = std::min(queue_.size(), kMaxBatch);
    batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
    lock.unlock();
    commit_batch(batch);
    lock.lock();
    for (PendingPut* p : batch) p->done = true;
    --leaders_;
    write_cv_.notify_all();
  }
  lock.unlock();
  for (std::size_t i = 0; i < n; ++i) results[i] = std::move(requests[i].result);
}

// Binary array parameter (PostgreSQL's array send format): one dimension, no NULLs.
class ArrayParam {
 public:
  ArrayParam(Oid element, std::size_t count) {
    be32(1);
    be32(0);
    be32(element);
    be32(static_cast<std::uint32_t>(count));
    be32(1);
  }
  void add(const void* data, std::size_t size) {
    be32(static_cast<std::uint32_t>(size));
    out_.append(static_cast<const char*>(data), size);
  }
  const std::string& bytes() const { return out_; }

 private:
  void be32(std::uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    out_.append(b, 4);
  }
  std::string out_;
};

void PostgresPkarrStore::commit_batch(const std::vector<PendingPut*>& batch) {
  // One row per key: of several packets for one key only the most recent can win (§2.4); the
  // others are reported NotNewer (their 204 is the same).
  std::map<std::array<std::uint8_t, 32>, PendingPut*> winners;
  for (PendingPut* p : batch) {
    p->result = PkarrPutOutcome::NotNewer;
    auto [it, fresh] = winners.emplace(p->packet->public_key().bytes, p);
    if (!fresh && p->packet->more_recent_than(*it->second->packet)) it->second = p;
  }
  ArrayParam keys(17, winners.size()), stamps(20, winners.size()), packets(17, winners.size());
  for (const auto& [key, p] : winners) {
    char ts[8];
    put_be64(static_cast<std::uint64_t>(timestamp_key(p->packet->timestamp_us())), ts);
    const auto bytes = p->packet->bytes();
    keys.add(key.data(), key.size());
    stamps.add(ts, sizeof ts);
    packets.add(bytes.data(), bytes.size());
  }
  const std::string prefix = node_ + " p ";
  const char* values[4] = {keys.bytes().data(), stamps.bytes().data(), packets.bytes().data(),
                           prefix.c_str()};
  const int lengths[4] = {static_cast<int>(keys.bytes().size()),
                          static_cast<int>(stamps.bytes().size()),
                          static_cast<int>(packets.bytes().size()), 0};
  const int formats[4] = {1, 1, 1, 0};
  auto fail_all = [&](const PkarrStoreError& e) {
    for (PendingPut* p : batch) p->result = e;
  };
  // Before the commit: store_committed() compares against the changes of a key seen after it.
  const std::uint64_t seen_epoch = cache_.epoch();
  for (int attempt = 0;; ++attempt) {
    auto lease = acquire();
    if (auto* e = std::get_if<PkarrStoreError>(&lease)) return fail_all(*e);
    auto [conn, reused] = std::get<Lease>(lease);
    Result r(PQexecPrepared(conn, "upsert_batch", 4, values, lengths, formats, 1));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      auto e = failed(conn, "write");
      // A connection that sat idle may have lost its server (restart): one retry.
      if (e.kind == PkarrStoreErrorKind::Unavailable && reused && attempt == 0) continue;
      return fail_all(e);
    }
    release(conn);
    for (int row = 0; row < PQntuples(r.get()); ++row) {
      if (PQgetlength(r.get(), row, 0) != 32) continue;
      std::array<std::uint8_t, 32> key;
      std::memcpy(key.data(), PQgetvalue(r.get(), row, 0), key.size());
      auto it = winners.find(key);
      if (it == winners.end()) continue;
      const bool inserted = PQgetvalue(r.get(), row, 1)[0] == 1;
      if (inserted) count_.fetch_add(1, std::memory_order_relaxed);
      it->second->result = inserted ? PkarrPutOutcome::Inserted : PkarrPutOutcome::Updated;
      // Keeps the cache warm for the GET/DNS that usually follow a PUT, unless another write of
      // the key was seen since the commit started (see store_committed()).
      cache_.store_committed(*it->second->packet, seen_epoch);
    }
    return;
  }
}

PkarrPutResult PostgresPkarrStore::put_one(const pkarr::SignedPacket& packet) {
  const auto& key = packet.public_key().bytes;
  const auto bytes = packet.bytes();
  char ts[8];
  put_be64(static_cast<std::uint64_t>(timestamp_key(packet.timestamp_us())), ts);
  const std::string payload =
      node_ + " p " + packet.public_key().to_hex() + " " + std::to_string(packet.timestamp_us());
  const char* values[4] = {reinterpret_cast<const char*>(key.data()), ts,
                           reinterpret_cast<const char*>(bytes.data()), payload.c_str()};
  const int lengths[4] = {static_cast<int>(key.size()), 8, static_cast<int>(bytes.size()), 0};
  const int formats[4] = {1, 1, 1, 0};

  const std::uint64_t seen_epoch = cache_.epoch();  // see commit_batch()
  // A connection that sat idle may have lost its server (restart): one retry on a fresh one.
  for (int attempt = 0;; ++attempt) {
    auto lease = acquire();
    if (auto* e = std::get_if<PkarrStoreError>(&lease)) return *e;
    auto [conn, reused] = std::get<Lease>(lease);

    if (options_.max_records > 0 && size() >= options_.max_records) {
      // At the bound (a count kept from notifications, so approximate across daemons): only
      // updates of stored keys are accepted.
      Result r(PQexecPrepared(conn, "exists", 1, values, lengths, formats, 0));
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        auto e = failed(conn, "read");
        if (e.kind == PkarrStoreErrorKind::Unavailable && reused && attempt == 0) continue;
        return e;
      }
      if (PQntuples(r.get()) == 0) {
        release(conn);
        return PkarrStoreError{
            "pkarr store: full (max_records " + std::to_string(options_.max_records) + " packets)",
            PkarrStoreErrorKind::AtCapacity};
      }
    }

    Result r(PQexecPrepared(conn, "upsert", 4, values, lengths, formats, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      auto e = failed(conn, "write");
      if (e.kind == PkarrStoreErrorKind::Unavailable && reused && attempt == 0) continue;
      return e;
    }
    release(conn);
    if (PQntuples(r.get()) == 0) return PkarrPutOutcome::NotNewer;
    const bool inserted = PQgetvalue(r.get(), 0, 0)[0] == 't';
    if (inserted) count_.fetch_add(1, std::memory_order_relaxed);
    // Stored unless another write of the key was seen since the commit started: another daemon's
    // newer packet may have been committed (and its notification handled) meanwhile, and storing
    // ours would then pin the older packet (see store_committed()).
    cache_.store_committed(packet, seen_epoch);
    return inserted ? PkarrPutOutcome::Inserted : PkarrPutOutcome::Updated;
  }
}

PkarrGetResult PostgresPkarrStore::get(const pkarr::PublicKey& key) {
  std::optional<pkarr::SignedPacket> cached;
  // Without the LISTEN connection the cache may miss other daemons' writes: read through, and
  // fall back to the cache only when PostgreSQL cannot answer.
  const bool coherent = listening_.load();
  const bool hit = cache_.lookup(key, cached);
  if (hit && coherent) return cached;
  const std::uint64_t epoch = cache_.epoch();

  const char* values[1] = {reinterpret_cast<const char*>(key.bytes.data())};
  const int lengths[1] = {static_cast<int>(key.bytes.size())};
  const int formats[1] = {1};
  for (int attempt = 0;; ++attempt) {
    auto lease = acquire();
    if (auto* e = std::get_if<PkarrStoreError>(&lease)) {
      if (hit) return cached;
      return *e;
    }
    auto [conn, reused] = std::get<Lease>(lease);
    Result r(PQexecPrepared(conn, "get", 1, values, lengths, formats, 1));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      auto e = failed(conn, "read");
      if (e.kind == PkarrStoreErrorKind::Unavailable && reused && attempt == 0) continue;
      if (hit) return cached;
      return e;
    }
    release(conn);
    std::optional<pkarr::SignedPacket> value;
    if (PQntuples(r.get()) > 0) {
      const auto* data = reinterpret_cast<const std::uint8_t*>(PQgetvalue(r.get(), 0, 0));
      const auto size = static_cast<std::size_t>(PQgetlength(r.get(), 0, 0));
      // Re-verified: a damaged row is reported, never served.
      auto parsed = pkarr::SignedPacket::from_bytes(pkarr::ByteSpan(data, size));
      auto* packet = std::get_if<pkarr::SignedPacket>(&parsed);
      if (packet == nullptr || packet->public_key() != key) {
        return PkarrStoreError{"pkarr store: damaged PostgreSQL row for key " +
                               pkarr::key_to_z32(key)};
      }
      value = std::move(*packet);
    }
    cache_.insert_if_unchanged(key, value, epoch);
    return value;
  }
}

std::size_t PostgresPkarrStore::evict_older_than(std::uint64_t cutoff_us) {
  auto lease = acquire();
  if (std::holds_alternative<PkarrStoreError>(lease)) return 0;
  PGconn* conn = std::get<Lease>(lease).conn;
  // One daemon at a time; the session lock is released below, or with the connection.
  Result locked(
      PQexec(conn, (std::string("SELECT pg_try_advisory_lock(") + kEvictLock + ")").c_str()));
  if (PQresultStatus(locked.get()) != PGRES_TUPLES_OK) {
    failed(conn, "eviction lock");
    return 0;
  }
  if (PQgetvalue(locked.get(), 0, 0)[0] != 't') {
    release(conn);
    return 0;
  }
  char cutoff[8], limit[8];
  put_be64(static_cast<std::uint64_t>(timestamp_key(cutoff_us)), cutoff);
  const std::size_t batch = std::max<std::size_t>(options_.evict_batch, 1);
  put_be64(batch, limit);
  const std::string payload = node_ + " e " + std::to_string(cutoff_us);
  const char* values[3] = {cutoff, limit, payload.c_str()};
  const int lengths[3] = {8, 8, 0};
  const int formats[3] = {1, 1, 0};
  std::size_t total = 0;
  // Chunks of `batch` rows, each its own transaction, so puts are never held behind a mass
  // eviction for long.
  for (;;) {
    Result r(PQexecPrepared(conn, "evict", 3, values, lengths, formats, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
      failed(conn, "eviction");
      conn = nullptr;
      break;
    }
    const std::size_t deleted = std::stoull(PQgetvalue(r.get(), 0, 0));
    total += deleted;
    if (deleted > 0) {
      const std::size_t before = count_.load(std::memory_order_relaxed);
      count_.store(before - std::min(before, deleted), std::memory_order_relaxed);
    }
    if (deleted < batch || stop_) break;
  }
  if (conn != nullptr) {
    Result r(PQexec(conn, (std::string("SELECT pg_advisory_unlock(") + kEvictLock + ")").c_str()));
    release(conn);
  }
  if (total > 0) cache_.evict_older_than(cutoff_us);
  return total;
}

}  // namespace

PkarrStoreOpenResult open_postgres_pkarr_store(const PkarrStoreOptions& options) {
  if (sodium_init() < 0) return PkarrStoreError{"pkarr store: libsodium initialisation failed"};
  if (options.postgres_conninfo.empty()) {
    return PkarrStoreError{"pkarr store: no zone_store.postgres_url configured"};
  }
  // A malformed URL is a configuration error, reported without echoing it (it may hold a
  // password).
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.postgres_conninfo.c_str(), &parse_error);
  if (parsed == nullptr) {
    // libpq quotes the offending text (e.g. `invalid IPv6 host address in URI: "..."`): only
    // what precedes the quote.
    std::string why = parse_error != nullptr ? first_line(parse_error) : "out of memory";
    why = why.substr(0, why.find('"'));
    while (!why.empty() && (why.back() == ' ' || why.back() == ':')) why.pop_back();
    PQfreemem(parse_error);
    return PkarrStoreError{"pkarr store: zone_store.postgres_url: " + why};
  }
  PQconninfoFree(parsed);
  auto store = std::make_unique<PostgresPkarrStore>(options);
  if (auto e = store->open()) return *e;
  return std::unique_ptr<PkarrStore>(std::move(store));
}

}  // namespace iroh::server
