#include "qad/qad_service.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <stdexcept>

namespace iroh::server {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
constexpr std::size_t kLocalCidSize = 8;
constexpr std::size_t kMinClientDcidSize = 8;  // RFC 9000 §7.2
constexpr std::uint64_t kFinishedCode = 1;     // spec §7.1

std::string cid_key(quic::ByteSpan cid) {
  return std::string(cid.begin(), cid.end());
}

}  // namespace

QadService::QadService(asio::io_context& io, QadConfig config)
    : io_(io),
      config_(std::move(config)),
      registry_(config_.metrics_registry ? config_.metrics_registry
                                         : std::make_shared<prometheus::Registry>()),
      metrics_(*registry_),
      new_connections_(config_.new_connection_rate,
                       static_cast<double>(config_.new_connection_burst)),
      socket_(io),
      timer_(io) {
  RAND_bytes(reset_key_.data(), static_cast<int>(reset_key_.size()));
  set_per_source_limit(config_.per_source_rate, config_.per_source_burst);
}

QadService::~QadService() {
  stop();
  *alive_ = false;
}

void QadService::start() {
  if (running_) return;
  std::string error;
  if (config_.certificate_pem) {
    credentials_ = quic::ServerCredentials::from_pem(*config_.certificate_pem, error);
  } else if (!config_.cert_path.empty() && !config_.key_path.empty()) {
    credentials_ = quic::ServerCredentials::from_files(config_.cert_path, config_.key_path, error);
  } else {
    error = "QAD needs a TLS certificate and key";
  }
  if (!credentials_) throw std::runtime_error("QAD: " + error);
  boost::system::error_code ec;
  socket_.open(config_.bind_addr.protocol(), ec);
  if (!ec && config_.bind_addr.address().is_v6()) {
    socket_.set_option(asio::ip::v6_only(false), ec);  // dual-stack where the OS allows it
    ec.clear();
  }
  if (!ec) socket_.bind(config_.bind_addr, ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (ec) {
    socket_.close();
    throw std::runtime_error("QAD: cannot bind UDP " + config_.bind_addr.address().to_string() +
                             ":" + std::to_string(config_.bind_addr.port()) + ": " + ec.message());
  }
  running_ = true;
  asio::co_spawn(io_, receive_loop(), asio::detached);
  asio::co_spawn(io_, timer_loop(), asio::detached);
}

void QadService::stop() {
  if (!running_) return;
  std::vector<ConnectionPtr> all;
  for (const auto& [ptr, connection] : connections_) all.push_back(connection);
  for (const auto& connection : all) {
    connection->close(kFinishedCode, "finished");
    flush(connection);
  }
  running_ = false;
  boost::system::error_code ec;
  socket_.close(ec);
  timer_.cancel();
}

void QadService::reload_certificate(const std::string& cert_chain_pem, const std::string& key_pem) {
  std::string error;
  auto credentials = quic::ServerCredentials::from_pem({cert_chain_pem, key_pem}, error);
  if (!credentials) throw std::runtime_error("QAD: certificate reload: " + error);
  set_credentials(std::move(credentials));
}

void QadService::set_credentials(std::shared_ptr<quic::ServerCredentials> credentials) {
  // Connections hold their own reference, so the old certificate lives as long as they do.
  if (credentials) credentials_ = std::move(credentials);
}

void QadService::set_new_connection_limit(double rate, std::size_t burst) {
  config_.new_connection_rate = rate;
  config_.new_connection_burst = burst;
  new_connections_.configure(rate, static_cast<double>(burst), quic::Clock::now());
}

void QadService::set_per_source_limit(double rate, std::size_t burst) {
  if (per_source_ && config_.per_source_rate == rate && config_.per_source_burst == burst) return;
  config_.per_source_rate = rate;
  config_.per_source_burst = burst;
  if (rate <= 0) {
    per_source_.reset();
    return;
  }
  // 16384 slots of 8 bytes: 128 KiB whatever the number of sources.
  per_source_.emplace(PrefixRateLimiter::Options{.rate = rate,
                                                 .burst = static_cast<double>(burst),
                                                 .ipv4_prefix = 32,
                                                 .ipv6_prefix = 64,
                                                 .table_size = 16384});
}

bool QadService::admit_new_connection(const udp::endpoint& from, quic::Clock::time_point now) {
  // Per source first, so that one flooding source does not spend the global tokens.
  if (per_source_ && !per_source_->allow(from.address(), now)) {
    metrics_.dropped.source_rate_limited.Increment();
    return false;
  }
  if (!new_connections_.take(now)) {
    metrics_.dropped.rate_limited.Increment();
    return false;
  }
  return true;
}

udp::endpoint QadService::local_endpoint() const {
  boost::system::error_code ec;
  auto endpoint = socket_.local_endpoint(ec);
  return ec ? udp::endpoint{} : endpoint;
}

asio::awaitable<void> QadService::receive_loop() {
  const auto alive = alive_;
  std::vector<std::uint8_t> buffer(65536);
  udp::endpoint from;
  for (;;) {
    auto [ec, size] = co_await socket_.async_receive_from(asio::buffer(buffer), from,
                                                          asio::as_tuple(asio::use_awaitable));
    if (!*alive || !running_) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !socket_.is_open()) co_return;
      continue;  // e.g. ICMP errors surfacing on the socket
    }
    on_datagram(quic::ByteSpan(buffer.data(), size), from);
  }
}

