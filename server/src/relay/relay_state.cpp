#include "relay/relay_state.hpp"

#include <algorithm>
#include <cmath>

#include "core/net.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

void ConnectionSet::add(TrackedConnection* c) {
  std::lock_guard lock(mutex_);
  set_.insert(c);
}

void ConnectionSet::remove(TrackedConnection* c) {
  std::lock_guard lock(mutex_);
  set_.erase(c);
}

std::vector<std::shared_ptr<TrackedConnection>> ConnectionSet::alive() {
  std::vector<std::shared_ptr<TrackedConnection>> out;
  std::lock_guard lock(mutex_);
  out.reserve(set_.size());
  for (auto* c : set_) {
    if (auto strong = c->lock_tracked()) out.push_back(std::move(strong));
  }
  return out;
}

void ConnectionSet::close_all() {
  for_each([](TrackedConnection& c) { c.close(); });
}

RelayServiceState::RelayServiceState(const config::Config& c, RelayMetrics& m)
    : config(c),
      metrics(m),
      registry(m),
      key_cache(c.key_cache_capacity),
      queue_budget(c.limits.total_queue_bytes),
      pre_auth_budget(c.limits.pre_auth_bytes),
      settings_(std::make_shared<RelaySettings>(
          RelaySettings{c.limits, std::make_shared<AccessControl>(c.access, c.source.string())})) {
  reset_accept_bucket(c.limits);
  if (c.enable_relay && !c.mesh.peers.empty()) {
    mesh = std::make_unique<Mesh>(c.mesh, registry, m);
    registry.set_mesh_observer(mesh.get());
  }
}

std::shared_ptr<const RelaySettings> RelayServiceState::settings() const {
  std::lock_guard lock(settings_mutex_);
  return settings_;
}

void RelayServiceState::set_settings(std::shared_ptr<const RelaySettings> next) {
  std::lock_guard lock(settings_mutex_);
  settings_ = std::move(next);
  reset_accept_bucket(settings_->limits);
  queue_budget.set_limit(settings_->limits.total_queue_bytes);
  pre_auth_budget.set_limit(settings_->limits.pre_auth_bytes);
}

std::shared_ptr<asio::ssl::context> RelayServiceState::tls_context() const {
  std::lock_guard lock(settings_mutex_);
  return tls_context_;
}

void RelayServiceState::set_tls_context(std::shared_ptr<asio::ssl::context> ctx) {
  std::lock_guard lock(settings_mutex_);
  tls_context_ = std::move(ctx);
}

std::shared_ptr<asio::ssl::context> RelayServiceState::lookup_tls_context() const {
  std::lock_guard lock(settings_mutex_);
  return lookup_tls_context_;
}

void RelayServiceState::set_lookup_tls_context(std::shared_ptr<asio::ssl::context> ctx) {
  std::lock_guard lock(settings_mutex_);
  lookup_tls_context_ = std::move(ctx);
}

bool RelayServiceState::take_accept_token(const config::Limits& limits) {
  if (!limits.accept_conn_limit) return true;
  std::lock_guard lock(accept_mutex_);
  return accept_bucket_.take(Clock::now());
}

bool RelayServiceState::add_ip(const asio::ip::address& ip, const config::Limits& limits) {
  if (!limits.max_connections_per_ip) return true;
  std::lock_guard lock(ip_mutex_);
  auto& n = per_ip_[ip];
  if (n >= *limits.max_connections_per_ip) {
    if (n == 0) per_ip_.erase(ip);
    return false;
  }
  ++n;
  return true;
}

void RelayServiceState::remove_ip(const asio::ip::address& ip) {
  std::lock_guard lock(ip_mutex_);
  auto it = per_ip_.find(ip);
  if (it == per_ip_.end()) return;
  if (--it->second == 0) per_ip_.erase(it);
}

const char* RelayServiceState::take_pre_auth(const asio::ip::address& ip,
                                             const config::Limits& limits) {
  if (!pre_auth_budget.try_take(config::Limits::kPreAuthReserveBytes)) return "pre_auth_bytes";
  std::lock_guard lock(ip_mutex_);
  auto& n = unauth_per_ip_[ip];
  if (n >= limits.max_unauthenticated_per_ip) {
    if (n == 0) unauth_per_ip_.erase(ip);
    pre_auth_budget.give_back(config::Limits::kPreAuthReserveBytes);
    return "max_unauthenticated_per_ip";
  }
  ++n;
  return nullptr;
}

void RelayServiceState::release_pre_auth(const asio::ip::address& ip) {
  pre_auth_budget.give_back(config::Limits::kPreAuthReserveBytes);
  std::lock_guard lock(ip_mutex_);
  auto it = unauth_per_ip_.find(ip);
  if (it == unauth_per_ip_.end()) return;
  if (--it->second == 0) unauth_per_ip_.erase(it);
}

double RelayServiceState::accept_burst(const config::Limits& limits) {
  if (limits.accept_conn_burst) return double(*limits.accept_conn_burst);
  return std::max(1.0, std::ceil(limits.accept_conn_limit.value_or(1.0)));
}

void RelayServiceState::reset_accept_bucket(const config::Limits& limits) {
  // A new bucket, full: changed limits start afresh.
  std::lock_guard lock(accept_mutex_);
  accept_bucket_ = TokenBucket(limits.accept_conn_limit.value_or(0), accept_burst(limits));
}

asio::ip::address counted_address(const asio::ip::tcp::endpoint& ep) {
  return net::unmapped(ep.address());
}

}  // namespace iroh::server
