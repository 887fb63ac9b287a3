// What the DNS listeners (UDP, TCP) and DoH share: the resolution engine configured from
// `config.dns`, the zones of the pkarr store behind a small parsed-zone cache, and the lookup
// metrics (spec address-lookup.md §9: dns_requests*, dns_lookup_*, answer-time histogram).
//
//   auto dns = std::make_shared<DnsHandler>(config, store.store(), &store.metrics());
//   dns::Answer a = dns->handle(query_bytes, dns::Transport::Udp, out_buffer);
//
// handle() is thread-safe and runs on the caller's thread: store reads are served by the store's
// LRU (SQLite only for keys it does not hold, a sub-millisecond indexed read), so callers on an
// io_context thread are not held up for long.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "iroh/config.hpp"
#include "iroh/dns.hpp"
#include "lookup/lookup_metrics.hpp"
#include "lookup/pkarr_change_stamps.hpp"
#include "lookup/pkarr_store.hpp"

namespace iroh::server {

// Parsed zones of stored packets, keyed by public key. Every lookup still asks the store for the
// current packet (its LRU makes that cheap), and the cached zone is used only if it was built from
// that very packet (same timestamp and signature): a newer PUT or an eviction is seen at once.
// What the cache saves is re-parsing the DNS message and rebuilding the zone on every query.
//
// Zones of packets older than `max_age` (zone_store.eviction_secs, the store's eviction rule,
// address-lookup.md §7.2) are dropped by a sweep at most every `sweep_interval`, run by lookup():
// the store evicts those packets, and a zone nobody asks for again would otherwise stay until
// `capacity` newer ones push it out (the soak saw RSS grow with every fresh key queried once).
class ZoneCache {
 public:
  // `capacity` zones at most (least recently used dropped first); 0 = no caching. `max_age` 0 =
  // no sweep.
  ZoneCache(std::shared_ptr<PkarrStore> store, std::size_t capacity,
            std::chrono::seconds max_age = std::chrono::seconds(0),
            std::chrono::steady_clock::duration sweep_interval = std::chrono::seconds(10));
  dns::ZoneLookupResult lookup(const pkarr::PublicKey& key);
  std::size_t size() const;

 private:
  void sweep_if_due();
  using Lru = std::list<pkarr::PublicKey>;
  struct Entry {
    std::shared_ptr<const dns::PkarrZone> zone;
    Lru::iterator position;
  };
  void remember(const pkarr::PublicKey& key, std::shared_ptr<const dns::PkarrZone> zone);
  void forget(const pkarr::PublicKey& key);

  std::shared_ptr<PkarrStore> store_;
  std::size_t capacity_;
  std::chrono::seconds max_age_;
  std::chrono::steady_clock::duration sweep_interval_;
  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point next_sweep_;  // guarded by mutex_
  Lru lru_;                                           // most recent first
  std::unordered_map<pkarr::PublicKey, Entry, relay::EndpointIdHash> entries_;
  std::atomic<std::size_t> size_{0};  // entries_.size(), readable without the mutex
};

// Answers to UDP queries for names in pkarr zones, keyed by the query's bytes after its ID (flags,
// question with its case, EDNS record: everything the answer depends on besides the store), for
// one UDP receive thread (no lock). An answer is used only while the store reports no change of
// the key it was built from (PkarrChangeStamps, taken before the store was read), so a PUT, an
// eviction or a reopened store is seen by the next query (issue 15 item 7: the hot names of a
// busy server skip parsing, two cache lookups, a packet copy and the answer's encoding). At most
// `max_bytes` of keys, answers and bookkeeping; the least recently used go first.
class AnswerCache {
 public:
  // Queries longer than this are not cached (a long EDNS option list is not a hot name).
  static constexpr std::size_t kMaxQuery = 512;
  // Bookkeeping per entry counted against max_bytes besides its key and answer.
  static constexpr std::size_t kEntryOverhead = 192;

