// PUT /pkarr/{z32} is answered 204 only once the packet is committed (spec address-lookup.md
// §4.1, README "Address lookup"), and a commit that fails is answered 5xx. Deterministic: a SQLite
// VFS registered as the process default wraps the OS one and holds (or fails) every write to a
// WAL file, i.e. the commit of a WAL-mode transaction, so the test decides when the commit
// completes. No production seam: the daemon's store opens its database through the default VFS.
#include <gtest/gtest.h>
#include <sodium.h>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "integration/daemon_fixture.hpp"
#include "integration/relay_server_test_client.hpp"
#include "iroh/pkarr.hpp"
#include "lookup/pkarr_http.hpp"
#include "lookup/pkarr_store_service.hpp"

namespace iroh::test {
namespace {

// ---- the WAL write gate ----------------------------------------------------------------------

enum class GateMode { Pass, Hold, Fail };

struct WalGate {
  std::mutex mu;
  std::condition_variable cv;
  GateMode mode = GateMode::Pass;
  int held = 0;  // writes waiting in Hold
  int failed = 0;

  void set(GateMode m) {
    std::lock_guard lock(mu);
    mode = m;
    cv.notify_all();
  }
  int held_now() {
    std::lock_guard lock(mu);
    return held;
  }
  // Called by xWrite on a WAL file: false = fail the write.
  bool pass() {
    std::unique_lock lock(mu);
    if (mode == GateMode::Fail) {
      ++failed;
      return false;
    }
    if (mode == GateMode::Hold) {
      ++held;
      cv.notify_all();
      // Bounded, so that a broken test cannot hang the daemon's store threads for ever.
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return mode != GateMode::Hold; });
      --held;
      if (mode == GateMode::Fail) return false;
    }
    return true;
  }
};

WalGate& gate() {
  static WalGate g;
  return g;
}

struct GateFile {
  sqlite3_file base;  // pMethods = &kGateMethods
  sqlite3_file* real;
  bool wal;
};

sqlite3_vfs* g_os_vfs = nullptr;

sqlite3_file* real_of(sqlite3_file* f) {
  return reinterpret_cast<GateFile*>(f)->real;
}

const sqlite3_io_methods kGateMethods = {
    3,
    [](sqlite3_file* f) { return real_of(f)->pMethods->xClose(real_of(f)); },
    [](sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
      return real_of(f)->pMethods->xRead(real_of(f), p, n, off);
    },
    [](sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
      if (reinterpret_cast<GateFile*>(f)->wal && !gate().pass()) return SQLITE_IOERR_WRITE;
      return real_of(f)->pMethods->xWrite(real_of(f), p, n, off);
    },
    [](sqlite3_file* f, sqlite3_int64 size) {
      return real_of(f)->pMethods->xTruncate(real_of(f), size);
    },
    [](sqlite3_file* f, int flags) { return real_of(f)->pMethods->xSync(real_of(f), flags); },
    [](sqlite3_file* f, sqlite3_int64* size) {
      return real_of(f)->pMethods->xFileSize(real_of(f), size);
    },
    [](sqlite3_file* f, int lock) { return real_of(f)->pMethods->xLock(real_of(f), lock); },
    [](sqlite3_file* f, int lock) { return real_of(f)->pMethods->xUnlock(real_of(f), lock); },
    [](sqlite3_file* f, int* out) {
      return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
    },
    [](sqlite3_file* f, int op, void* arg) {
      return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
    },
    [](sqlite3_file* f) { return real_of(f)->pMethods->xSectorSize(real_of(f)); },
    [](sqlite3_file* f) { return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f)); },
    [](sqlite3_file* f, int page, int size, int extend, void volatile** out) {
      return real_of(f)->pMethods->xShmMap(real_of(f), page, size, extend, out);
    },
    [](sqlite3_file* f, int offset, int n, int flags) {
      return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
    },
    [](sqlite3_file* f) { real_of(f)->pMethods->xShmBarrier(real_of(f)); },
    [](sqlite3_file* f, int del) { return real_of(f)->pMethods->xShmUnmap(real_of(f), del); },
    [](sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
      *out = nullptr;  // no memory mapping: every access goes through xRead
      (void)f, (void)off, (void)n;
      return SQLITE_OK;
    },
    [](sqlite3_file* f, sqlite3_int64, void*) {
      (void)f;
      return SQLITE_OK;
    },
};

sqlite3_vfs g_gate_vfs;

