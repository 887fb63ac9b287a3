#include "relay/client_registry.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>

#include "core/log.hpp"

namespace iroh::server {

namespace {
constexpr std::string_view kSameIdText =
    "Another endpoint connected with the same endpoint id. No more messages "
    "will be received.";
constexpr std::string_view kHealthyText =
    "The connection is healthy and has recovered from previous problems";

relay::Bytes status_frame(relay::ProtocolVersion v, relay::StatusCode code, std::string_view text) {
  std::optional<relay::Bytes> frame;
  if (v == relay::ProtocolVersion::V1) {
    frame = relay::encode_server_frame(relay::Health{std::string(text)}, v);
  } else {
    frame = relay::encode_server_frame(relay::Status{static_cast<std::uint8_t>(code)}, v);
  }
  return frame ? std::move(*frame) : relay::Bytes{};
}
}  // namespace

relay::Bytes ClientRegistry::same_id_connected_frame(relay::ProtocolVersion v) {
  return status_frame(v, relay::StatusCode::SameEndpointIdConnected, kSameIdText);
}

relay::Bytes ClientRegistry::healthy_frame(relay::ProtocolVersion v) {
  return status_frame(v, relay::StatusCode::Healthy, kHealthyText);
}

void ClientRegistry::deactivate_active(Entry& entry) {
  if (entry.active->try_enqueue_control(same_id_connected_frame(entry.active->version())) !=
      RelayClientHandle::Enqueue::Ok) {
    metrics_.control_dropped.fetch_add(1, std::memory_order_relaxed);
  }
  entry.inactive.push_back(std::move(entry.active));
  entry.active.reset();
  routes_changed();
  metrics_.clients_inactive_added.fetch_add(1, std::memory_order_relaxed);
}

void ClientRegistry::reactivate_newest(const relay::EndpointId& id, Entry& entry) {
  entry.active = std::move(entry.inactive.back());
  entry.inactive.pop_back();
  routes_changed();
  metrics_.clients_inactive_removed.fetch_add(1, std::memory_order_relaxed);
  if (entry.active->try_enqueue_control(healthy_frame(entry.active->version())) !=
      RelayClientHandle::Enqueue::Ok) {
    metrics_.control_dropped.fetch_add(1, std::memory_order_relaxed);
  }
  if (mesh_) mesh_->local_present(id, entry.active->mesh_generation);
}

bool count_queue_drop(RelayMetrics& m, ClientRegistry::Forward outcome) {
  Counter* reason = nullptr;
  switch (outcome) {
    case ClientRegistry::Forward::QueueFull:
    case ClientRegistry::Forward::QueueFullThrottle:
      reason = &m.dropped_queue_full;
      break;
    case ClientRegistry::Forward::TotalQueueFull:
      reason = &m.dropped_total_queue_full;
      break;
    case ClientRegistry::Forward::RecipientClosed:
      reason = &m.dropped_write_error;
      break;
    default:
      return false;
  }
  m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
  reason->fetch_add(1, std::memory_order_relaxed);
  return true;
}

void ClientRegistry::register_client(const std::shared_ptr<RelayClientHandle>& client) {
  if (mesh_) {
    // Wall-clock nanoseconds, strictly increasing here: comparable across nodes whose clocks
    // agree to better than the time between two connections of one id (docs/mesh.md §6.2).
    const auto now = std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::uint64_t last = last_generation_.load(std::memory_order_relaxed);
    std::uint64_t next;
    do {
      next = std::max(now, last + 1);
    } while (!last_generation_.compare_exchange_weak(last, next, std::memory_order_relaxed));
    client->mesh_generation = next;
  }
  Shard& shard = shard_of(client->endpoint_id());
  std::unique_lock lock(shard.mutex);
  auto& entry = shard.clients[client->endpoint_id()];
  if (entry.active) deactivate_active(entry);
  entry.active = client;
  routes_changed();
  if (mesh_) mesh_->local_present(client->endpoint_id(), client->mesh_generation);
  metrics_.accepts.fetch_add(1, std::memory_order_relaxed);
  metrics_.unique_client_keys.fetch_add(1, std::memory_order_relaxed);
  metrics_.clients_connected.fetch_add(1, std::memory_order_relaxed);
}

void ClientRegistry::unregister_client(const RelayClientHandle* client, EndpointIdSet sent_to) {
  const relay::EndpointId id = client->endpoint_id();
  {
    Shard& shard = shard_of(id);
    std::unique_lock lock(shard.mutex);
    auto it = shard.clients.find(id);
    if (it == shard.clients.end()) return;
    Entry& entry = it->second;
    routes_changed();
    metrics_.disconnects.fetch_add(1, std::memory_order_relaxed);
    metrics_.clients_connected.fetch_sub(1, std::memory_order_relaxed);

    if (entry.active.get() != client) {
      auto pos = std::find_if(entry.inactive.begin(), entry.inactive.end(),
                              [&](const auto& c) { return c.get() == client; });
      if (pos != entry.inactive.end()) {
        entry.inactive.erase(pos);
        metrics_.clients_inactive_removed.fetch_add(1, std::memory_order_relaxed);
      }
      entry.sent_to.merge(sent_to);
      // Inactive because a peer has a newer connection (mesh, §6.2), and that was the last
      // local one: the id is gone from here.
      if (entry.active || !entry.inactive.empty()) return;
      sent_to.swap(entry.sent_to);
      shard.clients.erase(it);
      if (mesh_) mesh_->local_gone(id);
    } else if (!entry.inactive.empty()) {
      reactivate_newest(id, entry);
      entry.sent_to.merge(sent_to);
      return;
    } else {
      sent_to.merge(entry.sent_to);
      shard.clients.erase(it);
      if (mesh_) mesh_->local_gone(id);
    }
  }
  // Still connected at a mesh peer: not gone yet (docs/mesh.md §6.3).
  if (mesh_ && mesh_->keeps_alive(id, sent_to)) return;
  // The id is gone: the peers it sent to hear EndpointGone (§6.4). Their shards
  // are locked one at a time, after this one's lock is released.
  if (!sent_to.empty()) send_endpoint_gone(id, sent_to);
}

void ClientRegistry::mesh_reconcile(const relay::EndpointId& id,
                                    std::optional<std::uint64_t> best_remote) {
  Shard& shard = shard_of(id);
  std::unique_lock lock(shard.mutex);
  auto it = shard.clients.find(id);
  if (it == shard.clients.end()) return;
  Entry& entry = it->second;
  if (entry.active && best_remote && *best_remote > entry.active->mesh_generation) {
    // A newer connection at a peer wins (§6.2), exactly like a newer local one.
    deactivate_active(entry);
  } else if (!entry.active && !best_remote && !entry.inactive.empty()) {
    reactivate_newest(id, entry);
  }
}

void ClientRegistry::send_endpoint_gone(const relay::EndpointId& gone, const EndpointIdSet& peers) {
  auto frame = relay::encode_server_frame(relay::EndpointGone{gone}, relay::ProtocolVersion::V2);
  if (!frame) return;
  for (const auto& peer : peers) {
    const Shard& shard = shard_of(peer);
    std::shared_lock lock(shard.mutex);
    auto p = shard.clients.find(peer);
    if (p == shard.clients.end() || !p->second.active) continue;
    relay::Bytes copy = *frame;
    if (p->second.active->try_enqueue_control(std::move(copy)) != RelayClientHandle::Enqueue::Ok) {
      metrics_.control_dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

ClientRegistry::Forward ClientRegistry::forward(const relay::EndpointId& dst,
                                                const ServerDatagram& frame,
                                                RelayClientHandle* sender, RouteCache* cache) {
  const Shard& shard = shard_of(dst);
  std::shared_lock lock(shard.mutex, std::defer_lock);
  const std::shared_ptr<RelayClientHandle>* found = nullptr;
  if (cache && cache->generation != 0 && cache->dst == dst &&
      cache->generation == route_generation_.load(std::memory_order_acquire)) {
    found = &cache->active;
  } else {
    lock.lock();
    auto it = shard.clients.find(dst);
    if (it == shard.clients.end() || !it->second.active) return Forward::UnknownDestination;
    found = &it->second.active;
    if (cache) {
      // Read under the shard lock: a change to this entry bumps it under the unique lock.
      cache->generation = route_generation_.load(std::memory_order_acquire);
      cache->dst = dst;
      cache->active = it->second.active;
    }
  }
  const auto& active = *found;
  if (cross_worker_ && sender && active->worker() != sender->worker()) {
    cross_worker_->hand_off(active, frame, *sender);
    return Forward::HandedOff;
  }
  switch (active->try_enqueue_datagram(frame, sender)) {
    case RelayClientHandle::Enqueue::Ok:
      return Forward::Queued;
    case RelayClientHandle::Enqueue::OkThrottle:
      return Forward::QueuedThrottle;
    case RelayClientHandle::Enqueue::Full:
      return Forward::QueueFull;
    case RelayClientHandle::Enqueue::FullThrottle:
      return Forward::QueueFullThrottle;
    case RelayClientHandle::Enqueue::BudgetFull:
      return Forward::TotalQueueFull;
    case RelayClientHandle::Enqueue::Closed:
      break;
  }
  return Forward::RecipientClosed;
}

std::size_t ClientRegistry::endpoint_count() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::shared_lock lock(shard.mutex);
    n += shard.clients.size();
  }
  return n;
}

template <class F>
void ClientRegistry::for_each_connection(F&& f) const {
  for (const auto& shard : shards_) {
    std::shared_lock lock(shard.mutex);
    for (const auto& [id, entry] : shard.clients) {
      if (entry.active) f(entry.active);
      for (const auto& c : entry.inactive) f(c);
    }
  }
}

RelayQueueDepth ClientRegistry::queue_depth() const {
  RelayQueueDepth depth;
  for_each_connection([&depth](const std::shared_ptr<RelayClientHandle>& client) {
    const std::size_t queued = client->queued_datagrams();
    const std::size_t bytes = client->queued_bytes();
    ++depth.clients;
    depth.total += queued;
    depth.max = std::max(depth.max, queued);
    depth.total_bytes += bytes;
    depth.max_bytes = std::max(depth.max_bytes, bytes);
  });
  return depth;
}

bool ClientRegistry::is_registered(const relay::EndpointId& id) const {
  const Shard& shard = shard_of(id);
  std::shared_lock lock(shard.mutex);
  return shard.clients.contains(id);
}

void ClientRegistry::close_all() {
  std::vector<std::shared_ptr<RelayClientHandle>> all;
  for_each_connection([&all](const std::shared_ptr<RelayClientHandle>& c) { all.push_back(c); });
  for (auto& c : all) c->close();
}

void ClientRegistry::clear() {
  for (auto& shard : shards_) {
    decltype(shard.clients) gone;
    {
      std::unique_lock lock(shard.mutex);
      gone.swap(shard.clients);
      routes_changed();
    }
  }
}

}  // namespace iroh::server
