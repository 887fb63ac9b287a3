// EndpointId -> relay connections (spec relay.md §6.2-§6.4): one active
// connection per id plus a LIFO list of inactive duplicates; forwarding only
// try-enqueues on the recipient, or hands the datagram to the recipient's
// worker when it lives on another one (issue 13). Sharded by id, each shard
// read-mostly (a shared lock per lookup), so that lookups from every worker do
// not meet on one lock.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "iroh/relay_proto.hpp"
#include "iroh/server/metrics.hpp"
#include "relay/send_queue.hpp"

namespace iroh::server {

using EndpointIdSet = std::unordered_set<relay::EndpointId, relay::EndpointIdHash>;

// What the registry needs from a connection. All members are callable from any
// thread and must never block on I/O.
class RelayClientHandle {
 public:
  // `worker`: the relay worker whose event loop runs this connection (0 with
  // one worker).
  RelayClientHandle(relay::EndpointId id, relay::ProtocolVersion version, unsigned worker = 0)
      : id_(id), version_(version), worker_(worker) {}
  virtual ~RelayClientHandle() = default;

  const relay::EndpointId& endpoint_id() const { return id_; }
  relay::ProtocolVersion version() const { return version_; }
  unsigned worker() const { return worker_; }

  // A RelayToClientDatagram(Batch) frame, written into the send queue (not
  // kept: `frame` may view the sender's read buffer). OkThrottle: queued, and
  // the queue is past its throttle mark: `sender` was recorded as waiting for
  // it to drain (it gets resume_reading() then) and is to stop reading. Full:
  // the datagram is dropped; FullThrottle: dropped, and `sender` recorded as for
  // OkThrottle. BudgetFull: limits.total_queue_bytes reached.
  enum class Enqueue { Ok, OkThrottle, Full, FullThrottle, BudgetFull, Closed };
  virtual Enqueue try_enqueue_datagram(const ServerDatagram& frame, RelayClientHandle* sender) = 0;
  // An encoded control frame (EndpointGone, Status, Health, Pong) on the
  // priority lane.
  virtual Enqueue try_enqueue_control(relay::Bytes&& frame) = 0;
  virtual void close() = 0;
  // Datagrams waiting in this client's send queue (metrics).
  virtual std::size_t queued_datagrams() { return 0; }
  // Bytes of those datagrams (limits.client_queue_bytes counts these).
  virtual std::size_t queued_bytes() { return 0; }
  // Back-pressure (issue 13): a destination this client was throttled on has
  // drained. Any thread; only posts.
  virtual void resume_reading() {}
  // Back-pressure for a datagram that was handed to another worker and found
  // the destination's queue full (WaitForDrain: this client was recorded as a
  // drain waiter) or the daemon-wide budget spent (BudgetBackoff). Any thread;
  // only posts.
  enum class SlowDown { WaitForDrain, BudgetBackoff };
  virtual void slow_down(SlowDown) {}
  // A weak reference to this handle, kept by destinations this client waits on.
  virtual std::weak_ptr<RelayClientHandle> weak_handle() = 0;

 protected:
  void set_identity(relay::EndpointId id, relay::ProtocolVersion version) {
    id_ = id;
    version_ = version;
  }

 private:
  relay::EndpointId id_;
  relay::ProtocolVersion version_;
  unsigned worker_;

 public:
  // Issue 16 (docs/mesh.md §6.2): orders connections of one id across the mesh; set by
  // register_client.
  std::uint64_t mesh_generation = 0;
};

// The relay mesh's view of the registry (relay/mesh.hpp, issue 16). local_present and
// local_gone are called under the id's shard lock and must only enqueue.
class MeshObserver {
 public:
  virtual ~MeshObserver() = default;
  // `id` is now active here (a new connection, or an inactive one promoted).
  virtual void local_present(const relay::EndpointId& id, std::uint64_t generation) = 0;
  // `id` has no connection here any more.
  virtual void local_gone(const relay::EndpointId& id) = 0;
  // Outside the lock, after the last local connection of `id` left: true if `id` is still
  // connected at a peer. It then keeps `receivers` for EndpointGone when `id` leaves the whole
  // mesh (docs/mesh.md §6.3).
  virtual bool keeps_alive(const relay::EndpointId& id, EndpointIdSet& receivers) = 0;
};

// Carries a datagram to a recipient on another worker (relay/workers.hpp).
// Called on the sender's worker thread, under the registry's shard lock: it
// only stages the datagram.
class CrossWorkerForwarder {
 public:
  virtual ~CrossWorkerForwarder() = default;
  virtual void hand_off(std::shared_ptr<RelayClientHandle> dst, const ServerDatagram& frame,
                        RelayClientHandle& sender) = 0;
};

class ClientRegistry {
 public:
  explicit ClientRegistry(RelayMetrics& metrics) : metrics_(metrics) {}
  // With more than one worker: where datagrams for clients on another worker
  // go. Set before any client registers.
  void set_cross_worker(CrossWorkerForwarder* forwarder) { cross_worker_ = forwarder; }
  // With a mesh (issue 16). Set before any client registers.
  void set_mesh_observer(MeshObserver* observer) { mesh_ = observer; }

  void register_client(const std::shared_ptr<RelayClientHandle>& client);
  // `sent_to` = ids this connection successfully forwarded datagrams to (§6.4).
  void unregister_client(const RelayClientHandle* client, EndpointIdSet sent_to);

