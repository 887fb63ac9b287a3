// Home relay registration and address lookup (spec address-lookup.md §2-§3, §10):
// publish a signed pkarr packet with the iroh endpoint record to a pkarr relay (HTTP PUT), fetch
// it back (HTTP GET), or resolve an EndpointId through DNS (`_iroh.<z32>.<origin>` TXT over UDP,
// TCP when truncated) or DNS-over-HTTPS (RFC 8484 GET or POST). Packets, records and DNS
// messages are the pkarr/ codec's; this file only moves them.
//
// A pkarr URL is the base the key is appended to, e.g. `http://host:3340/pkarr` (a trailing '/'
// is tolerated). A DoH URL is the full endpoint, e.g. `https://host/dns-query`.
//
// Errors: transport failures throw RelayClientError (InvalidUrl, Io, Tls, Timeout); everything
// else (HTTP status, unverifiable packet, DNS error, no record) throws LookupError.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "iroh/http_client.hpp"
#include "iroh/pkarr.hpp"
#include "iroh/relay_proto.hpp"

namespace iroh::client {

class LookupError : public std::runtime_error {
 public:
  enum class Kind {
    HttpStatus,  // the pkarr relay / DoH server answered with a non-2xx status
    BadPacket,   // the GET body is not a packet signed by the requested key
    DnsError,    // DNS RCODE other than NOERROR/NXDOMAIN, or a malformed/mismatched response
    NotFound,    // 404 from the pkarr relay, NXDOMAIN, or no `_iroh` TXT records
    BadRecord,   // the TXT records are not an iroh endpoint record (address-lookup.md §3)
  };
  LookupError(Kind kind, std::string message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// Microseconds since the Unix epoch, strictly increasing within the process (iroh's rule, §10.2).
std::uint64_t next_pkarr_timestamp();

// Signs `info` as an endpoint record packet of `key` with next_pkarr_timestamp().
// Throws LookupError(BadRecord) if it cannot be encoded (e.g. larger than 1000 bytes).
pkarr::SignedPacket sign_endpoint_packet(const relay::SecretKey& key,
                                         const pkarr::EndpointInfo& info,
                                         std::uint32_t ttl = pkarr::kDefaultTtl);

// PUT <pkarr_url>/<z32> with the relay payload; any 2xx is success.
boost::asio::awaitable<void> pkarr_publish(std::string pkarr_url, pkarr::SignedPacket packet,
                                           HttpOptions options = {});
// GET <pkarr_url>/<z32>; the body must verify for `id` (§2.3).
boost::asio::awaitable<pkarr::SignedPacket> pkarr_fetch(std::string pkarr_url, relay::EndpointId id,
                                                        HttpOptions options = {});
// pkarr_fetch, then the endpoint record inside.
boost::asio::awaitable<pkarr::EndpointInfo> resolve_pkarr(std::string pkarr_url,
                                                          relay::EndpointId id,
                                                          HttpOptions options = {});

// "_iroh.<z32>.<origin>" with a trailing dot; origin "." or "" gives "_iroh.<z32>.".
std::string iroh_dns_name(const relay::EndpointId& id, std::string_view origin);
// A standard query (RD=1, one question, no EDNS) for `name` TXT, built with libknot.
// Throws LookupError(DnsError) for a name that is not a valid domain name.
pkarr::Bytes build_txt_query(std::string_view name, std::uint16_t id);
// Checks a response against the query (ID, QR, question) and returns the endpoint record of its
// TXT answers. Throws LookupError: NotFound (NXDOMAIN / no TXT), DnsError, BadRecord.
pkarr::EndpointInfo parse_txt_response(pkarr::ByteSpan response, pkarr::ByteSpan query);

struct DnsOptions {
  std::chrono::milliseconds timeout{3000};  // per attempt
  int attempts = 3;                         // UDP attempts before giving up
};

// `server` is "host:port" or "[v6]:port" (port defaults to 53). UDP, falling back to TCP when
// the answer is truncated.
boost::asio::awaitable<pkarr::EndpointInfo> resolve_dns(std::string server, std::string origin,
                                                        relay::EndpointId id,
                                                        DnsOptions options = {});

enum class DohMethod { Get, Post };
boost::asio::awaitable<pkarr::EndpointInfo> resolve_doh(std::string doh_url, std::string origin,
                                                        relay::EndpointId id,
                                                        DohMethod method = DohMethod::Get,
                                                        HttpOptions options = {});

struct PublisherOptions {
  // Republish this often while nothing changes (iroh's DEFAULT_REPUBLISH_INTERVAL); well below
  // the store's eviction age, so the record never goes stale.
  std::chrono::milliseconds republish_interval{std::chrono::minutes(5)};
  // After k consecutive failures the next try comes after k * retry_step (iroh: 1 s, 2 s, ...),
  // capped at republish_interval.
  std::chrono::milliseconds retry_step{1000};
  std::uint32_t ttl = pkarr::kDefaultTtl;
  HttpOptions http;
};

struct PublisherStats {
  std::uint64_t published = 0;  // 2xx answers
  std::uint64_t failed = 0;     // transport errors and non-2xx answers
  std::string last_error;
  std::optional<std::uint64_t> last_timestamp_us;  // of the last packet accepted
};

// Keeps an endpoint's record published: publishes at once when started or when the record
// changes, then every republish_interval, retrying failures with a growing delay. Each publish
// is a fresh packet with a new timestamp. Runs on the executor it was made with; call its
// members from there.
class HomeRelayPublisher {
 public:
  HomeRelayPublisher(boost::asio::any_io_executor executor, std::string pkarr_url,
                     relay::SecretKey key, PublisherOptions options = {});
  ~HomeRelayPublisher();  // stops
  HomeRelayPublisher(const HomeRelayPublisher&) = delete;
  HomeRelayPublisher& operator=(const HomeRelayPublisher&) = delete;

  // Sets the record (e.g. relay_urls = {home relay URL}) and publishes it soon; the first call
  // starts the publisher.
  void set_info(pkarr::EndpointInfo info);
  void stop();
  const PublisherStats& stats() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace iroh::client
