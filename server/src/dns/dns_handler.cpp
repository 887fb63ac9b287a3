#include "dns/dns_handler.hpp"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/log.hpp"

namespace iroh::server {

ZoneCache::ZoneCache(std::shared_ptr<PkarrStore> store, std::size_t capacity,
                     std::chrono::seconds max_age,
                     std::chrono::steady_clock::duration sweep_interval)
    : store_(std::move(store)),
      capacity_(capacity),
      max_age_(max_age),
      sweep_interval_(sweep_interval),
      next_sweep_(std::chrono::steady_clock::now() + sweep_interval) {}

void ZoneCache::sweep_if_due() {
  if (max_age_.count() <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (now < next_sweep_) return;
  next_sweep_ = now + sweep_interval_;
  // The store's own cutoff (one home for the rule): zones of packets it evicts go with them.
  PkarrStoreOptions options;
  options.max_age = max_age_;
  const std::uint64_t cutoff = pkarr_eviction_cutoff(options, std::chrono::system_clock::now());
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.zone->timestamp_us < cutoff) {
      lru_.erase(it->second.position);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  size_.store(entries_.size(), std::memory_order_relaxed);
}

std::size_t ZoneCache::size() const {
  return size_.load(std::memory_order_relaxed);
}

void ZoneCache::forget(const pkarr::PublicKey& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  lru_.erase(it->second.position);
  entries_.erase(it);
  size_.store(entries_.size(), std::memory_order_relaxed);
}

void ZoneCache::remember(const pkarr::PublicKey& key, std::shared_ptr<const dns::PkarrZone> zone) {
  if (capacity_ == 0) return;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    // A concurrent lookup may have cached an older or newer packet's zone: keep the newer.
    if (it->second.zone->timestamp_us > zone->timestamp_us) return;
    it->second.zone = std::move(zone);
    lru_.splice(lru_.begin(), lru_, it->second.position);
    return;
  }
  if (entries_.size() >= capacity_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(key);
  entries_.emplace(key, Entry{std::move(zone), lru_.begin()});
  size_.store(entries_.size(), std::memory_order_relaxed);
}

dns::ZoneLookupResult ZoneCache::lookup(const pkarr::PublicKey& key) {
  sweep_if_due();
  PkarrGetResult stored = store_->get(key);
  if (const auto* error = std::get_if<PkarrStoreError>(&stored)) {
    log::warn("dns: zone store read failed: ", error->message);
    return {dns::ZoneStatus::Error, nullptr};
  }
  const auto& packet = std::get<std::optional<pkarr::SignedPacket>>(stored);
  if (!packet) {
    forget(key);
    return {dns::ZoneStatus::NotFound, nullptr};
  }
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.zone->same_packet(*packet)) {
      lru_.splice(lru_.begin(), lru_, it->second.position);
      return {dns::ZoneStatus::Found, it->second.zone};
    }
  }
  auto zone = dns::PkarrZone::from_packet(*packet);
  remember(key, zone);
  return {dns::ZoneStatus::Found, std::move(zone)};
}

// ---- AnswerCache ----------------------------------------------------------------------------

AnswerCache::KeyHash::KeyHash() {
  randombytes_buf(secret.data(), secret.size());
}

std::size_t AnswerCache::KeyHash::operator()(std::string_view key) const {
  std::uint64_t out = 0;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&out),
                   reinterpret_cast<const unsigned char*>(key.data()), key.size(), secret.data());
  return static_cast<std::size_t>(out);
}

AnswerCache::AnswerCache(std::size_t max_bytes) : max_bytes_(max_bytes), index_(16, KeyHash()) {}

void AnswerCache::erase(Lru::iterator it) {
  bytes_ -= cost(*it);
  index_.erase(std::string_view(it->key));
  lru_.erase(it);
}

std::optional<dns::Answer> AnswerCache::find(dns::ByteSpan query, std::span<std::uint8_t> out,
                                             const PkarrChangeStamps& stamps) {
  if (query.size() <= 2 || query.size() > kMaxQuery) return std::nullopt;
  const std::string_view key(reinterpret_cast<const char*>(query.data()) + 2, query.size() - 2);
  const auto found = index_.find(key);
  if (found == index_.end()) return std::nullopt;
  const Lru::iterator it = found->second;
  if (!stamps.unchanged(it->zone, it->stamp) || it->response.size() > out.size()) {
    erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it);
  std::memcpy(out.data(), it->response.data(), it->response.size());
  // The ID is the query's; everything else was built from the same bytes.
  out[0] = query[0];
  out[1] = query[1];
  return it->answer;
}

void AnswerCache::insert(dns::ByteSpan query, dns::ByteSpan response, const dns::Answer& answer,
                         const pkarr::PublicKey& key, const PkarrChangeStamps::Stamp& stamp) {
  if (query.size() <= 2 || query.size() > kMaxQuery) return;
  Entry entry{std::string(reinterpret_cast<const char*>(query.data()) + 2, query.size() - 2),
              std::vector<std::uint8_t>(response.begin(), response.end()), answer, key, stamp};
  if (cost(entry) > max_bytes_) return;
  if (auto found = index_.find(std::string_view(entry.key)); found != index_.end()) {
    erase(found->second);
  }
  while (!lru_.empty() && bytes_ + cost(entry) > max_bytes_) erase(std::prev(lru_.end()));
  bytes_ += cost(entry);
  lru_.push_front(std::move(entry));
  index_.emplace(std::string_view(lru_.front().key), lru_.begin());
}

