// PostgresPkarrStore's SQL (issue 15): the table, the prepared statements (the newest-wins rule
// of spec address-lookup.md §2.4 and the eviction of §7.2 run inside PostgreSQL), and open(),
// which creates or migrates the schema, one daemon at a time, before the store serves.
#include <cstdlib>

#include "lookup/pkarr_store_postgres.hpp"

namespace iroh::server::postgres_store {

namespace {

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

}  // namespace

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

}  // namespace iroh::server::postgres_store
