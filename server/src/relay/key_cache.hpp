// Already-validated Ed25519 keys (spec relay.md §6.10), so repeated datagrams to the same `dst`
// skip point decompression. A bounded, sharded set rather than a strict LRU: a hit takes one
// shard lock and no list splice, and on a full shard an arbitrary entry makes room. Only valid
// keys are stored, so a wrong eviction costs one re-validation, never a wrong answer.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <unordered_set>

#include "iroh/relay_proto.hpp"

namespace iroh::server {

class KeyCache {
 public:
  // capacity 0 disables caching: every call validates.
  explicit KeyCache(std::size_t capacity);

  // True if `key` is a valid Ed25519 point (EndpointId::is_valid_point). Thread-safe.
  bool is_valid(const relay::EndpointId& key);

  std::size_t size() const;

 private:
  static constexpr std::size_t kShards = 16;
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_set<relay::EndpointId, relay::EndpointIdHash> keys;
  };
  Shard& shard_for(const relay::EndpointId& key);

  std::size_t per_shard_capacity_;
  std::array<Shard, kShards> shards_;
};

}  // namespace iroh::server
