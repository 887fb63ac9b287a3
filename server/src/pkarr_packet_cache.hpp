// Pieces shared by the PkarrStore backends (SQLite, PostgreSQL): the order-preserving signed
// encoding of packet timestamps and the bounded LRU of packets in front of the database.
#pragma once

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "iroh/pkarr.hpp"

namespace iroh::server {

// SQL integers are signed: flipping the top bit maps u64 order onto i64 order.
inline std::int64_t timestamp_key(std::uint64_t ts) {
  return static_cast<std::int64_t>(ts ^ 0x8000000000000000ULL);
}

// Keyed (SipHash) so that keys chosen by clients cannot flood one hash bucket.
struct PacketKeyHash {
  std::array<std::uint8_t, crypto_shorthash_KEYBYTES> secret;
  PacketKeyHash() { randombytes_buf(secret.data(), secret.size()); }
  std::size_t operator()(const pkarr::PublicKey& key) const noexcept {
    std::uint64_t out = 0;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&out), key.bytes.data(), key.bytes.size(),
                     secret.data());
    return static_cast<std::size_t>(out);
  }
};

// LRU of key -> latest packet, or nullopt for "known absent". `epoch` changes on every write so
// that a reader that loaded a row before a concurrent write does not cache the stale row.
class PacketCache {
 public:
  explicit PacketCache(std::size_t capacity) : capacity_(capacity), index_(16, PacketKeyHash()) {}

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
    set_locked(packet.public_key(), packet);
  }

  void evict_older_than(std::uint64_t cutoff_us) {
    // Whole cache, once per eviction pass (not per chunk).
    std::lock_guard lock(mu_);
    ++epoch_;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second && it->second->timestamp_us() < cutoff_us) {
        index_.erase(it->first);
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // A write elsewhere (another daemon on the same PostgreSQL): the next get() reads the database.
  void forget(const pkarr::PublicKey& key) {
    std::lock_guard lock(mu_);
    ++epoch_;
    auto it = index_.find(key);
    if (it == index_.end()) return;
    entries_.erase(it->second);
    index_.erase(it);
  }

  // Writes may have been missed (e.g. notifications while disconnected): start over.
  void clear() {
    std::lock_guard lock(mu_);
    ++epoch_;
    index_.clear();
    entries_.clear();
  }

  void bump_epoch() {
    std::lock_guard lock(mu_);
    ++epoch_;
  }

 private:
  using Entry = std::pair<pkarr::PublicKey, std::optional<pkarr::SignedPacket>>;

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
  std::uint64_t epoch_ = 0;
  std::list<Entry> entries_;
  std::unordered_map<pkarr::PublicKey, std::list<Entry>::iterator, PacketKeyHash> index_;
};

}  // namespace iroh::server
