// PostgresPkarrStore (issue 15): §2.4 ordering inside PostgreSQL, two stores on one database
// (coherence through LISTEN/NOTIFY, races), eviction under the advisory lock, max_records, the
// schema version, an outage (PostgreSQL stopped and started again), and a daemon's own PUT
// keeping its cache warm (PacketCache::store_committed; the PacketCache tests open no socket).
//
// Every test process starts its own PostgreSQL 15 cluster with tests/interop/pg/pg_cluster.sh
// (temporary directory, 127.0.0.1, a free port) and removes it at the end.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "lookup/pkarr_packet_cache.hpp"
#include "lookup/pkarr_store.hpp"

namespace iroh::server {
namespace {

namespace fs = std::filesystem;
using pkarr::SignedPacket;
using namespace std::chrono_literals;

constexpr std::uint64_t kDay = 24ULL * 3600 * 1000000;

relay::SecretKey key_from_index(std::uint32_t index) {
  relay::SecretKey key;
  for (int i = 0; i < 4; ++i) key.seed[i] = static_cast<std::uint8_t>(index >> (8 * i));
  key.seed[31] = 0xa5;
  return key;
}

SignedPacket make_packet(const relay::SecretKey& key, std::uint64_t ts,
                         const std::string& relay = "https://relay.example./") {
  pkarr::EndpointInfo info;
  info.relay_urls = {relay};
  auto result = pkarr::sign_endpoint_info(key, ts, info);
  if (!std::holds_alternative<SignedPacket>(result)) std::abort();
  return std::get<SignedPacket>(result);
}

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Polls `done` every 10 ms for at most `limit`.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_GE(sodium_init(), 0);
    dir_ = fs::temp_directory_path() / ("iroh-pg-store-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    port_ = free_port();
    cluster("start", std::to_string(port_) + " fsync=off");
  }
  static void TearDownTestSuite() { cluster("destroy", ""); }

