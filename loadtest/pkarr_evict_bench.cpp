// PUT latency of the SQLite pkarr store while the eviction task deletes a mass of expired packets
// (issue 19 item 8: target p99 <= 50 ms during the eviction of 1M rows), against the same PUT
// load without eviction in the same run (the baseline).
//
//   pkarr_evict_bench [rows=1000000] [putters=4] [dir=/tmp]
//
// Fills a fresh store with `rows` expired packets (one signed packet's bytes under distinct keys,
// written in bulk straight into the table), then runs `putters` threads issuing PUTs of fresh
// packets back to back: first for 2 s alone, then while evict_older_than() runs over all expired
// rows. Prints p50/p99/max of both phases and the eviction time. Never fails on timings.
#include <sodium.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lookup/pkarr_store.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using iroh::server::PkarrStore;

constexpr std::uint64_t kDayUs = 24ULL * 3600 * 1000000;

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

iroh::pkarr::SignedPacket make_packet(std::uint32_t index, std::uint64_t ts) {
  iroh::relay::SecretKey key;
  for (int i = 0; i < 4; ++i) key.seed[i] = static_cast<std::uint8_t>(index >> (8 * i));
  key.seed[31] = 0xbe;
  iroh::pkarr::EndpointInfo info;
  info.relay_urls = {"https://bench.example./"};
  auto result = iroh::pkarr::sign_endpoint_info(key, ts, info);
  if (!std::holds_alternative<iroh::pkarr::SignedPacket>(result)) std::abort();
  return std::get<iroh::pkarr::SignedPacket>(result);
}

// Bulk rows in the store's schema (see pkarr_store_sqlite.cpp): not verified by eviction.
void fill_expired(const fs::path& path, std::uint32_t rows, std::uint64_t ts) {
  const auto sample = make_packet(0, ts);
  const auto bytes = sample.bytes();
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) std::abort();
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO pkarr_packets (public_key, timestamp, packet, stored_at) "
                     "VALUES (?1, ?2, ?3, 0)",
                     -1, &stmt, nullptr);
  for (std::uint32_t i = 0; i < rows; ++i) {
    std::uint8_t key[32] = {};
    std::memcpy(key, &i, sizeof i);
    key[31] = 0xee;
    sqlite3_bind_blob(stmt, 1, key, 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, static_cast<std::int64_t>(ts ^ 0x8000000000000000ULL));
    sqlite3_bind_blob(stmt, 3, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) std::abort();
    sqlite3_reset(stmt);
  }
  sqlite3_finalize(stmt);
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(db);
}

struct Stats {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  std::size_t count = 0;
};

Stats stats(std::vector<double> ms) {
  Stats s;
  s.count = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.p50_ms = ms[ms.size() / 2];
  s.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  s.max_ms = ms.back();
  return s;
}

// PUTs from `putters` threads until `stop`; returns each PUT's latency in ms.
std::vector<double> put_load(PkarrStore& store, const std::vector<iroh::pkarr::SignedPacket>& pool,
                             int putters, const std::atomic<bool>& stop) {
  std::mutex mu;
  std::vector<double> all;
  std::vector<std::thread> threads;
  for (int t = 0; t < putters; ++t) {
    threads.emplace_back([&, t] {
      std::vector<double> mine;
      // Cycles through the pool (a second round is "not newer", still one write transaction)
      // until `stop`, bounded by 10 minutes.
      const auto deadline = Clock::now() + std::chrono::minutes(10);
      for (std::size_t n = 0; !stop && Clock::now() < deadline; ++n) {
        const std::size_t i =
            (static_cast<std::size_t>(t) + n * static_cast<std::size_t>(putters)) % pool.size();
        const auto start = Clock::now();
        auto result = store.put(pool[i]);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (std::holds_alternative<iroh::server::PkarrStoreError>(result)) std::abort();
      }
      std::lock_guard lock(mu);
      all.insert(all.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  return all;
}

void print(const char* phase, const Stats& s) {
  std::printf("%-22s %7zu PUTs  p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms\n", phase, s.count,
              s.p50_ms, s.p99_ms, s.max_ms);
}

}  // namespace

int main(int argc, char** argv) {
  const auto rows =
      static_cast<std::uint32_t>(argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000000);
  const int putters = argc > 2 ? std::atoi(argv[2]) : 4;
  const fs::path base = argc > 3 ? fs::path(argv[3]) : fs::temp_directory_path();
  if (sodium_init() < 0) return 1;
  const fs::path dir = base / ("pkarr_evict_bench_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  iroh::server::PkarrStoreOptions options;
  options.path = dir / "pkarr.sqlite3";
  options.cache_entries = 65536;
  options.max_records = 0;
  {
    auto opened = iroh::server::open_sqlite_pkarr_store(options);  // creates the schema
    if (!std::holds_alternative<std::unique_ptr<PkarrStore>>(opened)) return 1;
  }
  const std::uint64_t now = now_us();
  auto t0 = Clock::now();
  fill_expired(options.path, rows, now - 8 * kDayUs);
  std::printf("filled %u expired rows in %.1f s\n", rows,
              std::chrono::duration<double>(Clock::now() - t0).count());
  auto opened = iroh::server::open_sqlite_pkarr_store(options);
  if (!std::holds_alternative<std::unique_ptr<PkarrStore>>(opened)) return 1;
  auto& store = *std::get<std::unique_ptr<PkarrStore>>(opened);

  // Fresh packets for both phases (signed up front, so that signing is not measured).
  std::vector<iroh::pkarr::SignedPacket> pool, second;
  for (std::uint32_t i = 0; i < 20000; ++i) {
    pool.push_back(make_packet(1000000 + i, now));
    second.push_back(make_packet(2000000 + i, now));
  }

  // Baseline: 2 s of PUTs alone.
  std::atomic<bool> stop = false;
  std::thread timer([&] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    stop = true;
  });
  const Stats baseline = stats(put_load(store, pool, putters, stop));
  timer.join();

  // The same load during the eviction of every expired row.
  stop = false;
  double evict_s = 0;
  std::size_t evicted = 0;
  std::thread evictor([&] {
    const auto start = Clock::now();
    iroh::server::PkarrStoreOptions age;
    evicted = store.evict_older_than(
        iroh::server::pkarr_eviction_cutoff(age, std::chrono::system_clock::now()));
    evict_s = std::chrono::duration<double>(Clock::now() - start).count();
    stop = true;
  });
  const Stats during = stats(put_load(store, second, putters, stop));
  evictor.join();

  std::printf("evicted %zu rows in %.2f s (chunks of %zu)\n", evicted, evict_s,
              options.evict_batch);
  print("PUT alone", baseline);
  print("PUT during eviction", during);
  std::printf("p99 during eviction: %.3f ms (target <= 50 ms); ratio to baseline p99: %.2f\n",
              during.p99_ms, baseline.p99_ms > 0 ? during.p99_ms / baseline.p99_ms : 0.0);
  fs::remove_all(dir);
  return 0;
}