asio::awaitable<void> QadService::timer_loop() {
  const auto alive = alive_;
  for (;;) {
    timer_.expires_at(deadlines_.empty() ? quic::Clock::now() + std::chrono::hours(1)
                                         : deadlines_.begin()->first);
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!*alive || !running_) co_return;
    const auto now = quic::Clock::now();
    std::vector<ConnectionPtr> due;
    for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) {
      due.push_back(connections_.at(it->second));
    }
    for (const auto& connection : due) {
      connection->on_timeout(now);
      flush(connection);
    }
  }
}

void QadService::on_datagram(quic::ByteSpan datagram, const udp::endpoint& from) {
  auto header = quic::parse_packet_header(datagram, kLocalCidSize);
  if (!header || header->type == quic::PacketType::VersionNegotiation) {
    metrics_.dropped.undecodable.Increment();
    return;
  }
  if (header->version != quic::kVersion1) {
    // Only a datagram as large as a client's first flight earns a (smaller) Version Negotiation
    // (RFC 9000 §6.1), so it never amplifies.
    if (datagram.size() >= quic::kMinInitialDatagramSize) {
      const std::uint32_t versions[] = {quic::kVersion1};
      std::uint8_t random = 0;
      RAND_bytes(&random, 1);
      metrics_.version_negotiations_sent.Increment();  // before the client can see the answer
      send(from, quic::build_version_negotiation(header->dcid, header->scid, versions, random));
    } else {
      metrics_.dropped.small_initial.Increment();
    }
    return;
  }
  if (auto it = by_cid_.find(cid_key(header->dcid)); it != by_cid_.end()) {
    const ConnectionPtr connection = it->second;
    connection->on_datagram(datagram, from, quic::Clock::now());
    flush(connection);
    return;
  }
  if (header->type != quic::PacketType::Initial) {
    metrics_.dropped.unknown_connection.Increment();
    if (header->type == quic::PacketType::OneRtt)
      send_stateless_reset(*header, datagram.size(), from);
    return;
  }
  accept_initial(*header, datagram, from);
}

void QadService::accept_initial(const quic::PacketHeader& header, quic::ByteSpan datagram,
                                const udp::endpoint& from) {
  // RFC 9000 §14.1: Initials in datagrams under 1200 bytes are discarded; this is also what
  // caps amplification for a connection that has not been created yet.
  if (datagram.size() < quic::kMinInitialDatagramSize || header.dcid.size() < kMinClientDcidSize) {
    metrics_.dropped.small_initial.Increment();
    return;
  }
  if (connections_.size() >= config_.max_connections) {
    metrics_.dropped.connection_limit.Increment();
    return;
  }
  const auto now = quic::Clock::now();
  // Checked last, so only datagrams that could start a connection spend tokens. A client whose
  // Initial is dropped here retransmits it (or gives up) like after a loss.
  if (!admit_new_connection(from, now)) return;
  quic::Bytes local_cid(kLocalCidSize);
  RAND_bytes(local_cid.data(), static_cast<int>(local_cid.size()));
  quic::ConnectionLimits limits;
  limits.idle_timeout = config_.idle_timeout;
  limits.handshake_timeout = config_.handshake_timeout;
  auto connection = std::make_shared<quic::QadConnection>(credentials_, header, from, local_cid,
                                                          limits, reset_key_, now);
  connection->on_datagram(datagram, from, now);
  if (!connection->has_received_packet()) {
    metrics_.dropped.unauthenticated.Increment();  // not a real Initial: leave no state behind
    return;
  }
  metrics_.incoming.Increment();
  metrics_.open_connections.Increment();
  connections_[connection.get()] = connection;
  by_cid_[cid_key(header.dcid)] = connection;
  by_cid_[cid_key(local_cid)] = connection;
  flush(connection);
}

