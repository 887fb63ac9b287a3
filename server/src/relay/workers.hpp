// The relay's data-plane workers (issue 13 item 1): relay_threads event loops,
// each an io_context run by one thread. A connection is accepted by one worker
// (every worker has its own SO_REUSEPORT acceptor, so the kernel spreads the
// accepts) and lives there for its whole life. A datagram for a client on
// another worker is staged by the sender's worker and crosses in a batch
// through the destination's hand-off queue (relay/handoff_queue.hpp), which the
// destination drains in one turn of its loop.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "iroh/server/metrics.hpp"
#include "relay/client_registry.hpp"
#include "relay/handoff_queue.hpp"

namespace iroh::server {

// A datagram on its way to a client on another worker.
struct Handoff {
  std::shared_ptr<RelayClientHandle> dst;
  relay::Bytes frame;
  // Who to slow down if the destination is full (back-pressure across workers).
  std::weak_ptr<RelayClientHandle> sender;
};

class RelayWorkers final : public CrossWorkerForwarder {
 public:
  // `count` >= 1 event loops; not running until start().
  RelayWorkers(unsigned count, RelayMetrics& metrics);
  ~RelayWorkers() override;

  unsigned size() const { return unsigned(workers_.size()); }
  boost::asio::io_context& context(unsigned worker) { return workers_[worker]->ioc; }

  // One thread per worker.
  void start();
  // Stops the loops and joins the threads; then drops every staged datagram.
  // Idempotent.
  void join();

  // CrossWorkerForwarder: on the sender's worker thread.
  void hand_off(std::shared_ptr<RelayClientHandle> dst, const ServerDatagram& frame,
                RelayClientHandle& sender) override;

  // Staged datagrams flushed to a destination as one batch at this many (or at
  // the end of the sender worker's current turn).
  static constexpr std::size_t kFlushAt = 64;

 private:
  struct Worker {
    explicit Worker(HandoffQueue<Handoff>::Caps caps) : ioc(1), inbox(caps) {}
    boost::asio::io_context ioc;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
    std::thread thread;
    HandoffQueue<Handoff> inbox;
    // This worker's thread only: datagrams staged per destination worker,
    // whether a flush is posted, and the buffer the inbox is drained into.
    std::vector<std::vector<Handoff>> outgoing;
    bool flush_posted = false;
    std::vector<Handoff> draining;
  };

  void flush(unsigned from, unsigned to);
  void flush_all(unsigned from);
  void drain_inbox(unsigned worker);
  void deliver(Handoff& item);

  RelayMetrics& metrics_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;
  bool joined_ = false;
};

// relay_threads: 0 = the CPUs this process may run on (its affinity mask, so a
// relay pinned with taskset gets one worker per CPU it was given).
unsigned relay_worker_count(unsigned configured);

}  // namespace iroh::server
