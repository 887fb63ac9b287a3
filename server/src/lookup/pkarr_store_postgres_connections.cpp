// PostgresPkarrStore's connections (spec address-lookup.md §7.1 persistence, issue 15 item 4):
// a bounded pool of libpq connections that reconnects with backoff when PostgreSQL goes away,
// and the LISTEN connection whose notifications keep every daemon's cache coherent with the
// writes of the others (§7.3 caching). The statements they run are in
// pkarr_store_postgres_schema.cpp, the writes and reads in pkarr_store_postgres.cpp.
#include <poll.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "core/log.hpp"
#include "lookup/pkarr_store_postgres.hpp"

namespace iroh::server::postgres_store {

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

}  // namespace iroh::server::postgres_store