void QadService::flush(const ConnectionPtr& connection) {
  const auto now = quic::Clock::now();
  for (const auto& datagram : connection->take_datagrams(now)) send(datagram.to, datagram.data);
  metrics_.observed_address_frames_sent.Increment(
      static_cast<double>(connection->take_observed_addresses_sent()));
  auto cid_changes = connection->take_connection_id_changes();
  for (const auto& cid : cid_changes.issued) by_cid_[cid_key(cid)] = connection;
  for (const auto& cid : cid_changes.retired) {
    auto it = by_cid_.find(cid_key(cid));
    if (it != by_cid_.end() && it->second == connection) by_cid_.erase(it);
  }
  const bool was_established = connection->ever_established();
  if (was_established && !counted_established_.contains(connection.get())) {
    counted_established_.insert(connection.get());
    metrics_.connections.Increment();
    const std::chrono::duration<double> took =
        connection->established_at() - connection->created_at();
    metrics_.handshake_duration.Observe(took.count());
  }
  if (connection->state() == quic::QadConnection::State::Closed) {
    remove(connection);
    return;
  }
  const auto deadline = connection->next_timeout();
  if (auto it = scheduled_.find(connection.get()); it != scheduled_.end()) {
    deadlines_.erase({it->second, connection.get()});
  }
  scheduled_[connection.get()] = deadline;
  deadlines_.insert({deadline, connection.get()});
  if (deadline < timer_.expiry()) timer_.cancel();  // the timer loop re-arms earlier
}

void QadService::remove(const ConnectionPtr& connection) {
  if (!connections_.contains(connection.get())) return;
  metrics_.open_connections.Decrement();
  if (!connection->ever_established()) {
    metrics_.incoming_error.Increment();
  } else {
    metrics_.connections_closed.Increment();
    using Reason = quic::QadConnection::EndReason;
    const auto& peer_close = connection->peer_close();
    const bool finished = connection->end_reason() == Reason::LocalClose ||
                          (connection->end_reason() == Reason::PeerClosed && peer_close &&
                           peer_close->application && peer_close->error_code == kFinishedCode);
    if (!finished) metrics_.connections_errored.Increment();
  }
  if (!connection->error_text().empty()) log("QAD connection error: " + connection->error_text());
  auto cids = connection->active_connection_ids();
  cids.push_back(connection->original_dcid());
  for (const auto& cid : cids) {
    auto it = by_cid_.find(cid_key(cid));
    if (it != by_cid_.end() && it->second == connection) by_cid_.erase(it);
  }
  if (auto it = scheduled_.find(connection.get()); it != scheduled_.end()) {
    deadlines_.erase({it->second, connection.get()});
    scheduled_.erase(it);
  }
  counted_established_.erase(connection.get());
  connections_.erase(connection.get());
}

void QadService::send(const udp::endpoint& to, quic::ByteSpan data) {
  if (!socket_.is_open()) return;
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(data.data(), data.size()), to, 0, ec);
  if (ec) metrics_.dropped.send_failed.Increment();
}

void QadService::send_stateless_reset(const quic::PacketHeader& header, std::size_t datagram_size,
                                      const udp::endpoint& to) {
  // Always smaller than what triggered it, so two servers cannot ping-pong resets and nobody can
  // use us as an amplifier; below 22 bytes there is no room for a reset that is smaller.
  constexpr std::size_t kMinResetSize = 21;
  constexpr std::size_t kMaxResetSize = 43;
  if (datagram_size <= kMinResetSize) return;
  const auto token = quic::stateless_reset_token(reset_key_, header.dcid);
  metrics_.stateless_resets_sent.Increment();
  send(to, quic::build_stateless_reset(token, std::min(datagram_size - 1, kMaxResetSize)));
}

void QadService::log(std::string_view message) const {
  if (config_.log) config_.log(message);
}

}  // namespace iroh::server