  explicit AnswerCache(std::size_t max_bytes);
  // The cached answer to `query`, written to `out` with the query's ID; nullopt if there is
  // none, it does not fit `out`, or its key's packet changed since (the entry is dropped).
  std::optional<dns::Answer> find(dns::ByteSpan query, std::span<std::uint8_t> out,
                                  const PkarrChangeStamps& stamps);
  void insert(dns::ByteSpan query, dns::ByteSpan response, const dns::Answer& answer,
              const pkarr::PublicKey& key, const PkarrChangeStamps::Stamp& stamp);
  std::size_t bytes() const { return bytes_; }
  std::size_t size() const { return lru_.size(); }

 private:
  struct Entry {
    std::string key;  // query bytes after the ID
    std::vector<std::uint8_t> response;
    dns::Answer answer;
    pkarr::PublicKey zone;
    PkarrChangeStamps::Stamp stamp;
  };
  using Lru = std::list<Entry>;
  // Keyed (SipHash): queries are the client's choice. Not noexcept, so that the map keeps each
  // node's hash code instead of hashing again while walking a bucket.
  struct KeyHash {
    std::array<std::uint8_t, 16> secret{};
    KeyHash();
    std::size_t operator()(std::string_view key) const;
  };
  static std::size_t cost(const Entry& e) {
    return e.key.size() + e.response.size() + kEntryOverhead;
  }
  void erase(Lru::iterator it);

  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  Lru lru_;                                                             // most recent first
  std::unordered_map<std::string_view, Lru::iterator, KeyHash> index_;  // views of Entry::key
};

// dns::ZoneOptions from the config section; throws std::runtime_error "<file>: dns.<key>: ...".
dns::ZoneOptions zone_options(const config::Config& config);

class DnsHandler {
 public:
  // `metrics` may be null (tests); it must outlive the handler otherwise.
  DnsHandler(const config::Config& config, std::shared_ptr<PkarrStore> store,
             LookupMetrics* metrics, std::size_t zone_cache_capacity = 65536);

  // Resolves one query (see dns::Resolver::resolve) and counts it: every answered query in
  // dns_requests (+ _udp / _https by transport), its outcome in dns_lookup_success / _notfound /
  // _error, its duration in the answer histogram. Dropped messages count nowhere here; the
  // listeners count them as drops.
  dns::Answer handle(dns::ByteSpan query, dns::Transport transport, std::span<std::uint8_t> out);

  // The same counts kept by one UDP receive thread for a batch of queries and added to the
  // metrics once per batch (flush): a dozen atomic updates, a histogram lock and two clock reads
  // per query were ~4 % of the DNS server's CPU (issue 15 item 7). Not shared between threads.
  struct Tally {
    std::uint64_t requests = 0, udp = 0, success = 0, notfound = 0, error = 0;
    std::array<double, kDnsAnswerDurationBuckets.size() + 1> buckets{};
    double seconds = 0;
    // End of the previous answer (or the batch's start): each query's duration runs from there,
    // one clock read per query.
    std::chrono::steady_clock::time_point mark;
  };
  // handle() for UDP counting into `tally` (start it with tally.mark = now), answering from and
  // filling `cache` when given and the store reports its changes (answers_cacheable()).
  dns::Answer handle_udp(dns::ByteSpan query, std::span<std::uint8_t> out, Tally& tally,
                         AnswerCache* cache = nullptr);
  bool answers_cacheable() const { return stamps_ != nullptr; }
  // Adds `tally` to the metrics and zeroes it.
  void flush(Tally& tally);

  const dns::Resolver& resolver() const { return resolver_; }
  ZoneCache& zones() { return zones_; }

 private:
  void count(const dns::Answer& answer, double seconds, Tally& tally) const;
  dns::Answer resolve_cached(dns::ByteSpan query, std::span<std::uint8_t> out, AnswerCache& cache);

  dns::Resolver resolver_;
  ZoneCache zones_;
  dns::ZoneLookup lookup_;
  LookupMetrics* metrics_;
  // The store's (null: no answer caching); lives as long as the store, which zones_ holds.
  const PkarrChangeStamps* stamps_;
};

}  // namespace iroh::server
