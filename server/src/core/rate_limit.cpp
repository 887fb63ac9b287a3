#include "core/rate_limit.hpp"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/net.hpp"

namespace iroh::server {

namespace {

// One event per 1/rate seconds, at least 1 ns; rate <= 0 = no limit.
std::optional<Gcra> prefix_gcra(const PrefixRateLimiter::Options& options) {
  if (options.rate <= 0) return std::nullopt;
  const auto interval =
      std::chrono::nanoseconds(std::max<std::int64_t>(1, std::llround(1e9 / options.rate)));
  const auto burst = static_cast<std::uint64_t>(std::max(1.0, std::ceil(options.burst)));
  return Gcra(std::chrono::duration_cast<Gcra::Clock::duration>(interval), burst);
}

}  // namespace

PrefixRateLimiter::PrefixRateLimiter(const Options& options)
    : options_(options),
      gcra_(prefix_gcra(options)),
      tat_(std::max<std::size_t>(options.table_size, 1)) {
  static_assert(sizeof(hash_key_) == crypto_shorthash_KEYBYTES);
  randombytes_buf(hash_key_.data(), hash_key_.size());
}

std::array<std::uint8_t, 16> PrefixRateLimiter::prefix_of(
    const boost::asio::ip::address& source) const {
  return net::prefix_key(source, options_.ipv4_prefix, options_.ipv6_prefix);
}

bool PrefixRateLimiter::allow(const boost::asio::ip::address& source, Clock::time_point now) {
  if (!gcra_) return true;
  const auto prefix = prefix_of(source);
  std::uint64_t hash = 0;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&hash), prefix.data(), prefix.size(),
                   hash_key_.data());
  std::lock_guard lock(mutex_);
  return !gcra_->admit(tat_[hash % tat_.size()], now);
}

}  // namespace iroh::server