  static void cluster(const std::string& command, const std::string& args) {
    const std::string cmd =
        std::string(IROH_PG_CLUSTER) + " " + command + " " + dir_.string() + " " + args;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  static std::string url() {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
  }

  // A plain SQL statement on a connection of the test's own.
  static std::string sql(const std::string& statement) {
    PGconn* c = PQconnectdb(url().c_str());
    EXPECT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
    PGresult* r = PQexec(c, statement.c_str());
    const auto status = PQresultStatus(r);
    EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        << statement << ": " << PQerrorMessage(c);
    std::string out = status == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    PQfinish(c);
    return out;
  }

  void SetUp() override {
    sql("DROP TABLE IF EXISTS iroh_pkarr_packets, iroh_pkarr_schema");
    options_.postgres_conninfo = url();
    options_.postgres_connections = 4;
    options_.on_reconnect = [this] { ++reconnects_; };
  }

  std::unique_ptr<PkarrStore> open() {
    auto result = open_postgres_pkarr_store(options_);
    if (auto* e = std::get_if<PkarrStoreError>(&result)) {
      ADD_FAILURE() << e->message;
      return nullptr;
    }
    return std::move(std::get<std::unique_ptr<PkarrStore>>(result));
  }

  static PkarrPutOutcome put_ok(PkarrStore& store, const SignedPacket& packet) {
    auto result = store.put(packet);
    if (auto* e = std::get_if<PkarrStoreError>(&result)) {
      ADD_FAILURE() << e->message;
      return PkarrPutOutcome::NotNewer;
    }
    return std::get<PkarrPutOutcome>(result);
  }

  static std::optional<SignedPacket> get_ok(PkarrStore& store, const pkarr::PublicKey& key) {
    auto result = store.get(key);
    if (auto* e = std::get_if<PkarrStoreError>(&result)) {
      ADD_FAILURE() << e->message;
      return std::nullopt;
    }
    return std::get<std::optional<SignedPacket>>(result);
  }

  static inline fs::path dir_;
  static inline int port_ = 0;
  PkarrStoreOptions options_;
  std::atomic<int> reconnects_{0};
};

TEST_F(PostgresStoreTest, NewestWinsAndTieRule) {
  auto store = open();
  ASSERT_TRUE(store);
  const auto key = key_from_index(1);
  const SignedPacket p1 = make_packet(key, 1000);
  const SignedPacket p2 = make_packet(key, 2000);
  EXPECT_FALSE(get_ok(*store, p1.public_key()));
  EXPECT_EQ(put_ok(*store, p1), PkarrPutOutcome::Inserted);
  EXPECT_EQ(get_ok(*store, p1.public_key()), p1);
  EXPECT_EQ(put_ok(*store, p2), PkarrPutOutcome::Updated);
  EXPECT_EQ(put_ok(*store, p1), PkarrPutOutcome::NotNewer);
  EXPECT_EQ(put_ok(*store, p2), PkarrPutOutcome::NotNewer);  // identical bytes
  EXPECT_EQ(get_ok(*store, p1.public_key()), p2);
  EXPECT_EQ(store->size(), 1u);

  // §2.4 tie: same timestamp, the greater DNS bytes win, in either order.
  const auto key2 = key_from_index(2);
  const SignedPacket small = make_packet(key2, 5000, "https://a.example./");
  const SignedPacket large = make_packet(key2, 5000, "https://b.example./");
  ASSERT_TRUE(large.more_recent_than(small));
  EXPECT_EQ(put_ok(*store, small), PkarrPutOutcome::Inserted);
  EXPECT_EQ(put_ok(*store, large), PkarrPutOutcome::Updated);
  EXPECT_EQ(put_ok(*store, small), PkarrPutOutcome::NotNewer);
  EXPECT_EQ(get_ok(*store, key2.public_key()), large);
  EXPECT_EQ(store->size(), 2u);
  EXPECT_FALSE(store->degraded());

  // Persisted: a second store (another daemon) counts both at open and reads them.
  auto other = open();
  ASSERT_TRUE(other);
  EXPECT_EQ(other->size(), 2u);
  EXPECT_EQ(get_ok(*other, key2.public_key()), large);
  EXPECT_EQ(sql("SELECT max(version) FROM iroh_pkarr_schema"), "1");
}

// Node B caches a packet (and an absence); node A's writes reach B through NOTIFY.
TEST_F(PostgresStoreTest, TwoStoresStayCoherent) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  const auto key = key_from_index(10);
  const auto absent = key_from_index(11);
  const std::uint64_t ts = now_us();
  EXPECT_EQ(put_ok(*a, make_packet(key, ts, "https://one.example./")), PkarrPutOutcome::Inserted);
  EXPECT_EQ(get_ok(*b, key.public_key()), make_packet(key, ts, "https://one.example./"));
  EXPECT_FALSE(get_ok(*b, absent.public_key()));  // "known absent" is cached too

