#include "relay/key_cache.hpp"

namespace iroh::server {

KeyCache::KeyCache(std::size_t capacity)
    : per_shard_capacity_(capacity == 0 ? 0 : (capacity + kShards - 1) / kShards) {}

KeyCache::Shard& KeyCache::shard_for(const relay::EndpointId& key) {
  // Keys are uniformly distributed curve points; their first byte picks the shard and the
  // shard's hash table still uses the full hash.
  return shards_[key.bytes[0] % kShards];
}

bool KeyCache::is_valid(const relay::EndpointId& key) {
  if (per_shard_capacity_ == 0) return key.is_valid_point();
  Shard& shard = shard_for(key);
  {
    std::lock_guard lock(shard.mutex);
    if (shard.keys.contains(key)) return true;
  }
  // Validated outside the lock: a few microseconds that other keys of the shard need not wait.
  if (!key.is_valid_point()) return false;
  std::lock_guard lock(shard.mutex);
  if (shard.keys.size() >= per_shard_capacity_) shard.keys.erase(shard.keys.begin());
  shard.keys.insert(key);
  return true;
}

std::size_t KeyCache::size() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.keys.size();
  }
  return n;
}

}  // namespace iroh::server
