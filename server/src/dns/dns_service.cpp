#include "dns/dns_service.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "core/accept_backoff.hpp"
#include "core/bind_address.hpp"
#include "core/cpus.hpp"
#include "core/log.hpp"
#include "core/net.hpp"
#include "core/rate_limit.hpp"
#include "udp/udp_batch_listener.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

// Datagrams per recvmmsg/sendmmsg call.
constexpr std::size_t kBatch = 32;
// The UDP answer caches of all sockets together (each socket's thread has its own, no lock),
// and the least one socket gets.
constexpr std::size_t kAnswerCacheBytes = 16 << 20;
constexpr std::size_t kMinAnswerCacheBytes = 1 << 20;

}  // namespace

// State shared by the listeners; outlives stop() while loops wind down.
struct DnsService::Impl : std::enable_shared_from_this<DnsService::Impl> {
  asio::io_context& io;
  config::DnsConfig config;
  std::shared_ptr<DnsHandler> handler;
  unsigned udp_sockets;
  DnsCounters counters;
  prometheus::Counter* dropped_metric = nullptr;
  prometheus::Counter* rrl_dropped_metric = nullptr;
  prometheus::Counter* rrl_slipped_metric = nullptr;
  std::atomic<bool> stopping{false};
  // Response-rate limiting of UDP answers (dns.rrl_*); unset when rrl_rate is 0.
  std::optional<PrefixRateLimiter> rrl;
  std::atomic<std::uint64_t> rrl_limited{0};  // answers over the rate so far (picks the slips)

  struct UdpHandler;
  struct TcpConnection;
  std::vector<std::shared_ptr<UdpBatchListener>> udp;
  std::unique_ptr<tcp::acceptor> acceptor;
  udp::endpoint udp_bound;
  tcp::endpoint tcp_bound;

  std::mutex connections_mutex;
  std::list<std::weak_ptr<TcpConnection>> connections;
  std::atomic<std::size_t> active_connections{0};

  Impl(asio::io_context& io_, const config::DnsConfig& c, std::shared_ptr<DnsHandler> h,
       unsigned sockets)
      : io(io_), config(c), handler(std::move(h)), udp_sockets(sockets) {
    if (config.rrl_rate > 0) {
      // knotd's RRL has no burst of its own: a bucket holds one second of answers.
      rrl.emplace(PrefixRateLimiter::Options{.rate = double(config.rrl_rate),
                                             .burst = double(config.rrl_rate),
                                             .ipv4_prefix = config.rrl_ipv4_prefix,
                                             .ipv6_prefix = config.rrl_ipv6_prefix,
                                             .table_size = config.rrl_table_size});
    }
  }

