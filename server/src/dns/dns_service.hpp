// Authoritative DNS over UDP and TCP on `dns.bind_addr` (spec address-lookup.md §5.1), answered
// by a DnsHandler. A host of "::" binds dual-stack (IPv4 peers too).
//  * UDP: recvmmsg/sendmmsg batches, one socket and thread per usable CPU (SO_REUSEPORT), replies
//    leave from the address the query was sent to. Datagrams shorter than a header, with QR=1, or
//    longer than kMaxUdpQuery are dropped and counted.
//    Responses are at most `dns.udp_max_payload` bytes whatever the query's EDNS size (cut at a
//    whole record with TC=1). Response-rate limiting (`dns.rrl_*`, knotd's RRL): a source prefix
//    over `rrl_rate` answers per second gets every `rrl_slip`-th answer truncated (no larger than
//    its query) and the others dropped; counted in dns_server_rrl_total{action}.
//  * TCP: RFC 1035 2-byte length framing, pipelined queries answered in order, a connection that
//    sends no complete query for `dns.tcp_idle_timeout` (or does not take a response within it)
//    is closed, at most `dns.max_tcp_connections` at once (further ones are closed on accept and
//    counted). Buffers are allocated when the first query arrives, not at accept; a failed accept
//    (EMFILE) pauses the loop (AcceptBackoff).
//
//   DnsService dns(io, config.dns, handler, {.metrics_registry = registry});
//   dns.start();   // binds UDP then TCP on the same port (port 0: the UDP socket picks it)
//   dns.stop();    // idempotent; sockets close on the io_context
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstdint>
#include <memory>

#include "dns/dns_handler.hpp"
#include "iroh/config.hpp"
#include "iroh/server/service.hpp"

namespace iroh::server {

// Largest UDP query read (larger ones are dropped) and largest UDP response sent.
inline constexpr std::size_t kMaxUdpQuery = 4096;
inline constexpr std::size_t kMaxUdpResponse = 4096;

struct DnsCounters {
  std::atomic<std::uint64_t> udp_queries{0};   // UDP datagrams answered
  std::atomic<std::uint64_t> tcp_queries{0};   // TCP messages answered
  std::atomic<std::uint64_t> dropped{0};       // short, QR=1 or oversize messages (not answered)
  std::atomic<std::uint64_t> tcp_rejected{0};  // connections closed at max_tcp_connections
  std::atomic<std::uint64_t> failures{0};      // receive/send errors
  std::atomic<std::uint64_t> rrl_dropped{0};   // UDP answers over the rate, not sent
  std::atomic<std::uint64_t> rrl_slipped{0};   // UDP answers over the rate, sent truncated
};

struct DnsServiceOptions {
  // 0 = one per CPU the process may run on (its affinity, core/cpus.hpp), like knotd's
  // udp-workers (one per CPU).
  unsigned udp_sockets = 0;
  // Registers dns_server_dns_dropped_total (messages not answered) and dns_server_rrl_total
  // (answers over the response rate, by action: dropped, slipped) when set.
  std::shared_ptr<prometheus::Registry> metrics_registry;
};

class DnsService final : public Service {
 public:
  DnsService(boost::asio::io_context& io, const config::DnsConfig& config,
             std::shared_ptr<DnsHandler> handler, DnsServiceOptions options = {});
  ~DnsService() override;
  DnsService(const DnsService&) = delete;
  DnsService& operator=(const DnsService&) = delete;

  std::string_view name() const override { return "dns"; }
  void start() override;  // throws boost::system::system_error naming dns.bind_addr
  void stop() override;

  boost::asio::ip::udp::endpoint udp_endpoint() const;
  boost::asio::ip::tcp::endpoint tcp_endpoint() const;
  const DnsCounters& counters() const;
  std::size_t tcp_connections() const;  // open TCP connections

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace iroh::server
