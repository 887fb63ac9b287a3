// EndpointId -> relay connections (spec relay.md §6.2-§6.4): one active connection per id plus a
// LIFO list of inactive duplicates; forwarding only try-enqueues on the recipient.
#pragma once

#include <memory>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "iroh/relay_proto.hpp"
#include "iroh/server/metrics.hpp"

namespace iroh::server {

using EndpointIdSet = std::unordered_set<relay::EndpointId, relay::EndpointIdHash>;

// What the registry needs from a connection. All members are callable from any thread and must
// never block on I/O.
class RelayClientHandle {
 public:
  RelayClientHandle(relay::EndpointId id, relay::ProtocolVersion version)
      : id_(id), version_(version) {}
  virtual ~RelayClientHandle() = default;

  const relay::EndpointId& endpoint_id() const { return id_; }
  relay::ProtocolVersion version() const { return version_; }

  // An encoded RelayToClientDatagram(Batch) frame. Full: the datagram is dropped; FullThrottle:
  // dropped, and `sender` (if not null) was recorded as waiting for this queue to drain; it gets
  // resume_reading() then. BudgetFull: limits.total_queue_bytes reached.
  enum class Enqueue { Ok, Full, FullThrottle, BudgetFull, Closed };
  virtual Enqueue try_enqueue_datagram(relay::Bytes&& frame, RelayClientHandle* sender) = 0;
  // An encoded control frame (EndpointGone, Status, Health, Pong) on the priority lane.
  virtual Enqueue try_enqueue_control(relay::Bytes&& frame) = 0;
  virtual void close() = 0;
  // Datagrams waiting in this client's send queue (metrics).
  virtual std::size_t queued_datagrams() { return 0; }
  // Bytes of those datagrams (limits.client_queue_bytes counts these).
  virtual std::size_t queued_bytes() { return 0; }
  // Back-pressure (issue 13): a destination this client was throttled on has drained. Any
  // thread; only posts.
  virtual void resume_reading() {}
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
};

class ClientRegistry {
 public:
  explicit ClientRegistry(RelayMetrics& metrics) : metrics_(metrics) {}

  void register_client(const std::shared_ptr<RelayClientHandle>& client);
  // `sent_to` = ids this connection successfully forwarded datagrams to (§6.4).
  void unregister_client(const RelayClientHandle* client, EndpointIdSet sent_to);

  enum class Forward {
    Queued,
    UnknownDestination,
    QueueFull,          // dropped
    QueueFullThrottle,  // dropped; the sender waits for the destination to drain
    TotalQueueFull,     // dropped: limits.total_queue_bytes
    RecipientClosed,
  };
  // `sender` (may be null) is who to resume when a full destination queue drains.
  Forward forward(const relay::EndpointId& dst, relay::Bytes&& frame,
                  RelayClientHandle* sender = nullptr);

  std::size_t endpoint_count() const;
  // Walks every connection (active and inactive) under the shared lock.
  RelayQueueDepth queue_depth() const;
  bool is_registered(const relay::EndpointId& id) const;
  void close_all();

  // Frames the registry sends on (de)activation, encoded for the connection's version.
  static relay::Bytes same_id_connected_frame(relay::ProtocolVersion v);
  static relay::Bytes healthy_frame(relay::ProtocolVersion v);

 private:
  struct Entry {
    std::shared_ptr<RelayClientHandle> active;
    std::vector<std::shared_ptr<RelayClientHandle>> inactive;  // back = most recently deactivated
    EndpointIdSet sent_to;
  };

  RelayMetrics& metrics_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<relay::EndpointId, Entry, relay::EndpointIdHash> clients_;
};

}  // namespace iroh::server
