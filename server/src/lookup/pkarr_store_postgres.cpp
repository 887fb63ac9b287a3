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
#include "lookup/pkarr_store_postgres.hpp"

#include <array>
#include <cstring>
#include <map>

namespace iroh::server::postgres_store {

namespace {

void put_be64(std::uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
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

}  // namespace

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

}  // namespace iroh::server::postgres_store

namespace iroh::server {

using postgres_store::first_line;
using postgres_store::PostgresPkarrStore;

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