dns::ZoneOptions zone_options(const config::Config& config) {
  dns::ZoneOptions options;
  options.origins = config.dns.origins;
  options.soa = config.dns.default_soa;
  options.a = config.dns.rr_a;
  options.aaaa = config.dns.rr_aaaa;
  options.ns = config.dns.rr_ns;
  return options;
}

namespace {

dns::Resolver make_resolver(const config::Config& config) {
  try {
    return dns::Resolver(zone_options(config));
  } catch (const dns::ZoneOptionsError& e) {
    throw std::runtime_error(config.source.string() + ": " + e.what());
  }
}

}  // namespace

DnsHandler::DnsHandler(const config::Config& config, std::shared_ptr<PkarrStore> store,
                       LookupMetrics* metrics, std::size_t zone_cache_capacity)
    : resolver_(make_resolver(config)),
      zones_(store, zone_cache_capacity, config.zone_store.eviction,
             config.zone_store.eviction_interval),
      lookup_([this](const pkarr::PublicKey& key) { return zones_.lookup(key); }),
      metrics_(metrics),
      stamps_(store ? store->change_stamps() : nullptr) {}

dns::Answer DnsHandler::handle(dns::ByteSpan query, dns::Transport transport,
                               std::span<std::uint8_t> out) {
  const auto start = std::chrono::steady_clock::now();
  dns::Answer answer = resolver_.resolve(query, transport, lookup_, out);
  if (metrics_ == nullptr || answer.outcome == dns::Outcome::Dropped) return answer;
  Tally tally;
  count(answer, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
        tally);
  if (transport == dns::Transport::Udp) metrics_->dns_requests_udp.Increment();
  if (transport == dns::Transport::Https) metrics_->dns_requests_https.Increment();
  flush(tally);
  return answer;
}

dns::Answer DnsHandler::resolve_cached(dns::ByteSpan query, std::span<std::uint8_t> out,
                                       AnswerCache& cache) {
  if (auto hit = cache.find(query, out, *stamps_)) return *hit;
  // Which zone the answer comes from, and the stamp of that key before the store was read.
  struct Seen {
    DnsHandler* self;
    std::optional<pkarr::PublicKey> key;
    PkarrChangeStamps::Stamp stamp;
    dns::ZoneStatus status = dns::ZoneStatus::NotFound;
  } seen{this, std::nullopt, {}, dns::ZoneStatus::NotFound};
  // One pointer captured: fits std::function without an allocation.
  const dns::ZoneLookup lookup = [s = &seen](const pkarr::PublicKey& key) {
    s->key = key;
    s->stamp = s->self->stamps_->stamp(key);
    dns::ZoneLookupResult result = s->self->zones_.lookup(key);
    s->status = result.status;
    return result;
  };
  const dns::Answer answer = resolver_.resolve(query, dns::Transport::Udp, lookup, out);
  // Names outside the pkarr zones (apex, refused) are answered without the store and stay
  // uncached; a store error is not an answer to keep.
  if (seen.key && seen.status != dns::ZoneStatus::Error &&
      answer.outcome != dns::Outcome::Dropped && answer.outcome != dns::Outcome::Malformed) {
    cache.insert(query, dns::ByteSpan(out.data(), answer.size), answer, *seen.key, seen.stamp);
  }
  return answer;
}

dns::Answer DnsHandler::handle_udp(dns::ByteSpan query, std::span<std::uint8_t> out, Tally& tally,
                                   AnswerCache* cache) {
  dns::Answer answer = cache != nullptr && stamps_ != nullptr
                           ? resolve_cached(query, out, *cache)
                           : resolver_.resolve(query, dns::Transport::Udp, lookup_, out);
  if (metrics_ == nullptr) return answer;
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - tally.mark).count();
  tally.mark = now;
  if (answer.outcome != dns::Outcome::Dropped) {
    count(answer, seconds, tally);
    ++tally.udp;
  }
  return answer;
}

void DnsHandler::count(const dns::Answer& answer, double seconds, Tally& tally) const {
  ++tally.requests;
  switch (answer.outcome) {
    case dns::Outcome::Success:
      ++tally.success;
      break;
    case dns::Outcome::NotFound:
      ++tally.notfound;
      break;
    default:
      ++tally.error;
      break;
  }
  // Buckets are upper bounds (le); the last one is +Inf.
  const auto bucket =
      std::lower_bound(kDnsAnswerDurationBuckets.begin(), kDnsAnswerDurationBuckets.end(), seconds);
  tally.buckets[static_cast<std::size_t>(bucket - kDnsAnswerDurationBuckets.begin())] += 1;
  tally.seconds += seconds;
}

void DnsHandler::flush(Tally& tally) {
  if (metrics_ == nullptr || tally.requests == 0) return;
  metrics_->dns_requests.Increment(static_cast<double>(tally.requests));
  if (tally.udp != 0) metrics_->dns_requests_udp.Increment(static_cast<double>(tally.udp));
  if (tally.success != 0)
    metrics_->dns_lookup_success.Increment(static_cast<double>(tally.success));
  if (tally.notfound != 0) {
    metrics_->dns_lookup_notfound.Increment(static_cast<double>(tally.notfound));
  }
  if (tally.error != 0) metrics_->dns_lookup_error.Increment(static_cast<double>(tally.error));
  metrics_->dns_answer_duration.ObserveMultiple(
      std::vector<double>(tally.buckets.begin(), tally.buckets.end()), tally.seconds);
  metrics_->cache_zones.Set(static_cast<double>(zones_.size()));
  const auto mark = tally.mark;
  tally = Tally{};
  tally.mark = mark;
}

}  // namespace iroh::server
