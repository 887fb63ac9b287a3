#include "relay/workers.hpp"

#include <boost/asio/post.hpp>

#include "core/cpus.hpp"
#include "core/log.hpp"

namespace iroh::server {

namespace asio = boost::asio;

unsigned relay_worker_count(unsigned configured) {
  return configured != 0 ? configured : usable_cpus();
}

RelayWorkers::RelayWorkers(unsigned count, RelayMetrics& metrics) : metrics_(metrics) {
  count = std::max(1u, count);
  workers_.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    workers_.push_back(std::make_unique<Worker>(HandoffQueue<Handoff>::Caps{}));
    workers_.back()->outgoing.resize(count);
  }
}

RelayWorkers::~RelayWorkers() {
  join();
}

void RelayWorkers::start() {
  if (started_) return;
  started_ = true;
  for (auto& w : workers_) {
    w->work.emplace(w->ioc.get_executor());
    w->thread = std::thread([worker = w.get()] {
      for (;;) {
        try {
          worker->ioc.run();
          return;
        } catch (const std::exception& e) {
          log::error("unhandled exception in relay worker: ", e.what());
        }
      }
    });
  }
}

void RelayWorkers::join() {
  if (joined_) return;
  joined_ = true;
  for (auto& w : workers_) {
    w->work.reset();
    w->ioc.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  // Staged and queued datagrams hold their recipients: released while every
  // loop still exists.
  for (auto& w : workers_) {
    for (auto& out : w->outgoing) out.clear();
    w->inbox.take(w->draining);
    w->draining.clear();
  }
}

void RelayWorkers::hand_off(std::shared_ptr<RelayClientHandle> dst, const ServerDatagram& frame,
                            RelayClientHandle& sender) {
  const unsigned from = sender.worker(), to = dst->worker();
  Worker& w = *workers_[from];
  auto& out = w.outgoing[to];
  out.push_back(Handoff{std::move(dst), frame.to_bytes(), sender.weak_handle()});
  if (out.size() >= kFlushAt) {
    flush(from, to);
  } else if (!w.flush_posted) {
    // The end of this turn: runs after the handlers already queued on this loop
    // (the readers that are staging right now), so one batch carries what they
    // all staged.
    w.flush_posted = true;
    asio::post(w.ioc, [this, from] { flush_all(from); });
  }
}

void RelayWorkers::flush_all(unsigned from) {
  workers_[from]->flush_posted = false;
  for (unsigned to = 0; to < workers_.size(); ++to) {
    if (!workers_[from]->outgoing[to].empty()) flush(from, to);
  }
}

void RelayWorkers::flush(unsigned from, unsigned to) {
  auto pushed = workers_[to]->inbox.push(workers_[from]->outgoing[to],
                                         [](const Handoff& h) { return h.frame.size(); });
  if (pushed.dropped) {
    metrics_.send_packets_dropped.fetch_add(pushed.dropped, std::memory_order_relaxed);
    metrics_.dropped_handoff_full.fetch_add(pushed.dropped, std::memory_order_relaxed);
  }
  if (pushed.wake) asio::post(workers_[to]->ioc, [this, to] { drain_inbox(to); });
}

void RelayWorkers::drain_inbox(unsigned worker) {
  Worker& w = *workers_[worker];
  w.inbox.take(w.draining);
  for (auto& item : w.draining) deliver(item);
  w.draining.clear();
}

// On the destination's worker: the enqueue a local sender would have done, with
// the outcome counted here and the sender slowed down through a post to its own
// worker.
void RelayWorkers::deliver(Handoff& item) {
  auto sender = item.sender.lock();
  using Enqueue = RelayClientHandle::Enqueue;
  using SlowDown = RelayClientHandle::SlowDown;
  auto& m = metrics_;
  switch (item.dst->try_enqueue_datagram(ServerDatagram::encoded(item.frame), sender.get())) {
    case Enqueue::Ok:
      return;
    case Enqueue::OkThrottle:
      if (sender) sender->slow_down(SlowDown::WaitForDrain);
      return;
    case Enqueue::FullThrottle:
      if (sender) sender->slow_down(SlowDown::WaitForDrain);
      [[fallthrough]];
    case Enqueue::Full:
      m.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
      break;
    case Enqueue::BudgetFull:
      if (sender) sender->slow_down(SlowDown::BudgetBackoff);
      m.dropped_total_queue_full.fetch_add(1, std::memory_order_relaxed);
      break;
    case Enqueue::Closed:
      m.dropped_write_error.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  m.send_packets_dropped.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace iroh::server