  static asio::ip::address address_of(const sockaddr_storage& from) {
    if (from.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(from);
      return asio::ip::address_v4(ntohl(in.sin_addr.s_addr));
    }
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(from);
    asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), in6.sin6_addr.s6_addr, bytes.size());
    return asio::ip::address_v6(bytes);
  }

  // RRL verdict for one UDP query from `from`: answer in full, answer truncated, or drop.
  enum class Rrl { Answer, Slip, Drop };
  Rrl rate_limit(const sockaddr_storage& from) {
    if (!rrl || rrl->allow(address_of(from))) return Rrl::Answer;
    const std::uint64_t n = rrl_limited.fetch_add(1, std::memory_order_relaxed) + 1;
    if (config.rrl_slip != 0 && n % config.rrl_slip == 0) {
      counters.rrl_slipped.fetch_add(1, std::memory_order_relaxed);
      if (rrl_slipped_metric != nullptr) rrl_slipped_metric->Increment();
      return Rrl::Slip;
    }
    counters.rrl_dropped.fetch_add(1, std::memory_order_relaxed);
    if (rrl_dropped_metric != nullptr) rrl_dropped_metric->Increment();
    return Rrl::Drop;
  }

  void count_drop() {
    counters.dropped.fetch_add(1, std::memory_order_relaxed);
    if (dropped_metric != nullptr) dropped_metric->Increment();
  }

  // ---- UDP ----------------------------------------------------------------------------------

  // Answers the datagrams of one UDP socket (UdpBatchListener does the socket work).
  struct UdpHandler {
    std::shared_ptr<Impl> impl;
    // This socket's thread's counts, added to the metrics once per wake-up (drained()).
    DnsHandler::Tally tally{};
    // This socket's thread's answers to hot names (null when the store cannot tell of changes).
    std::unique_ptr<AnswerCache> answers;

    void begin_batch() { tally.mark = std::chrono::steady_clock::now(); }
    void drained() { impl->handler->flush(tally); }

    std::size_t handle(std::span<const std::uint8_t> query, const sockaddr_storage& from,
                       std::span<std::uint8_t> reply) {
      // Never more than dns.udp_max_payload, whatever EDNS size the query claims.
      std::size_t room = std::min(reply.size(), impl->config.udp_max_payload);
      AnswerCache* cache = answers.get();
      switch (impl->rate_limit(from)) {
        case Rrl::Answer:
          break;
        case Rrl::Slip:
          // No larger than the query: a spoofed source gains nothing, a real client sees TC=1
          // (or an answer that fits) and asks again over TCP, which is not rate limited.
          room = std::min(room, query.size());
          // Cut to another size than the full answers: neither cached nor served from there.
          cache = nullptr;
          break;
        case Rrl::Drop:
          return 0;
      }
      const dns::Answer a = impl->handler->handle_udp(query, reply.first(room), tally, cache);
      if (a.outcome == dns::Outcome::Dropped) {
        impl->count_drop();
        return 0;
      }
      impl->counters.udp_queries.fetch_add(1, std::memory_order_relaxed);
      return a.size;
    }
    void truncated() { impl->count_drop(); }
    void failed(std::uint64_t count) {
      impl->counters.failures.fetch_add(count, std::memory_order_relaxed);
    }
  };
  using UdpListener = UdpBatchListenerFor<UdpHandler>;

  // ---- TCP ----------------------------------------------------------------------------------

  struct TcpConnection {
    explicit TcpConnection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
    tcp::socket socket;
    asio::steady_timer timer;
    std::array<std::uint8_t, 2> length{};
    // Allocated when a query arrives (issue 19 item 6): an idle or silent connection costs no
    // 128 KiB. The query buffer grows to the largest query seen.
    std::vector<std::uint8_t> query;
    std::vector<std::uint8_t> response;

    // Closes the socket when `timeout` passes before disarm(): the pending operation fails.
    void arm(std::chrono::milliseconds timeout) {
      timer.expires_after(timeout);
      timer.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        boost::system::error_code ignored;
        socket.close(ignored);
      });
    }
    void disarm() { timer.cancel(); }
  };

  static asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<TcpConnection> c) {
    const auto idle = self->config.tcp_idle_timeout;
    while (!self->stopping.load()) {
      c->arm(idle);
      auto [ec1, n1] = co_await asio::async_read(c->socket, asio::buffer(c->length),
                                                 asio::as_tuple(asio::use_awaitable));
      if (ec1) break;
      const std::size_t size = static_cast<std::size_t>(c->length[0] << 8 | c->length[1]);
      if (size == 0) break;
      if (c->query.size() < size) c->query.resize(size);
      auto [ec2, n2] = co_await asio::async_read(c->socket, asio::buffer(c->query.data(), size),
                                                 asio::as_tuple(asio::use_awaitable));
      c->disarm();
      if (ec2) break;
      if (c->response.empty()) c->response.resize(2 + dns::kMaxMessageSize);
      const dns::Answer a = self->handler->handle(
          dns::ByteSpan(c->query.data(), size), dns::Transport::Tcp,
          std::span<std::uint8_t>(c->response.data() + 2, dns::kMaxMessageSize));
      if (a.outcome == dns::Outcome::Dropped) {
        self->count_drop();
        continue;
      }
      self->counters.tcp_queries.fetch_add(1, std::memory_order_relaxed);
      c->response[0] = static_cast<std::uint8_t>(a.size >> 8);
      c->response[1] = static_cast<std::uint8_t>(a.size);
      c->arm(idle);
      auto [ec3, n3] =
          co_await asio::async_write(c->socket, asio::buffer(c->response.data(), 2 + a.size),
                                     asio::as_tuple(asio::use_awaitable));
      c->disarm();
      if (ec3) break;
    }
    c->disarm();
    boost::system::error_code ignored;
    c->socket.close(ignored);
    self->active_connections.fetch_sub(1);
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    AcceptBackoff backoff("dns: tcp accept");
    while (!self->stopping.load()) {
      auto [ec, socket] = co_await self->acceptor->async_accept(
          asio::make_strand(self->io), asio::as_tuple(asio::use_awaitable));
      if (self->stopping.load()) break;
      if (ec) {
        if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
        self->counters.failures.fetch_add(1, std::memory_order_relaxed);
        // e.g. EMFILE: the connection stays queued and a retry fails at once; pause instead.
        co_await backoff.pause(self->acceptor->get_executor(), ec);
        continue;
      }
      backoff.succeeded();
      if (self->active_connections.load() >= self->config.max_tcp_connections) {
        self->counters.tcp_rejected.fetch_add(1, std::memory_order_relaxed);
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      self->active_connections.fetch_add(1);
      auto connection = std::make_shared<TcpConnection>(std::move(socket));
      {
        std::lock_guard lock(self->connections_mutex);
        // Drop finished connections from the list as new ones arrive (bounded by the limit).
        self->connections.remove_if([](const auto& w) { return w.expired(); });
        self->connections.push_back(connection);
      }
      auto executor = connection->socket.get_executor();
      asio::co_spawn(executor, serve(self, std::move(connection)), asio::detached);
    }
  }
};