  enum class Forward {
    Queued,
    QueuedThrottle,  // queued; the sender waits for the destination to drain
    UnknownDestination,
    QueueFull,          // dropped
    QueueFullThrottle,  // dropped; the sender waits for the destination to drain
    TotalQueueFull,     // dropped: limits.total_queue_bytes
    RecipientClosed,
    HandedOff,  // staged for the recipient's worker, which enqueues it (or
                // counts the drop)
  };
  // A sender's last destination (issue 13: a burst to one peer costs one
  // registry lookup, not a shard lock and a hash lookup per datagram). Valid
  // while no connection registered, left or changed activity since it was
  // filled (the registry's generation). Holds the destination while valid; the
  // owner resets it when it goes idle, so a gone destination is not pinned.
  struct RouteCache {
    relay::EndpointId dst;
    std::shared_ptr<RelayClientHandle> active;
    std::uint64_t generation = 0;
    void reset() {
      active.reset();
      generation = 0;
    }
  };
  // `sender` (may be null) is who to resume when a destination queue it filled
  // drains. `cache` (may be null) is the sender's route cache. A datagram that
  // raced with a change of the destination's connection, through a cache that
  // was valid a moment before, meets what a datagram sent a moment earlier
  // would have: the previous connection, or its Closed.
  Forward forward(const relay::EndpointId& dst, const ServerDatagram& frame,
                  RelayClientHandle* sender = nullptr, RouteCache* cache = nullptr);

  // Issue 16 (docs/mesh.md §6.2): `best_remote` = the newest generation of `id` at a reachable
  // peer. A local active connection older than that becomes inactive (SameEndpointIdConnected);
  // with no remote left, the newest inactive local one becomes active again (Healthy).
  void mesh_reconcile(const relay::EndpointId& id, std::optional<std::uint64_t> best_remote);
  // f(id, generation) for every active connection, under its shard's lock (the mesh's presence
  // snapshot, §5.4).
  template <class F>
  void for_each_active(F&& f) const {
    for (const auto& shard : shards_) {
      std::shared_lock lock(shard.mutex);
      for (const auto& [id, entry] : shard.clients) {
        if (entry.active) f(id, entry.active->mesh_generation);
      }
    }
  }
  // EndpointGone(gone) to the active connections of `peers` (§6.4).
  void send_endpoint_gone(const relay::EndpointId& gone, const EndpointIdSet& peers);

  std::size_t endpoint_count() const;
  // Walks every connection (active and inactive) under the shared lock.
  RelayQueueDepth queue_depth() const;
  bool is_registered(const relay::EndpointId& id) const;
  void close_all();
  // Drops every reference (shutdown, after the workers stopped).
  void clear();

  // Frames the registry sends on (de)activation, encoded for the connection's
  // version.
  static relay::Bytes same_id_connected_frame(relay::ProtocolVersion v);
  static relay::Bytes healthy_frame(relay::ProtocolVersion v);

 private:
  struct Entry {
    std::shared_ptr<RelayClientHandle> active;
    std::vector<std::shared_ptr<RelayClientHandle>> inactive;  // back = most recently deactivated
    EndpointIdSet sent_to;
  };

  // Shards never lock each other: an operation that touches several ids takes
  // their shards one at a time.
  struct alignas(64) Shard {
    mutable std::shared_mutex mutex;
    std::unordered_map<relay::EndpointId, Entry, relay::EndpointIdHash> clients;
  };
  static constexpr std::size_t kShards = 16;
  // A byte of the key the map's hash does not start with: public keys are
  // uniformly random.
  Shard& shard_of(const relay::EndpointId& id) { return shards_[id.bytes[20] % kShards]; }
  const Shard& shard_of(const relay::EndpointId& id) const {
    return shards_[id.bytes[20] % kShards];
  }
  template <class F>
  void for_each_connection(F&& f) const;
  // Shard lock held. The active connection steps aside for a newer one (here or at a mesh
  // peer): told SameEndpointIdConnected, kept as the newest inactive duplicate (§6.2).
  void deactivate_active(Entry& entry);
  // Shard lock held, entry.inactive not empty: the newest inactive duplicate becomes active
  // again, told Healthy, and announced to mesh peers.
  void reactivate_newest(const relay::EndpointId& id, Entry& entry);

  // Under a shard's unique lock, after any change of which connection is
  // active for an id: invalidates every RouteCache.
  void routes_changed() { route_generation_.fetch_add(1, std::memory_order_release); }

  RelayMetrics& metrics_;
  CrossWorkerForwarder* cross_worker_ = nullptr;
  MeshObserver* mesh_ = nullptr;
  std::atomic<std::uint64_t> last_generation_{0};
  // Starts at 1: a RouteCache with generation 0 is empty.
  std::atomic<std::uint64_t> route_generation_{1};
  std::array<Shard, kShards> shards_;
};

// Counts a datagram that ClientRegistry::forward dropped at a full queue (QueueFull,
// QueueFullThrottle), at limits.total_queue_bytes (TotalQueueFull) or at a closed recipient:
// send_packets_dropped plus the reason. False, counting nothing, for any other outcome.
bool count_queue_drop(RelayMetrics& m, ClientRegistry::Forward outcome);

}  // namespace iroh::server
