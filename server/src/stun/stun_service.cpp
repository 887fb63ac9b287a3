#include "stun/stun_service.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/bind_address.hpp"
#include "core/log.hpp"
#include "core/metric.hpp"
#include "iroh/stun.hpp"
#include "udp/udp_batch_listener.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// Datagrams handled per recvmmsg/sendmmsg call: enough to amortise the syscalls, small enough
// that the buffers stay in cache.
constexpr std::size_t kBatch = 64;
// STUN over UDP stays below the path MTU; anything longer is truncated and counted as ignored.
constexpr std::size_t kMaxDatagram = 1500;

}  // namespace

stun::Endpoint to_stun_endpoint(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    std::array<std::uint8_t, 4> a{};
    std::memcpy(a.data(), &sin.sin_addr, 4);
    return stun::Endpoint::v4(a, ntohs(sin.sin_port));
  }
  const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
  std::array<std::uint8_t, 16> a{};
  std::memcpy(a.data(), &sin6.sin6_addr, 16);
  return stun::Endpoint::v6(a, ntohs(sin6.sin6_port));
}

StunMetrics::StunMetrics(prometheus::Registry& registry)
    : requests(metric::counter(registry, "stun_requests_total", "Number of stun requests made.")),
      ipv4_success(metric::counter(registry, "stun_ipv4_success_total",
                                   "Number of successful requests over ipv4.")),
      ipv6_success(metric::counter(registry, "stun_ipv6_success_total",
                                   "Number of successful requests over ipv6.")),
      bad_requests(metric::counter(
          registry, "stun_bad_requests_total",
          "Number of bad requests, either non-stun packets or incorrect binding request.")),
      failures(metric::counter(registry, "stun_failures_total", "Number of failures.")),
      ignored(metric::counter(registry, "stun_ignored_total",
                              "Number of datagrams ignored: not STUN, indications, responses, "
                              "oversize.")) {}

// What the listeners of one service share; outlives stop() while a loop is winding down.
struct StunShared {
  StunShared(std::string software_value, std::shared_ptr<prometheus::Registry> registry_value)
      : software(std::move(software_value)),
        registry(registry_value ? std::move(registry_value)
                                : std::make_shared<prometheus::Registry>()),
        metrics(*registry) {}
  std::string software;
  std::shared_ptr<prometheus::Registry> registry;
  StunMetrics metrics;
  std::atomic<bool> stopping{false};
};

// Answers the datagrams of one UDP socket (UdpBatchListener does the socket work). Counts a
// whole wake-up locally and adds it to the shared metrics once, in drained().
struct StunHandler {
  // Counts of one wake-up.
  struct Tally {
    std::uint64_t requests = 0, ipv4_success = 0, ipv6_success = 0, bad_requests = 0, failures = 0,
                  ignored = 0;
  };
  // What a queued reply adds once it is sent.
  enum class Success : std::uint8_t { None, V4, V6 };

  explicit StunHandler(std::shared_ptr<StunShared> s) : shared(std::move(s)) {}

  std::shared_ptr<StunShared> shared;
  Tally counters;
  // Per reply of the current batch, in queue order.
  std::array<Success, kBatch> reply_success{};
  std::size_t queued = 0;

  void begin_batch() { queued = 0; }

  std::size_t handle(std::span<const std::uint8_t> request, const sockaddr_storage& from,
                     std::span<std::uint8_t> reply) {
    const stun::Endpoint source = to_stun_endpoint(from);
    const stun::HandleResult r = stun::handle_datagram(
        request, source, reply,
        stun::ResponseOptions{.software = shared->software, .fingerprint = true});
    if (!r.is_request) {
      ++counters.ignored;
      return 0;
    }
    ++counters.requests;
    if (!r.success()) ++counters.bad_requests;
    if (r.action != stun::Action::Reply) {
      log::debug("stun: dropped request: ", stun::to_string(r.reason));
      return 0;
    }
    reply_success[queued++] = !r.success()                                      ? Success::None
                              : r.reported_family == stun::Endpoint::Family::V4 ? Success::V4
                                                                                : Success::V6;
    return r.size;
  }

  void truncated() { ++counters.ignored; }
  void failed(std::uint64_t count) { counters.failures += count; }

  void replies_sent(std::size_t first, std::size_t count) {
    for (std::size_t k = first; k < first + count; ++k) {
      if (reply_success[k] == Success::V4) ++counters.ipv4_success;
      if (reply_success[k] == Success::V6) ++counters.ipv6_success;
    }
  }

  void drained() {
    StunMetrics& m = shared->metrics;
    const Tally t = std::exchange(counters, Tally{});
    if (t.requests != 0) m.requests.Increment(static_cast<double>(t.requests));
    if (t.ipv4_success != 0) m.ipv4_success.Increment(static_cast<double>(t.ipv4_success));
    if (t.ipv6_success != 0) m.ipv6_success.Increment(static_cast<double>(t.ipv6_success));
    if (t.bad_requests != 0) m.bad_requests.Increment(static_cast<double>(t.bad_requests));
    if (t.failures != 0) m.failures.Increment(static_cast<double>(t.failures));
    if (t.ignored != 0) m.ignored.Increment(static_cast<double>(t.ignored));
  }
};

struct StunService::Impl {
  asio::io_context& io;
  config::StunConfig config;
  unsigned sockets;
  std::shared_ptr<StunShared> shared;
  std::vector<std::shared_ptr<UdpBatchListener>> listeners;
  udp::endpoint bound;
};

StunService::StunService(asio::io_context& io, const config::StunConfig& config,
                         StunOptions options)
    : impl_(std::make_unique<Impl>(
          Impl{io,
               config,
               std::max(1u, options.sockets),
               std::make_shared<StunShared>(std::move(options.software),
                                            std::move(options.metrics_registry)),
               {},
               {}})) {}

StunService::~StunService() {
  stop();
}

void StunService::start() {
  // Claimed first (core/bind_address.hpp): a taken port fails here instead of being shared.
  const udp::endpoint ep = claim_listen_endpoint(
      resolve_bind_endpoint<udp::endpoint>(impl_->config.bind_addr, "stun_bind_addr"),
      "stun_bind_addr");
  const bool reuse_port = impl_->sockets > 1;
  for (unsigned i = 0; i < impl_->sockets; ++i) {
    auto listener = std::make_shared<UdpBatchListenerFor<StunHandler>>(
        impl_->io,
        UdpBatchLimits{
            .batch = kBatch, .max_request = kMaxDatagram, .max_reply = stun::kMaxResponseSize},
        UdpBatchNames{.log_prefix = "stun: ", .reuse_port_error = "SO_REUSEPORT"},
        StunHandler(impl_->shared));
    // Port 0: the first socket picks the port, the others join it.
    listener->open_and_bind(i == 0 ? ep : impl_->bound, reuse_port);
    if (i == 0) impl_->bound = listener->local_endpoint();
    impl_->listeners.push_back(std::move(listener));
  }
  log::info("stun: listening on udp ", impl_->bound, " (", impl_->sockets, " socket",
            impl_->sockets == 1 ? "" : "s", ")");
  for (auto& listener : impl_->listeners) listener->start();
}

void StunService::stop() {
  if (impl_->shared->stopping.exchange(true)) return;
  for (auto& listener : impl_->listeners) listener->stop();
}

udp::endpoint StunService::local_endpoint() const {
  return impl_->bound;
}

const StunMetrics& StunService::metrics() const {
  return impl_->shared->metrics;
}

}  // namespace iroh::server
