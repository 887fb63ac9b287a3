// The STUN server (issue "Address discovery"): Binding requests on UDP `stun_bind_addr` answered
// by the pure codec in stun/. One socket per service (or several with SO_REUSEPORT); a host of "::"
// (or "*" / empty) binds dual-stack and reports IPv4 peers as IPv4. Replies leave from the address
// the request was sent to (IP_PKTINFO / IPV6_PKTINFO), so a wildcard bind works on multi-homed
// hosts.
//
//   StunService stun(io, config.stun);  // config.stun.enabled is the caller's business
//   stun.start();                       // binds (port 0 allowed); throws system_error on failure
//   stun.local_endpoint();              // the bound address
//   stun.stop();                        // idempotent; the socket closes on the io_context
// Destroy the service before its io_context. To use several cores, give it several sockets
// (StunOptions::sockets) and run the io_context on as many threads.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "iroh/config.hpp"
#include "iroh/server/service.hpp"
#include "iroh/stun.hpp"

namespace iroh::server {

// Prometheus metrics, registered in the daemon's registry under the reference's names (group
// `stun`, spec relay.md §8): stun_requests_total, ... plus stun_ignored_total. The receive loops
// count a whole recvmmsg batch locally and add it once, so the per-datagram cost stays a plain
// increment of a local.
struct StunMetrics {
  explicit StunMetrics(prometheus::Registry& registry);
  prometheus::Counter& requests;      // STUN requests received, answered or not
  prometheus::Counter& ipv4_success;  // Binding success responses sent to IPv4 peers
  prometheus::Counter& ipv6_success;  // ... to IPv6 peers
  prometheus::Counter& bad_requests;  // requests answered 400/420, or dropped (bad FINGERPRINT,
                                      // unanswerable CHANGE-REQUEST)
  prometheus::Counter& failures;      // replies the socket could not send, receive errors
  prometheus::Counter& ignored;       // non-STUN datagrams, indications, responses, oversize
};

struct StunOptions {
  // SOFTWARE attribute value, sent when the reply has room for it ("" = never).
  std::string software = "iroh-relay";
  // UDP sockets on the same address (SO_REUSEPORT), each with its own receive loop, so an
  // io_context run by several threads answers on several cores. 1 = one plain socket.
  unsigned sockets = 1;
  // Where the metrics are registered (the daemon's registry); nullptr = a private one.
  std::shared_ptr<prometheus::Registry> metrics_registry;
};

// The peer address of a received datagram (IPv4 or IPv6 socket address) as the codec's type.
stun::Endpoint to_stun_endpoint(const sockaddr_storage& address);

class StunService final : public Service {
 public:
  StunService(boost::asio::io_context& io, const config::StunConfig& config,
              StunOptions options = {});
  ~StunService() override;
  StunService(const StunService&) = delete;
  StunService& operator=(const StunService&) = delete;

  std::string_view name() const override { return "stun"; }
  void start() override;
  void stop() override;

  boost::asio::ip::udp::endpoint local_endpoint() const;
  const StunMetrics& metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iroh::server
