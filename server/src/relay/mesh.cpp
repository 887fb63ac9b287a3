// docs/mesh.md §6: the remote-endpoint table, presence and forwarding.
#include "relay/mesh.hpp"

#include <sodium.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "core/log.hpp"

namespace iroh::server {

Mesh::Mesh(const config::MeshConfig& config, ClientRegistry& registry, RelayMetrics& metrics)
    : config_(config), registry_(registry), metrics_(metrics) {
  randombytes_buf(node_id_.data(), node_id_.size());
  peers_.resize(config_.peers.size());
  dial_timers_.resize(config_.peers.size(), nullptr);
  for (std::size_t i = 0; i < config_.peers.size(); ++i) {
    metrics_.mesh_peers.push_back(std::make_unique<MeshPeerMetrics>(config_.peers[i].url));
    peers_[i].metrics = metrics_.mesh_peers.back().get();
  }
}

Mesh::~Mesh() {
  stop();
}

void Mesh::stop() {
  if (stopping_.exchange(true)) return;
  std::vector<std::shared_ptr<MeshLinkSink>> sinks;
  {
    std::unique_lock lock(remote_mutex_);
    for (auto& p : peers_) {
      if (p.sink) sinks.push_back(p.sink);
    }
  }
  {
    std::lock_guard lock(subs_mutex_);
    sinks.insert(sinks.end(), subs_.begin(), subs_.end());
  }
  for (auto& s : sinks) s->close();
}

void Mesh::clear() {
  std::vector<std::shared_ptr<MeshLinkSink>> sinks;
  {
    std::unique_lock lock(remote_mutex_);
    for (auto& p : peers_) sinks.push_back(std::move(p.sink));
  }
  {
    std::lock_guard lock(subs_mutex_);
    for (auto& s : subs_) sinks.push_back(std::move(s));
    subs_.clear();
  }
  dial_ioc_ = nullptr;
}

Mesh::Route Mesh::forward(const relay::EndpointId& dst, const relay::Bytes& frame) {
  std::shared_ptr<MeshLinkSink> sink;
  MeshPeerMetrics* pm = nullptr;
  {
    std::shared_lock lock(remote_mutex_);
    auto it = remote_.find(dst);
    if (it == remote_.end()) return Route::Unknown;
    std::uint64_t best = 0;
    for (const auto& at : it->second.at) {
      const Peer& p = peers_[at.peer];
      if (p.sink && (!sink || at.generation > best)) {
        sink = p.sink;
        pm = p.metrics;
        best = at.generation;
      }
    }
  }
  if (!sink) return Route::MeshDown;
  const std::size_t size = frame.size();
  if (!sink->send(mesh::encode_forward(dst, frame))) {
    pm->link_full.fetch_add(1, std::memory_order_relaxed);
    return Route::LinkFull;
  }
  pm->forwarded_datagrams.fetch_add(1, std::memory_order_relaxed);
  pm->forwarded_bytes.fetch_add(size, std::memory_order_relaxed);
  return Route::Forwarded;
}

void Mesh::broadcast(const relay::Bytes& frame) {
  // A node shutting down does not announce its clients' departures: they reconnect to another
  // node, whose newer Present supersedes ours; until then peers count mesh_down (§6.4).
  if (stopping()) return;
  std::lock_guard lock(subs_mutex_);
  for (auto& s : subs_) {
    relay::Bytes copy = frame;
    // A link that cannot keep up with presence is closed: the peer redials and gets a fresh
    // snapshot, rather than a table with holes (§5.4).
    if (!s->send(std::move(copy))) s->close();
  }
}

void Mesh::local_present(const relay::EndpointId& id, std::uint64_t generation) {
  broadcast(mesh::encode(mesh::Present{id, generation}));
}

void Mesh::local_gone(const relay::EndpointId& id) {
  broadcast(mesh::encode(mesh::Gone{id}));
}

bool Mesh::keeps_alive(const relay::EndpointId& id, EndpointIdSet& receivers) {
  std::unique_lock lock(remote_mutex_);
  auto it = remote_.find(id);
  if (it == remote_.end()) return false;
  it->second.receivers.merge(receivers);
  return true;
}

void Mesh::kick_dialers() {
  if (!dial_ioc_ || stopping()) return;
  boost::asio::post(*dial_ioc_, [this] {
    std::shared_lock lock(remote_mutex_);
    for (std::size_t i = 0; i < dial_timers_.size(); ++i) {
      if (!peers_[i].sink && dial_timers_[i]) dial_timers_[i]->cancel();
    }
  });
}

void Mesh::add_subscriber(const std::shared_ptr<MeshLinkSink>& sink) {
  kick_dialers();
  {
    std::lock_guard lock(subs_mutex_);
    subs_.push_back(sink);
  }
  // Under each shard's lock: a change of that shard is either in the snapshot or broadcast
  // after it (§5.4).
  bool ok = true;
  registry_.for_each_active([&](const relay::EndpointId& id, std::uint64_t generation) {
    if (ok) ok = sink->send(mesh::encode(mesh::Present{id, generation}));
  });
  if (!ok || !sink->send(relay::Bytes{static_cast<std::uint8_t>(mesh::FrameType::Synced)})) {
    sink->close();
  }
}

void Mesh::remove_subscriber(const MeshLinkSink* sink) {
  std::lock_guard lock(subs_mutex_);
  std::erase_if(subs_, [sink](const auto& s) { return s.get() == sink; });
}

void Mesh::deliver(const mesh::Forward& f) {
  // The source: the key behind the RelayToClientDatagram type byte (relay.md §5).
  relay::EndpointId src;
  std::copy_n(f.frame.begin() + 1, src.bytes.size(), src.bytes.begin());
  auto& m = metrics_;
  const auto outcome = registry_.forward(f.dst, ServerDatagram::encoded(f.frame), nullptr);
  switch (outcome) {
    case ClientRegistry::Forward::Queued:
    case ClientRegistry::Forward::QueuedThrottle:  // not with a null sender
    case ClientRegistry::Forward::HandedOff: {
      bool known;
      {
        std::shared_lock lock(remote_mutex_);
        auto it = remote_.find(src);
        known = it == remote_.end() || it->second.receivers.contains(f.dst);
      }
      if (!known) {
        std::unique_lock lock(remote_mutex_);
        auto it = remote_.find(src);
        if (it != remote_.end()) it->second.receivers.insert(f.dst);
      }
      break;
    }
    case ClientRegistry::Forward::UnknownDestination:
      m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
      m.dropped_unknown_destination.fetch_add(1, std::memory_order_relaxed);
      break;
    case ClientRegistry::Forward::QueueFull:
    case ClientRegistry::Forward::QueueFullThrottle:
    case ClientRegistry::Forward::TotalQueueFull:
    case ClientRegistry::Forward::RecipientClosed:
      count_queue_drop(m, outcome);
      break;
  }
}

std::optional<std::uint64_t> Mesh::best_live(const relay::EndpointId& id) const {
  std::shared_lock lock(remote_mutex_);
  auto it = remote_.find(id);
  if (it == remote_.end()) return std::nullopt;
  std::optional<std::uint64_t> best;
  for (const auto& at : it->second.at) {
    if (peers_[at.peer].sink && (!best || at.generation > *best)) best = at.generation;
  }
  return best;
}

// After `id`'s remote state changed: local duplicates follow the newest-wins rule, and an id that
// left the whole mesh is announced to the local clients that heard from it (§6.2, §6.3).
void Mesh::after_change(const relay::EndpointId& id, std::optional<EndpointIdSet> left) {
  registry_.mesh_reconcile(id, best_live(id));
  if (left && !left->empty() && !registry_.is_registered(id)) {
    registry_.send_endpoint_gone(id, *left);
  }
}

std::optional<EndpointIdSet> Mesh::erase_at(const relay::EndpointId& id, std::size_t peer,
                                            bool only_stale) {
  auto it = remote_.find(id);
  if (it == remote_.end()) return std::nullopt;
  peers_[peer].announced -= std::erase_if(it->second.at, [&](const RemoteAt& at) {
    return at.peer == peer && (!only_stale || at.stale);
  });
  if (!it->second.at.empty()) return std::nullopt;
  EndpointIdSet receivers = std::move(it->second.receivers);
  remote_.erase(it);
  metrics_.mesh_remote_endpoints.store(std::int64_t(remote_.size()), std::memory_order_relaxed);
  return receivers;
}

void Mesh::link_up(std::size_t peer, std::shared_ptr<MeshLinkSink> sink) {
  {
    std::unique_lock lock(remote_mutex_);
    peers_[peer].sink = std::move(sink);
    peers_[peer].over_limit_logged = false;
    // What the peer announced before is confirmed by its new snapshot or dropped at Synced.
    for (auto& [id, entry] : remote_) {
      for (auto& at : entry.at) {
        if (at.peer == peer) at.stale = true;
      }
    }
  }
  peers_[peer].metrics->up.store(true, std::memory_order_relaxed);
}

void Mesh::link_down(std::size_t peer) {
  std::vector<relay::EndpointId> ids;
  {
    std::unique_lock lock(remote_mutex_);
    peers_[peer].sink.reset();
    // The entries stay (datagrams to them count as mesh_down) until the peer is back and has
    // re-announced what it still has (§6.4).
    for (const auto& [id, entry] : remote_) {
      for (const auto& at : entry.at) {
        if (at.peer == peer) ids.push_back(id);
      }
    }
  }
  peers_[peer].metrics->up.store(false, std::memory_order_relaxed);
  for (const auto& id : ids) after_change(id, std::nullopt);
}

void Mesh::on_present(std::size_t peer, const relay::EndpointId& id, std::uint64_t generation) {
  {
    std::unique_lock lock(remote_mutex_);
    Peer& p = peers_[peer];
    auto it = remote_.find(id);
    RemoteAt* at = nullptr;
    if (it != remote_.end()) {
      auto found = std::find_if(it->second.at.begin(), it->second.at.end(),
                                [peer](const RemoteAt& a) { return a.peer == peer; });
      if (found != it->second.at.end()) at = &*found;
    }
    if (at) {
      at->generation = generation;
      at->stale = false;
    } else if (p.announced >= config_.max_remote_endpoints) {
      // §5.2 cap: a new id beyond mesh.max_remote_endpoints is not stored. The link stays up:
      // closing it would only make the peer redial and send the same oversized snapshot again,
      // and the ids already known stay reachable. Datagrams for the dropped ids count as
      // unknown_destination, as for any id this node does not know.
      p.metrics->presence_dropped.fetch_add(1, std::memory_order_relaxed);
      if (!p.over_limit_logged) {
        p.over_limit_logged = true;
        log::warn("mesh: ", p.metrics->url, " announced more than mesh.max_remote_endpoints (",
                  config_.max_remote_endpoints,
                  ") endpoints; further announcements are dropped and counted");
      }
      return;
    } else {
      if (it == remote_.end()) it = remote_.try_emplace(id).first;
      it->second.at.push_back(RemoteAt{peer, generation, false});
      ++p.announced;
    }
    metrics_.mesh_remote_endpoints.store(std::int64_t(remote_.size()), std::memory_order_relaxed);
  }
  after_change(id, std::nullopt);
}

void Mesh::on_gone(std::size_t peer, const relay::EndpointId& id) {
  std::optional<EndpointIdSet> left;
  {
    std::unique_lock lock(remote_mutex_);
    left = erase_at(id, peer, false);
  }
  after_change(id, std::move(left));
}

void Mesh::on_synced(std::size_t peer) {
  std::vector<std::pair<relay::EndpointId, std::optional<EndpointIdSet>>> changed;
  {
    std::unique_lock lock(remote_mutex_);
    std::vector<relay::EndpointId> stale;
    for (const auto& [id, entry] : remote_) {
      for (const auto& at : entry.at) {
        if (at.peer == peer && at.stale) stale.push_back(id);
      }
    }
    for (const auto& id : stale) changed.emplace_back(id, erase_at(id, peer, true));
  }
  for (auto& [id, left] : changed) after_change(id, std::move(left));
}

std::size_t Mesh::remote_endpoints() const {
  std::shared_lock lock(remote_mutex_);
  return remote_.size();
}

}  // namespace iroh::server
