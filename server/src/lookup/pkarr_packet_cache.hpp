// Pieces shared by the PkarrStore backends (SQLite, PostgreSQL): the order-preserving signed
// encoding of packet timestamps and the bounded LRU of packets in front of the database.
#pragma once

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "iroh/pkarr.hpp"
#include "lookup/pkarr_change_stamps.hpp"

namespace iroh::server {

// SQL integers are signed: flipping the top bit maps u64 order onto i64 order.
inline std::int64_t timestamp_key(std::uint64_t ts) {
  return static_cast<std::int64_t>(ts ^ 0x8000000000000000ULL);
}

// Keyed (SipHash) so that keys chosen by clients cannot flood one hash bucket. Deliberately not
// noexcept: libstdc++ then keeps each node's hash code, where with a noexcept hasher it hashes
// every node again while walking a bucket (one SipHash per node visited: the lookup was ~5 % of
// the DNS server's CPU, issue 15 item 7).
struct PacketKeyHash {
  std::array<std::uint8_t, crypto_shorthash_KEYBYTES> secret;
  PacketKeyHash() { randombytes_buf(secret.data(), secret.size()); }
  std::size_t operator()(const pkarr::PublicKey& key) const {
    std::uint64_t out = 0;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&out), key.bytes.data(), key.bytes.size(),
                     secret.data());
    return static_cast<std::size_t>(out);
  }
};

// LRU of key -> latest packet, or nullopt for "known absent". `epoch` changes on every write so
// that a reader that loaded a row before a concurrent write does not cache the stale row.
//
// The recent per-key changes (bounded) let a writer whose database commit may have raced with
// other writes of the same key find out whether it did (store_committed): a node's own PUT then
// keeps the cache warm instead of dropping the entry (issue 15).
class PacketCache {
 public:
  // `stamps` (may be null) learns of every change (pkarr_change_stamps.hpp).
  explicit PacketCache(std::size_t capacity, std::shared_ptr<PkarrChangeStamps> stamps = nullptr)
      : capacity_(capacity), stamps_(std::move(stamps)), index_(16, PacketKeyHash()) {}

  // true if cached; `out` then holds the packet or nullopt.
  bool lookup(const pkarr::PublicKey& key, std::optional<pkarr::SignedPacket>& out) {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    entries_.splice(entries_.begin(), entries_, it->second);
    out = it->second->second;
    return true;
  }

  std::uint64_t epoch() {
    std::lock_guard lock(mu_);
    return epoch_;
  }

  void insert_if_unchanged(const pkarr::PublicKey& key,
                           const std::optional<pkarr::SignedPacket>& value,
                           std::uint64_t seen_epoch) {
    std::lock_guard lock(mu_);
    if (seen_epoch != epoch_) return;
    set_locked(key, value);
  }

  void store(const pkarr::SignedPacket& packet) {
    std::lock_guard lock(mu_);
    ++epoch_;
    note_locked(packet.public_key());
    set_locked(packet.public_key(), packet);
    if (stamps_) stamps_->changed(packet.public_key());
  }

  // `packet` was committed to a database that other writers share (the PostgreSQL store) by a
  // write that started at `seen_epoch` (epoch() read before sending it). Stored when nothing else
  // changed its key in this cache since then; otherwise a later write (another daemon's, whose
  // notification was handled before this call, or a concurrent one of ours) may be newer than
  // `packet`, and the entry is dropped so that the next get() reads the database. Also dropped
  // when the changes since seen_epoch are no longer all known (clear(), eviction, or more than
  // kRecentChanges changes since). Returns whether it stored the packet.
  bool store_committed(const pkarr::SignedPacket& packet, std::uint64_t seen_epoch) {
    std::lock_guard lock(mu_);
    const auto& key = packet.public_key();
    bool raced = seen_epoch < complete_since_;
    // Newest first; only the changes after seen_epoch (usually a handful) are looked at.
    for (auto it = recent_.rbegin(); !raced && it != recent_.rend() && it->first > seen_epoch;
         ++it) {
      raced = it->second == key;
    }
    ++epoch_;
    note_locked(key);
    if (stamps_) stamps_->changed(key);
    if (raced) {
      erase_locked(key);
      return false;
    }
    set_locked(key, packet);
    return true;
  }

  void evict_older_than(std::uint64_t cutoff_us) {
    // Whole cache, once per eviction pass (not per chunk).
    std::lock_guard lock(mu_);
    ++epoch_;
    complete_since_ = epoch_;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second && it->second->timestamp_us() < cutoff_us) {
        index_.erase(it->first);
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    if (stamps_) stamps_->changed_all();
  }

  // A write elsewhere (another daemon on the same PostgreSQL): the next get() reads the database.
  void forget(const pkarr::PublicKey& key) {
    std::lock_guard lock(mu_);
    ++epoch_;
    note_locked(key);
    erase_locked(key);
    if (stamps_) stamps_->changed(key);
  }

  // Writes may have been missed (e.g. notifications while disconnected): start over.
  void clear() {
    std::lock_guard lock(mu_);
    ++epoch_;
    complete_since_ = epoch_;
    index_.clear();
    entries_.clear();
    if (stamps_) stamps_->changed_all();
  }

  void bump_epoch() {
    std::lock_guard lock(mu_);
    ++epoch_;
  }

 private:
  using Entry = std::pair<pkarr::PublicKey, std::optional<pkarr::SignedPacket>>;
  // Changes remembered for store_committed: far more than the writes that can happen during one
  // database round trip, and ~160 KiB per cache.
  static constexpr std::size_t kRecentChanges = 4096;

  void note_locked(const pkarr::PublicKey& key) {
    recent_.emplace_back(epoch_, key);
    if (recent_.size() > kRecentChanges) {
      complete_since_ = recent_.front().first;
      recent_.pop_front();
    }
  }

  void erase_locked(const pkarr::PublicKey& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    entries_.erase(it->second);
    index_.erase(it);
  }

  void set_locked(const pkarr::PublicKey& key, const std::optional<pkarr::SignedPacket>& value) {
    if (capacity_ == 0) return;
    auto it = index_.find(key);
    if (it != index_.end()) {
      it->second->second = value;
      entries_.splice(entries_.begin(), entries_, it->second);
      return;
    }
    entries_.emplace_front(key, value);
    index_.emplace(key, entries_.begin());
    if (entries_.size() > capacity_) {
      index_.erase(entries_.back().first);
      entries_.pop_back();
    }
  }

  std::mutex mu_;
  std::size_t capacity_;
  std::shared_ptr<PkarrChangeStamps> stamps_;
  std::uint64_t epoch_ = 0;
  // (epoch, key) of the last kRecentChanges per-key changes, oldest first; every per-key change
  // with an epoch above complete_since_ is in it.
  std::deque<std::pair<std::uint64_t, pkarr::PublicKey>> recent_;
  std::uint64_t complete_since_ = 0;
  std::list<Entry> entries_;
  std::unordered_map<pkarr::PublicKey, std::list<Entry>::iterator, PacketKeyHash> index_;
};

}  // namespace iroh::server