  const SignedPacket newer = make_packet(key, ts + 1, "https://two.example./");
  const SignedPacket fresh = make_packet(absent, ts);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(put_ok(*a, newer), PkarrPutOutcome::Updated);
  EXPECT_EQ(put_ok(*a, fresh), PkarrPutOutcome::Inserted);
  EXPECT_TRUE(eventually([&] { return get_ok(*b, key.public_key()) == newer; }, 5s));
  EXPECT_TRUE(eventually([&] { return get_ok(*b, absent.public_key()) == fresh; }, 5s));
  std::printf(
      "coherence delay A put -> B get: %.1f ms\n",
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  // B's count follows A's inserts (from the notifications, no COUNT(*) per request).
  EXPECT_TRUE(eventually([&] { return b->size() == 2; }, 5s)) << b->size();
  EXPECT_EQ(b->count_scans(), 1u);
}

// Both stores race on the same keys with different timestamps: the newest ends up everywhere.
TEST_F(PostgresStoreTest, ConcurrentPutsOnTwoStoresConverge) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  constexpr int kKeys = 4, kVersions = 40;
  const std::uint64_t base = now_us();
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      PkarrStore& store = t % 2 == 0 ? *a : *b;
      for (int v = kVersions - 1 - t; v >= 0; v -= 8) {
        for (int k = 0; k < kKeys; ++k) {
          auto r = store.put(make_packet(key_from_index(100 + k), base + v));
          if (std::holds_alternative<PkarrStoreError>(r)) ++errors;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (int k = 0; k < kKeys; ++k) {
    const SignedPacket newest = make_packet(key_from_index(100 + k), base + kVersions - 1);
    EXPECT_TRUE(eventually([&] { return get_ok(*a, newest.public_key()) == newest; }, 5s));
    EXPECT_TRUE(eventually([&] { return get_ok(*b, newest.public_key()) == newest; }, 5s));
  }
  EXPECT_EQ(sql("SELECT count(*) FROM iroh_pkarr_packets"), std::to_string(kKeys));
}

TEST_F(PostgresStoreTest, EvictionOneStoreAtATime) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  options_.evict_batch = 3;
  auto c = open();
  ASSERT_TRUE(c);
  const std::uint64_t now = now_us();
  for (std::uint32_t i = 0; i < 10; ++i)
    put_ok(*a, make_packet(key_from_index(200 + i), now - 8 * kDay));
  put_ok(*a, make_packet(key_from_index(300), now));
  EXPECT_TRUE(get_ok(*b, key_from_index(200).public_key()));  // cached on B
  ASSERT_TRUE(eventually([&] { return b->size() == 11; }, 5s));

  // Another node holds the eviction lock: nothing is evicted here.
  PGconn* holder = PQconnectdb(url().c_str());
  PGresult* r = PQexec(holder, "SELECT pg_advisory_lock(1769107300)");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
  PQclear(r);
  EXPECT_EQ(c->evict_older_than(now - 7 * kDay), 0u);
  PQclear(PQexec(holder, "SELECT pg_advisory_unlock(1769107300)"));
  PQfinish(holder);

  // In chunks of 3 (evict_batch), one pass.
  EXPECT_EQ(c->evict_older_than(now - 7 * kDay), 10u);
  EXPECT_EQ(c->size(), 1u);
  EXPECT_EQ(sql("SELECT count(*) FROM iroh_pkarr_packets"), "1");
  // B learns of it: count and cache.
  EXPECT_TRUE(eventually([&] { return b->size() == 1; }, 5s)) << b->size();
  EXPECT_TRUE(eventually([&] { return !get_ok(*b, key_from_index(200).public_key()); }, 5s));
  EXPECT_TRUE(get_ok(*b, key_from_index(300).public_key()));
}

TEST_F(PostgresStoreTest, MaxRecords) {
  options_.max_records = 2;
  auto store = open();
  ASSERT_TRUE(store);
  const std::uint64_t ts = now_us();
  EXPECT_EQ(put_ok(*store, make_packet(key_from_index(400), ts)), PkarrPutOutcome::Inserted);
  EXPECT_EQ(put_ok(*store, make_packet(key_from_index(401), ts)), PkarrPutOutcome::Inserted);
  auto refused = store->put(make_packet(key_from_index(402), ts));
  ASSERT_TRUE(std::holds_alternative<PkarrStoreError>(refused));
  EXPECT_EQ(std::get<PkarrStoreError>(refused).kind, PkarrStoreErrorKind::AtCapacity);
  // Updates of stored keys still work.
  EXPECT_EQ(put_ok(*store, make_packet(key_from_index(401), ts + 1)), PkarrPutOutcome::Updated);
  EXPECT_EQ(store->size(), 2u);
}

TEST_F(PostgresStoreTest, OpenErrors) {
  // A newer schema is refused.
  { ASSERT_TRUE(open()); }
  sql("INSERT INTO iroh_pkarr_schema (version) VALUES (99)");
  auto newer = open_postgres_pkarr_store(options_);
  ASSERT_TRUE(std::holds_alternative<PkarrStoreError>(newer));
  EXPECT_NE(std::get<PkarrStoreError>(newer).message.find("schema version 99 is newer"),
            std::string::npos)
      << std::get<PkarrStoreError>(newer).message;

  // A malformed URL: the error names the key, never echoes the URL (it may hold a password).
  options_.postgres_conninfo = "postgresql://user:s3cret@[::1";
  auto bad = open_postgres_pkarr_store(options_);
  ASSERT_TRUE(std::holds_alternative<PkarrStoreError>(bad));
  EXPECT_NE(std::get<PkarrStoreError>(bad).message.find("zone_store.postgres_url"),
            std::string::npos);
  EXPECT_EQ(std::get<PkarrStoreError>(bad).message.find("s3cret"), std::string::npos);

  // Nobody listening: Unavailable, quickly.
  options_.postgres_conninfo =
      "postgresql://postgres@127.0.0.1:" + std::to_string(free_port()) + "/postgres";
  auto unreachable = open_postgres_pkarr_store(options_);
  ASSERT_TRUE(std::holds_alternative<PkarrStoreError>(unreachable));
  EXPECT_EQ(std::get<PkarrStoreError>(unreachable).kind, PkarrStoreErrorKind::Unavailable);

  // The password file is used (trust authentication ignores it, but a missing one fails).
  options_.postgres_conninfo = url();
  options_.postgres_password_file = dir_ / "no-such-password-file";
  auto no_file = open_postgres_pkarr_store(options_);
  ASSERT_TRUE(std::holds_alternative<PkarrStoreError>(no_file));
  EXPECT_NE(std::get<PkarrStoreError>(no_file).message.find("postgres_password_file"),
            std::string::npos);
}

// PostgreSQL stopped: put() fails with Unavailable, get() serves cached keys, degraded(); started
// again: put() works again within 15 s, no reopen.
// Issue 15: a PUT stores the committed packet in the writer's cache (the GET/DNS answers that
// follow need no database read), and another store's newer write still replaces it there.
TEST_F(PostgresStoreTest, OwnPutKeepsTheCacheWarm) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  const auto key = key_from_index(600);
  const std::uint64_t ts = now_us();
  const SignedPacket first = make_packet(key, ts, "https://one.example./");
  EXPECT_EQ(put_ok(*a, first), PkarrPutOutcome::Inserted);
  // Rows deleted behind the stores' back (no notification): what A answers comes from its cache.
  sql("DELETE FROM iroh_pkarr_packets");
  EXPECT_EQ(get_ok(*a, key.public_key()), first);
  EXPECT_FALSE(get_ok(*b, key.public_key()));  // B never saw the packet: read from the table

