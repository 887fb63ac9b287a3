// The relay mesh (issue 16, docs/mesh.md): several nodes serve one relay URL. Each node dials
// every peer (an outgoing link: the peer tells us which endpoints it has, we send it datagrams
// for them) and accepts the peers' links on GET /relay/mesh (an incoming link: we tell the peer
// which endpoints we have, it sends us datagrams for them). A datagram from a peer is delivered
// to local clients only, so it crosses at most one link (§6.1).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "iroh/config.hpp"
#include "iroh/mesh_proto.hpp"
#include "iroh/server/metrics.hpp"
#include "relay/client_registry.hpp"

namespace iroh::server {

// The outgoing side of one link (relay/mesh_link.hpp): a bounded queue of encoded mesh frames
// drained by the link's writer. Any thread.
class MeshLinkSink {
 public:
  virtual ~MeshLinkSink() = default;
  // False if the queue is full or the link closed; the frame is dropped.
  virtual bool send(relay::Bytes&& frame) = 0;
  // Only posts.
  virtual void close() = 0;
};

class Mesh final : public MeshObserver {
 public:
  Mesh(const config::MeshConfig& config, ClientRegistry& registry, RelayMetrics& metrics);
  ~Mesh() override;

  const mesh::NodeId& node_id() const { return node_id_; }
  relay::ByteSpan psk() const {
    return {reinterpret_cast<const std::uint8_t*>(config_.psk.data()), config_.psk.size()};
  }
  const config::MeshConfig& config() const { return config_; }

  // Starts one dialer per peer on `ioc` (§3: redialled with backoff).
  void start(boost::asio::io_context& ioc);
  // Stops redialling and closes the links. Idempotent.
  void stop();
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // A peer linked to us, so peers may be back from a restart: down dialers retry now instead of
  // waiting out their backoff (§6.4). Any thread; only posts.
  void kick_dialers();
  // The dialer of `peer` waits on `timer` between attempts (dial loop's thread; null = none).
  void set_dial_timer(std::size_t peer, boost::asio::steady_timer* timer) {
    dial_timers_[peer] = timer;
  }
  // Drops every link (shutdown, after the workers stopped and before their io_contexts go).
  void clear();

  // A datagram for `dst`, which is not active at this node: to the peer that has it (§6.1).
  enum class Route { Forwarded, Unknown, MeshDown, LinkFull };
  Route forward(const relay::EndpointId& dst, const relay::Bytes& frame);

  // Incoming links (we are the acceptor): presence goes out on `sink` from now on, starting
  // with every active local endpoint and a Synced (§5.4).
  void add_subscriber(const std::shared_ptr<MeshLinkSink>& sink);
  void remove_subscriber(const MeshLinkSink* sink);
  // A Forward from a peer: to a local client or dropped, never to another peer.
  void deliver(const mesh::Forward& f);

  // Outgoing links (we are the dialer), peer = index in config().peers.
  void link_up(std::size_t peer, std::shared_ptr<MeshLinkSink> sink);
  void link_down(std::size_t peer);
  void on_present(std::size_t peer, const relay::EndpointId& id, std::uint64_t generation);
  void on_gone(std::size_t peer, const relay::EndpointId& id);
  void on_synced(std::size_t peer);

  // MeshObserver (called by the registry under its shard lock: only enqueues).
  void local_present(const relay::EndpointId& id, std::uint64_t generation) override;
  void local_gone(const relay::EndpointId& id) override;
  bool keeps_alive(const relay::EndpointId& id, EndpointIdSet& receivers) override;

  std::size_t remote_endpoints() const;

 private:
  struct RemoteAt {
    std::size_t peer;
    std::uint64_t generation;
    bool stale;  // announced before the link's latest reconnect, not yet confirmed (§5.4)
  };
  struct RemoteEntry {
    std::vector<RemoteAt> at;
    // Local clients that received datagrams from this endpoint: they hear EndpointGone when it
    // leaves the mesh (§6.3).
    EndpointIdSet receivers;
  };
  struct Peer {
    std::shared_ptr<MeshLinkSink> sink;  // null while down
    MeshPeerMetrics* metrics = nullptr;
    std::size_t announced = 0;       // entries of remote_ with a RemoteAt for this peer
    bool over_limit_logged = false;  // once per link, not once per dropped Present
  };

  void broadcast(const relay::Bytes& frame);
  // Drops `peer`'s entry for `id` (under remote_mutex_); returns receivers to notify if the id
  // has no entry left.
  std::optional<EndpointIdSet> erase_at(const relay::EndpointId& id, std::size_t peer,
                                        bool only_stale);
  void after_change(const relay::EndpointId& id, std::optional<EndpointIdSet> left);
  std::optional<std::uint64_t> best_live(const relay::EndpointId& id) const;

  const config::MeshConfig config_;
  ClientRegistry& registry_;
  RelayMetrics& metrics_;
  mesh::NodeId node_id_{};
  std::atomic<bool> stopping_{false};

  mutable std::shared_mutex remote_mutex_;  // remote_ and peers_
  std::unordered_map<relay::EndpointId, RemoteEntry, relay::EndpointIdHash> remote_;
  std::vector<Peer> peers_;

  std::mutex subs_mutex_;
  std::vector<std::shared_ptr<MeshLinkSink>> subs_;
  std::shared_ptr<boost::asio::ssl::context> client_tls_;
  boost::asio::io_context* dial_ioc_ = nullptr;
  std::vector<boost::asio::steady_timer*> dial_timers_;  // dial_ioc_'s thread only
};

}  // namespace iroh::server
