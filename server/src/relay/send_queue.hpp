// A relay client's send queue (spec relay.md §6.3): a priority lane for control frames (Pong,
// Status, Health, EndpointGone, Restarting, WebSocket Pong/Close) and a datagram lane bounded in
// frames and in bytes (limits.client_queue_capacity / client_queue_bytes), plus the daemon-wide
// budget of queued datagram bytes (limits.total_queue_bytes). Not thread-safe: the owner guards
// it (one mutex per connection, taken once per enqueue and once per written batch).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "iroh/relay_proto.hpp"
#include "relay/ws_framing.hpp"

namespace iroh::server {

struct QueuedFrame {
  relay::Bytes bytes;
  std::uint8_t opcode = ws::kBinary;
};

// Bytes queued over all clients; lock-free so that enqueues on every thread share it.
class QueueBudget {
 public:
  explicit QueueBudget(std::size_t limit) : limit_(limit) {}
  void set_limit(std::size_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  std::size_t limit() const { return limit_.load(std::memory_order_relaxed); }
  std::size_t used() const { return used_.load(std::memory_order_relaxed); }
  bool try_take(std::size_t n) {
    std::size_t cur = used_.load(std::memory_order_relaxed);
    const std::size_t limit = limit_.load(std::memory_order_relaxed);
    do {
      if (n > limit || cur > limit - n) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    return true;
  }
  void give_back(std::size_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> limit_;
  std::atomic<std::size_t> used_{0};
};

// A FIFO of encoded frames that counts its bytes and releases its storage when drained, so an
// idle client holds none.
class FrameFifo {
 public:
  std::size_t size() const { return items_.size() - head_; }
  std::size_t bytes() const { return bytes_; }
  bool empty() const { return head_ == items_.size(); }
  const QueuedFrame& front() const { return items_[head_]; }
  void push(QueuedFrame&& frame) {
    bytes_ += frame.bytes.size();
    items_.push_back(std::move(frame));
  }
  QueuedFrame pop() {
    QueuedFrame frame = std::move(items_[head_++]);
    bytes_ -= frame.bytes.size();
    if (head_ == items_.size()) {
      clear();
    } else if (head_ >= 64 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + std::ptrdiff_t(head_));
      head_ = 0;
    }
    return frame;
  }
  // Drops everything; returns the number of frames dropped.
  std::size_t clear() {
    std::size_t n = size();
    items_.clear();
    head_ = 0;
    bytes_ = 0;
    if (items_.capacity() > 16) items_.shrink_to_fit();
    return n;
  }

 private:
  std::vector<QueuedFrame> items_;
  std::size_t head_ = 0;
  std::size_t bytes_ = 0;
};

class SendQueue {
 public:
  struct Caps {
    std::size_t frames = 512;
    std::size_t bytes = 1 << 20;
  };
  enum class Push { Ok, Full, BudgetFull };

  SendQueue(Caps caps, QueueBudget& budget) : caps_(caps), budget_(budget) {}
  ~SendQueue() { clear(); }
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  // A datagram frame. One frame always fits an empty queue (caps.bytes holds the largest frame),
  // so a client is never starved by the byte cap alone.
  Push push_datagram(relay::Bytes&& frame) {
    const std::size_t n = frame.size();
    if (datagrams_.size() >= caps_.frames ||
        (!datagrams_.empty() && datagrams_.bytes() + n > caps_.bytes))
      return Push::Full;
    if (!budget_.try_take(n)) return Push::BudgetFull;
    datagrams_.push(QueuedFrame{std::move(frame), ws::kBinary});
    return Push::Ok;
  }
  // A control frame; false if the lane holds `capacity` frames already.
  bool push_control(QueuedFrame&& frame, std::size_t capacity) {
    if (control_.size() >= capacity) return false;
    control_.push(std::move(frame));
    return true;
  }

  // Moves frames into `out`, control frames first, until `out` holds `max_frames` frames or at
  // least `max_bytes` bytes. Returns the number of datagram frames moved.
  std::size_t pop_batch(std::vector<QueuedFrame>& out, std::size_t max_frames,
                        std::size_t max_bytes) {
    std::size_t bytes = 0, datagrams = 0, datagram_bytes = 0;
    while (out.size() < max_frames && bytes < max_bytes) {
      if (!control_.empty()) {
        out.push_back(control_.pop());
      } else if (!datagrams_.empty()) {
        out.push_back(datagrams_.pop());
        ++datagrams;
        datagram_bytes += out.back().bytes.size();
      } else {
        break;
      }
      bytes += out.back().bytes.size();
    }
    budget_.give_back(datagram_bytes);
    return datagrams;
  }

  // Drops everything; returns the number of datagram frames dropped.
  std::size_t clear() {
    budget_.give_back(datagrams_.bytes());
    control_.clear();
    return datagrams_.clear();
  }

  bool empty() const { return control_.empty() && datagrams_.empty(); }
  std::size_t datagram_count() const { return datagrams_.size(); }
  std::size_t datagram_bytes() const { return datagrams_.bytes(); }
  std::size_t control_count() const { return control_.size(); }
  // True once the datagram lane has room for a burst again (half of both caps free): where a
  // sender throttled on this queue resumes.
  bool below_resume_mark() const {
    return datagrams_.size() <= caps_.frames / 2 && datagrams_.bytes() <= caps_.bytes / 2;
  }

 private:
  Caps caps_;
  QueueBudget& budget_;
  FrameFifo control_;
  FrameFifo datagrams_;
};

}  // namespace iroh::server
