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

  // An encoded RelayToClientDatagram(Batch) frame; false if the queue is full or closed.
  enum class Enqueue { Ok, Full, Closed };
  virtual Enqueue try_enqueue_datagram(relay::Bytes&& frame) = 0;
  // An encoded control frame (EndpointGone, Status, Health, Pong) on the priority lane.
  virtual Enqueue try_enqueue_control(relay::Bytes&& frame) = 0;
  virtual void close() = 0;
  // Datagrams waiting in this client's send queue (metrics).
  virtual std::size_t queued_datagrams() { return 0; }

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

  enum class Forward { Queued, UnknownDestination, QueueFull, RecipientClosed };
  Forward forward(const relay::EndpointId& dst, relay::Bytes&& frame);

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
