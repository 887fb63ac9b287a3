// The hand-off between relay workers (issue 13 item 1): a datagram for a client
// on another worker crosses in a batch. Producers append a whole batch under
// one lock (a swap buffer: one lock per batch, never per frame); the consumer
// takes everything queued in one swap and handles it in one turn of its event
// loop. Bounded in items and bytes: what does not fit is dropped and counted by
// the producer. Thread-safe; the items are moved, never copied.
#pragma once

#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

namespace iroh::server {

template <class T>
class HandoffQueue {
 public:
  struct Caps {
    std::size_t items = 16384;
    std::size_t bytes = 16 << 20;
  };
  struct Pushed {
    std::size_t dropped = 0;  // items of the batch that did not fit
    bool wake = false;        // the consumer was idle: schedule a take()
  };

  explicit HandoffQueue(Caps caps) : caps_(caps) {}
  HandoffQueue(const HandoffQueue&) = delete;
  HandoffQueue& operator=(const HandoffQueue&) = delete;

  // Any thread. Moves `batch` in (in order, as much as fits) and leaves it
  // empty. `cost(item)` is an item's size in bytes. `wake` is true for the
  // first batch after a take(): the producer then schedules the consumer; later
  // batches ride on that wake-up.
  template <class Cost>
  Pushed push(std::vector<T>& batch, Cost&& cost) {
    Pushed out;
    {
      std::lock_guard lock(mutex_);
      for (auto& item : batch) {
        const std::size_t n = cost(item);
        if (items_.size() >= caps_.items || bytes_ + n > caps_.bytes) {
          ++out.dropped;
          continue;
        }
        bytes_ += n;
        items_.push_back(std::move(item));
      }
      if (!items_.empty() && !scheduled_) {
        scheduled_ = true;
        out.wake = true;
      }
    }
    // Dropped items are destroyed outside the lock.
    batch.clear();
    return out;
  }

  // The consumer. Swaps everything queued into `out` (cleared first; its
  // storage is reused by the next producers) and re-arms the wake-up.
  void take(std::vector<T>& out) {
    out.clear();
    std::lock_guard lock(mutex_);
    out.swap(items_);
    bytes_ = 0;
    scheduled_ = false;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }

 private:
  const Caps caps_;
  mutable std::mutex mutex_;
  std::vector<T> items_;
  std::size_t bytes_ = 0;
  bool scheduled_ = false;
};

}  // namespace iroh::server
