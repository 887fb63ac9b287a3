// Lock-free change stamps of a PkarrStore, for caches of answers derived from stored packets
// (DnsHandler's UDP answer cache, issue 15 item 7): a cache takes stamp(key) before it reads the
// store and keeps the derived answer only while unchanged(key, stamp) holds. The store's
// PacketCache calls changed(key) after every change of a key's packet (put, a write of another
// daemon, forget) and changed_all() after changes of many keys (eviction, clear, a reopened
// store), always after the new state is visible to readers: a stamp taken before a read that saw
// the old packet is out of date once the change is visible.
//
// Keys share 4096 counters (by 8 bytes of the key): a change of one key also retires answers of
// the others on its counter. That costs those answers a re-read, never a stale answer; a client
// who grinds keys onto another's counter only makes that key's answers uncached.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "iroh/pkarr.hpp"

namespace iroh::server {

class PkarrChangeStamps {
 public:
  struct Stamp {
    std::uint64_t all = 0;
    std::uint64_t key = 0;
  };

  Stamp stamp(const pkarr::PublicKey& key) const {
    return {all_.load(std::memory_order_acquire),
            keys_[index(key)].load(std::memory_order_acquire)};
  }
  bool unchanged(const pkarr::PublicKey& key, const Stamp& s) const {
    const Stamp now = stamp(key);
    return now.all == s.all && now.key == s.key;
  }
  void changed(const pkarr::PublicKey& key) {
    keys_[index(key)].fetch_add(1, std::memory_order_acq_rel);
  }
  void changed_all() { all_.fetch_add(1, std::memory_order_acq_rel); }

 private:
  static constexpr std::size_t kCounters = 4096;
  static std::size_t index(const pkarr::PublicKey& key) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, key.bytes.data() + 8, sizeof bits);
    return static_cast<std::size_t>(bits % kCounters);
  }

  std::atomic<std::uint64_t> all_{0};
  std::array<std::atomic<std::uint64_t>, kCounters> keys_{};
};

}  // namespace iroh::server