  const SignedPacket newer = make_packet(key, ts + 1, "https://two.example./");
  EXPECT_EQ(put_ok(*b, newer), PkarrPutOutcome::Inserted);
  EXPECT_TRUE(eventually([&] { return get_ok(*a, key.public_key()) == newer; }, 5s));
  // An older packet is refused by PostgreSQL and leaves A's cache alone.
  EXPECT_EQ(put_ok(*a, first), PkarrPutOutcome::NotNewer);
  sql("DELETE FROM iroh_pkarr_packets");
  EXPECT_EQ(get_ok(*b, key.public_key()), newer);  // B cached its own PUT too
}

TEST_F(PostgresStoreTest, OutageAndReconnect) {
  auto store = open();
  ASSERT_TRUE(store);
  const auto key = key_from_index(500);
  const SignedPacket packet = make_packet(key, now_us());
  EXPECT_EQ(put_ok(*store, packet), PkarrPutOutcome::Inserted);
  EXPECT_EQ(get_ok(*store, key.public_key()), packet);  // read once: cached

  cluster("stop", "");
  auto refused = store->put(make_packet(key_from_index(501), now_us()));
  ASSERT_TRUE(std::holds_alternative<PkarrStoreError>(refused));
  EXPECT_EQ(std::get<PkarrStoreError>(refused).kind, PkarrStoreErrorKind::Unavailable);
  EXPECT_EQ(get_ok(*store, key.public_key()), packet);  // from the cache
  auto uncached = store->get(key_from_index(502).public_key());
  ASSERT_TRUE(std::holds_alternative<PkarrStoreError>(uncached));
  EXPECT_EQ(std::get<PkarrStoreError>(uncached).kind, PkarrStoreErrorKind::Unavailable);
  EXPECT_TRUE(eventually([&] { return store->degraded(); }, 5s));

  cluster("start", std::to_string(port_) + " fsync=off");
  const SignedPacket later = make_packet(key, now_us());
  EXPECT_TRUE(
      eventually([&] { return std::holds_alternative<PkarrPutOutcome>(store->put(later)); }, 15s));
  EXPECT_EQ(get_ok(*store, key.public_key()), later);
  EXPECT_TRUE(eventually([&] { return !store->degraded(); }, 15s));
  EXPECT_GE(reconnects_.load(), 1);
}

// PacketCache::store_committed, deterministically (no database, no socket).
TEST(PacketCache, StoreCommittedStoresWhenTheKeyDidNotChangeMeanwhile) {
  ASSERT_GE(sodium_init(), 0);
  PacketCache cache(16);
  const SignedPacket p = make_packet(key_from_index(1), 1000);
  const std::uint64_t seen = cache.epoch();
  cache.forget(key_from_index(2).public_key());  // another key's notification: irrelevant
  EXPECT_TRUE(cache.store_committed(p, seen));
  std::optional<SignedPacket> out;
  ASSERT_TRUE(cache.lookup(p.public_key(), out));
  EXPECT_EQ(out, p);
}

TEST(PacketCache, StoreCommittedDropsTheEntryAfterAnotherWriteOfTheKey) {
  ASSERT_GE(sodium_init(), 0);
  PacketCache cache(16);
  const auto key = key_from_index(3);
  const SignedPacket older = make_packet(key, 1000);
  std::optional<SignedPacket> out;
  // Our commit started, another daemon committed a newer packet and its notification was handled
  // before our store: storing ours would pin the older packet.
  std::uint64_t seen = cache.epoch();
  cache.forget(key.public_key());
  EXPECT_FALSE(cache.store_committed(older, seen));
  EXPECT_FALSE(cache.lookup(key.public_key(), out));
  // The same with an entry cached before: it is dropped, not kept.
  cache.insert_if_unchanged(key.public_key(), older, cache.epoch());
  seen = cache.epoch();
  cache.forget(key.public_key());
  EXPECT_FALSE(cache.store_committed(older, seen));
  EXPECT_FALSE(cache.lookup(key.public_key(), out));
  // Two of our own writes of one key committing at once: the one stored second may be older.
  const std::uint64_t seen1 = cache.epoch();
  const std::uint64_t seen2 = cache.epoch();
  EXPECT_TRUE(cache.store_committed(make_packet(key, 2000), seen2));
  EXPECT_FALSE(cache.store_committed(older, seen1));
  EXPECT_FALSE(cache.lookup(key.public_key(), out));
}

TEST(PacketCache, StoreCommittedDropsTheEntryWhenChangesWereNotTracked) {
  ASSERT_GE(sodium_init(), 0);
  PacketCache cache(16);
  const SignedPacket p = make_packet(key_from_index(4), 1000);
  std::optional<SignedPacket> out;
  std::uint64_t seen = cache.epoch();
  cache.clear();  // LISTEN reconnected: notifications may have been missed
  EXPECT_FALSE(cache.store_committed(p, seen));
  seen = cache.epoch();
  cache.evict_older_than(1);
  EXPECT_FALSE(cache.store_committed(p, seen));
  // More changes of other keys since the commit started than the cache remembers.
  seen = cache.epoch();
  for (std::uint32_t i = 0; i < 5000; ++i) cache.forget(key_from_index(100 + i).public_key());
  EXPECT_FALSE(cache.store_committed(p, seen));
  EXPECT_FALSE(cache.lookup(p.public_key(), out));
  // Afterwards (nothing since): stored again.
  EXPECT_TRUE(cache.store_committed(p, cache.epoch()));
  EXPECT_TRUE(cache.lookup(p.public_key(), out));
}

}  // namespace
}  // namespace iroh::server
