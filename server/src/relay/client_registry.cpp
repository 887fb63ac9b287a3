#include "relay/client_registry.hpp"

#include <algorithm>
#include <mutex>

#include "log.hpp"

namespace iroh::server {

namespace {
constexpr std::string_view kSameIdText =
    "Another endpoint connected with the same endpoint id. No more messages will be received.";
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

void ClientRegistry::register_client(const std::shared_ptr<RelayClientHandle>& client) {
  std::unique_lock lock(mutex_);
  auto& entry = clients_[client->endpoint_id()];
  if (entry.active) {
    auto& old = entry.active;
    if (old->try_enqueue_control(same_id_connected_frame(old->version())) !=
        RelayClientHandle::Enqueue::Ok) {
      metrics_.control_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    entry.inactive.push_back(std::move(old));
    metrics_.clients_inactive_added.fetch_add(1, std::memory_order_relaxed);
  }
  entry.active = client;
  metrics_.accepts.fetch_add(1, std::memory_order_relaxed);
  metrics_.unique_client_keys.fetch_add(1, std::memory_order_relaxed);
  metrics_.clients_connected.fetch_add(1, std::memory_order_relaxed);
}

void ClientRegistry::unregister_client(const RelayClientHandle* client, EndpointIdSet sent_to) {
  const relay::EndpointId id = client->endpoint_id();
  std::unique_lock lock(mutex_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Entry& entry = it->second;
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
    return;
  }

  if (!entry.inactive.empty()) {
    entry.active = std::move(entry.inactive.back());
    entry.inactive.pop_back();
    metrics_.clients_inactive_removed.fetch_add(1, std::memory_order_relaxed);
    if (entry.active->try_enqueue_control(healthy_frame(entry.active->version())) !=
        RelayClientHandle::Enqueue::Ok) {
      metrics_.control_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    entry.sent_to.merge(sent_to);
    return;
  }

  sent_to.merge(entry.sent_to);
  clients_.erase(it);
  if (sent_to.empty()) return;
  auto gone = relay::encode_server_frame(relay::EndpointGone{id}, relay::ProtocolVersion::V2);
  if (!gone) return;
  for (const auto& peer : sent_to) {
    auto p = clients_.find(peer);
    if (p == clients_.end() || !p->second.active) continue;
    relay::Bytes frame = *gone;
    if (p->second.active->try_enqueue_control(std::move(frame)) != RelayClientHandle::Enqueue::Ok) {
      metrics_.control_dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

ClientRegistry::Forward ClientRegistry::forward(const relay::EndpointId& dst, relay::Bytes&& frame,
                                                RelayClientHandle* sender) {
  std::shared_lock lock(mutex_);
  auto it = clients_.find(dst);
  if (it == clients_.end() || !it->second.active) return Forward::UnknownDestination;
  switch (it->second.active->try_enqueue_datagram(std::move(frame), sender)) {
    case RelayClientHandle::Enqueue::Ok:
      return Forward::Queued;
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
  std::shared_lock lock(mutex_);
  return clients_.size();
}

RelayQueueDepth ClientRegistry::queue_depth() const {
  RelayQueueDepth depth;
  auto add = [&depth](RelayClientHandle& client) {
    const std::size_t queued = client.queued_datagrams();
    const std::size_t bytes = client.queued_bytes();
    ++depth.clients;
    depth.total += queued;
    depth.max = std::max(depth.max, queued);
    depth.total_bytes += bytes;
    depth.max_bytes = std::max(depth.max_bytes, bytes);
  };
  std::shared_lock lock(mutex_);
  for (const auto& [id, entry] : clients_) {
    if (entry.active) add(*entry.active);
    for (const auto& c : entry.inactive) add(*c);
  }
  return depth;
}

bool ClientRegistry::is_registered(const relay::EndpointId& id) const {
  std::shared_lock lock(mutex_);
  return clients_.contains(id);
}

void ClientRegistry::close_all() {
  std::vector<std::shared_ptr<RelayClientHandle>> all;
  {
    std::shared_lock lock(mutex_);
    for (auto& [id, entry] : clients_) {
      if (entry.active) all.push_back(entry.active);
      all.insert(all.end(), entry.inactive.begin(), entry.inactive.end());
    }
  }
  for (auto& c : all) c->close();
}

}  // namespace iroh::server