// Installs the gate VFS as the default (once per process).
void install_gate_vfs() {
  static bool installed = [] {
    g_os_vfs = sqlite3_vfs_find(nullptr);
    g_gate_vfs = *g_os_vfs;
    g_gate_vfs.zName = "iroh-test-wal-gate";
    g_gate_vfs.pNext = nullptr;
    g_gate_vfs.szOsFile = int(sizeof(GateFile)) + g_os_vfs->szOsFile;
    g_gate_vfs.pAppData = g_os_vfs->pAppData;
    g_gate_vfs.xOpen = [](sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags,
                          int* out_flags) {
      auto* gf = reinterpret_cast<GateFile*>(f);
      gf->real = reinterpret_cast<sqlite3_file*>(gf + 1);
      gf->wal = (flags & SQLITE_OPEN_WAL) != 0;
      int rc = g_os_vfs->xOpen(g_os_vfs, name, gf->real, flags, out_flags);
      gf->base.pMethods = gf->real->pMethods ? &kGateMethods : nullptr;
      return rc;
    };
    // The other VFS methods are the OS VFS's own; they get the gate VFS as their first argument,
    // which carries the same pAppData.
    return sqlite3_vfs_register(&g_gate_vfs, 1) == SQLITE_OK;
  }();
  ASSERT_TRUE(installed);
}

// ---- the daemon ------------------------------------------------------------------------------

pkarr::SignedPacket make_packet(const relay::SecretKey& key) {
  pkarr::EndpointInfo info;
  info.relay_urls = {"https://relay.example./"};
  auto ts = std::uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count());
  auto result = pkarr::sign_endpoint_info(key, ts, info);
  if (!std::holds_alternative<pkarr::SignedPacket>(result)) std::abort();
  return std::get<pkarr::SignedPacket>(result);
}

class PkarrCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    install_gate_vfs();
    gate().set(GateMode::Pass);
    dir_ = std::filesystem::temp_directory_path() /
           ("pkarr_commit_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto cfg = test_config();
    cfg.data_dir = dir_;
    cfg.zone_store.path = dir_ / "pkarr.sqlite3";
    cfg.pkarr.enabled = true;
    cfg.pkarr.put_rate_limit = config::PutRateLimitMode::Disabled;
    daemon_ = std::make_unique<server::Daemon>(cfg, 2);
    auto store = std::make_unique<server::PkarrStoreService>(daemon_->io_context(), cfg,
                                                             *daemon_->metrics_registry());
    server::add_pkarr_routes(daemon_->router(), *store, cfg.pkarr);
    daemon_->add_service(std::move(store));
    daemon_->start();
  }
  void TearDown() override {
    gate().set(GateMode::Pass);
    if (daemon_) daemon_->stop();
    daemon_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::optional<http::response<http::string_body>> put(const pkarr::SignedPacket& packet,
                                                       std::chrono::milliseconds timeout = 10s) {
    return http_request(*daemon_->http_endpoint(), http::verb::put,
                        "/pkarr/" + pkarr::key_to_z32(packet.public_key()), {}, timeout,
                        payload_of(packet));
  }
  std::optional<http::response<http::string_body>> get(const pkarr::SignedPacket& packet) {
    return http_request(*daemon_->http_endpoint(), http::verb::get,
                        "/pkarr/" + pkarr::key_to_z32(packet.public_key()));
  }

  static std::string payload_of(const pkarr::SignedPacket& packet) {
    auto p = packet.relay_payload();
    return std::string(reinterpret_cast<const char*>(p.data()), p.size());
  }

  std::filesystem::path dir_;
  std::unique_ptr<server::Daemon> daemon_;
};

TEST_F(PkarrCommitTest, NoAnswerBeforeTheCommitCompletes) {
  auto packet = make_packet(relay::SecretKey::generate());
  gate().set(GateMode::Hold);
  std::atomic<bool> answered = false;
  std::optional<http::response<http::string_body>> res;
  std::thread client([&] {
    res = put(packet, 20s);
    answered = true;
  });
  // The commit reached its WAL write and waits there.
  bool held = eventually([] { return gate().held_now() > 0; }, 10s);
  EXPECT_TRUE(held) << "the PUT never reached a WAL write";
  // While the commit is held, no answer: whatever arrives in this window came before the commit.
  // (A generous window in the direction that cannot flake: a correct server never answers here.)
  bool early = eventually([&] { return answered.load(); }, 1s);
  EXPECT_FALSE(early) << "answered " << (res ? res->result_int() : 0)
                      << " before the commit completed";
  gate().set(GateMode::Pass);
  client.join();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 204);
  auto got = get(packet);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->result_int(), 200);
  EXPECT_EQ(got->body(), payload_of(packet));
}

TEST_F(PkarrCommitTest, FailedCommitAnswers5xxAndStoresNothing) {
  auto packet = make_packet(relay::SecretKey::generate());
  gate().set(GateMode::Fail);
  auto res = put(packet);
  gate().set(GateMode::Pass);
  ASSERT_TRUE(res);
  EXPECT_GE(res->result_int(), 500) << res->body();
  EXPECT_LT(res->result_int(), 600);
  auto got = get(packet);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->result_int(), 404) << "a packet whose commit failed must not be served";
  // The store recovers once writes work again.
  auto again = put(packet);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->result_int(), 204);
  got = get(packet);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->result_int(), 200);
}

}  // namespace
}  // namespace iroh::test
