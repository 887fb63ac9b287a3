#include "rate_limiter.hpp"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace iroh::server {

PrefixRateLimiter::PrefixRateLimiter(const Options& options)
    : options_(options),
      interval_ns_(options.rate > 0 ? std::max<std::int64_t>(1, std::llround(1e9 / options.rate))
                                    : 0),
      tolerance_ns_(interval_ns_ *
                    static_cast<std::int64_t>(std::max(0.0, std::ceil(options.burst) - 1))),
      tat_(std::max<std::size_t>(options.table_size, 1), 0) {
  static_assert(sizeof(hash_key_) == crypto_shorthash_KEYBYTES);
  randombytes_buf(hash_key_.data(), hash_key_.size());
}

std::array<std::uint8_t, 16> PrefixRateLimiter::prefix_of(
    const boost::asio::ip::address& source) const {
  std::array<std::uint8_t, 16> bytes{};
  unsigned bits = options_.ipv6_prefix;
  if (source.is_v4()) {
    bytes = boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, source.to_v4()).to_bytes();
    bits = 96 + options_.ipv4_prefix;
  } else {
    const auto v6 = source.to_v6();
    bytes = v6.to_bytes();
    if (v6.is_v4_mapped()) bits = 96 + options_.ipv4_prefix;
  }
  bits = std::min(bits, 128u);
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned keep = bits > i * 8 ? std::min(8u, bits - i * 8) : 0;
    bytes[i] &= static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return bytes;
}

bool PrefixRateLimiter::allow(const boost::asio::ip::address& source, Clock::time_point now) {
  if (interval_ns_ == 0) return true;
  const auto prefix = prefix_of(source);
  std::uint64_t hash = 0;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&hash), prefix.data(), prefix.size(),
                   hash_key_.data());
  const std::int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::lock_guard lock(mutex_);
  std::int64_t& tat = tat_[hash % tat_.size()];
  // GCRA: an event fits if the theoretical arrival time is at most `tolerance` ahead of now.
  const std::int64_t start = std::max(tat, now_ns);
  if (start - now_ns > tolerance_ns_) return false;
  tat = start + interval_ns_;
  return true;
}

}  // namespace iroh::server