DnsService::DnsService(asio::io_context& io, const config::DnsConfig& config,
                       std::shared_ptr<DnsHandler> handler, DnsServiceOptions options) {
  unsigned sockets = options.udp_sockets;
  if (sockets == 0) sockets = usable_cpus();
  impl_ = std::make_shared<Impl>(io, config, std::move(handler), sockets);
  if (options.metrics_registry) {
    impl_->dropped_metric = &prometheus::BuildCounter()
                                 .Name("dns_server_dns_dropped_total")
                                 .Help(
                                     "DNS messages not answered: shorter than a header, QR=1 "
                                     "or oversize")
                                 .Register(*options.metrics_registry)
                                 .Add({});
    auto& rrl = prometheus::BuildCounter()
                    .Name("dns_server_rrl_total")
                    .Help(
                        "UDP answers over dns.rrl_rate for their source prefix: dropped, or sent "
                        "truncated (slipped)")
                    .Register(*options.metrics_registry);
    impl_->rrl_dropped_metric = &rrl.Add({{"action", "dropped"}});
    impl_->rrl_slipped_metric = &rrl.Add({{"action", "slipped"}});
  }
}

DnsService::~DnsService() {
  stop();
}

void DnsService::start() {
  Impl& d = *impl_;
  const auto address = resolve_bind_host(d.config.bind_addr, "dns.bind_addr");
  const bool reuse_port = d.udp_sockets > 1;
  // Port 0 lets UDP pick the port and TCP joins it; that port may be taken for TCP by someone
  // else, so a picked port is given up and another one picked (a bounded number of times).
  // A configured port is bound once: failing is the operator's error to see.
  const bool pick_port = d.config.bind_addr.port == 0;
  constexpr int kPickAttempts = 16;
  for (int attempt = 1;; ++attempt) {
    // Claimed first (core/bind_address.hpp): a taken port fails here instead of being shared.
    const udp::endpoint udp_ep =
        claim_listen_endpoint(udp::endpoint(address, d.config.bind_addr.port), "dns.bind_addr");
    for (unsigned i = 0; i < d.udp_sockets; ++i) {
      auto listener = std::make_shared<Impl::UdpListener>(
          d.io,
          UdpBatchLimits{
              .batch = kBatch, .max_request = kMaxUdpQuery, .max_reply = kMaxUdpResponse},
          UdpBatchNames{.log_prefix = "dns: udp ",
                        .reuse_port_error = "dns.bind_addr: SO_REUSEPORT"},
          Impl::UdpHandler{
              .impl = impl_,
              .answers = d.handler->answers_cacheable()
                             ? std::make_unique<AnswerCache>(std::max(
                                   kMinAnswerCacheBytes, kAnswerCacheBytes / d.udp_sockets))
                             : nullptr});
      // Port 0: the first socket picks the port, the others (and TCP) join it.
      listener->open_and_bind(i == 0 ? udp_ep : d.udp_bound, reuse_port);
      if (i == 0) d.udp_bound = listener->local_endpoint();
      d.udp.push_back(std::move(listener));
    }
    const tcp::endpoint tcp_ep(address, d.udp_bound.port());
    d.acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(d.io));
    d.acceptor->open(tcp_ep.protocol());
    if (address.is_v6()) d.acceptor->set_option(asio::ip::v6_only(!address.is_unspecified()));
    d.acceptor->set_option(tcp::acceptor::reuse_address(true));
    boost::system::error_code ec;
    d.acceptor->bind(tcp_ep, ec);
    if (!ec) break;
    if (!pick_port || ec != asio::error::address_in_use || attempt == kPickAttempts) {
      throw boost::system::system_error(
          boost::system::error_code(ec.value(), ec.category()),
          "dns.bind_addr: cannot bind tcp " + net::format_endpoint(tcp_ep));
    }
    for (auto& listener : d.udp) listener->stop();
    d.udp.clear();
    d.acceptor.reset();
  }
  d.acceptor->listen();
  d.tcp_bound = d.acceptor->local_endpoint();
  log::info("dns: listening on udp ", d.udp_bound, " (", d.udp_sockets, " socket",
            d.udp_sockets == 1 ? "" : "s", ") and tcp ", d.tcp_bound);
  for (auto& listener : d.udp) listener->start();
  asio::co_spawn(d.acceptor->get_executor(), Impl::accept_loop(impl_), asio::detached);
}

void DnsService::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  for (auto& listener : impl_->udp) listener->stop();
  // Each listener's handler holds impl_; dropping our references breaks the cycle (the receive
  // loops keep their listener alive until they wind down).
  impl_->udp.clear();
  if (impl_->acceptor) {
    asio::post(impl_->acceptor->get_executor(), [impl = impl_] {
      boost::system::error_code ec;
      impl->acceptor->close(ec);
    });
  }
  std::lock_guard lock(impl_->connections_mutex);
  for (auto& weak : impl_->connections) {
    if (auto c = weak.lock()) {
      asio::post(c->socket.get_executor(), [c] {
        boost::system::error_code ec;
        c->timer.cancel();
        c->socket.close(ec);
      });
    }
  }
}

udp::endpoint DnsService::udp_endpoint() const {
  return impl_->udp_bound;
}

tcp::endpoint DnsService::tcp_endpoint() const {
  return impl_->tcp_bound;
}

const DnsCounters& DnsService::counters() const {
  return impl_->counters;
}

std::size_t DnsService::tcp_connections() const {
  return impl_->active_connections.load();
}

}  // namespace iroh::server
