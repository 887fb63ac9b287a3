// A relay client's send queue (spec relay.md §6.3): a priority lane for control frames (Pong,
// Status, Health, EndpointGone, Restarting, WebSocket Pong/Close) and a datagram lane bounded in
// frames and in bytes (limits.client_queue_capacity / client_queue_bytes), plus the daemon-wide
// budget of queued datagram bytes (limits.total_queue_bytes). Not thread-safe: the owner guards
// it (one mutex per connection, taken once per enqueue and once per written batch).
//
// The datagram lane is a byte queue (issue 13, per-frame cost): each datagram is written once,
// as the WebSocket message the client receives (header + relay frame), into large chunks, and the
// writer hands the kernel (or SSL_write) whole runs of them. Before, every datagram had a buffer
// of its own (an allocation, a free and a copy each) and the writer gathered two iovecs per frame,
// which cost the kernel a copy step and a usercopy check per piece.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
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
// idle client holds none. The control lane.
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

// A RelayToClientDatagram(Batch) frame (spec relay.md §5.3) on its way into a send queue: either
// already encoded (a hand-off from another worker, a mesh peer's frame) or the parts of a
// client's datagram, which the queue encodes in place (issue 13: no buffer of its own). Views
// its inputs: use it before they go away.
class ServerDatagram {
 public:
  static ServerDatagram encoded(relay::ByteSpan frame) {
    ServerDatagram d;
    d.frame_ = frame;
    d.size_ = frame.size();
    return d;
  }
  // `dg` as received from a client, relayed from `src`. Not valid() when the frame would exceed
  // kMaxPacketSize (relay.md §5.4: encode_server_datagram returns nothing then).
  static ServerDatagram from(const relay::EndpointId& src, const relay::Datagram& dg) {
    ServerDatagram d;
    d.src_ = &src;
    d.dg_ = &dg;
    d.size_ = relay::server_datagram_size(dg.segment_size, dg.contents.size());
    return d;
  }
  bool valid() const { return size_ != 0; }
  // The relay frame's bytes (what the queue's byte caps count).
  std::size_t size() const { return size_; }
  // The datagram contents (relayserver_bytes_sent): the frame without type, source key, ECN and,
  // for a batch (type 7), the segment size.
  std::size_t contents_size() const {
    const bool batch =
        dg_ ? dg_->segment_size != 0
            : !frame_.empty() &&
                  frame_[0] == std::uint8_t(relay::FrameType::RelayToClientDatagramBatch);
    const std::size_t header = batch ? 36 : 34;
    return size_ - std::min(size_, header);
  }
  // Writes the frame (size() bytes) at `out`.
  void write(std::uint8_t* out) const {
    if (dg_) {
      relay::write_server_datagram(out, *src_, dg_->ecn, dg_->segment_size, dg_->contents);
    } else if (size_ != 0) {
      std::memcpy(out, frame_.data(), size_);
    }
  }
  relay::Bytes to_bytes() const {
    relay::Bytes out(size_);
    write(out.data());
    return out;
  }

 private:
  const relay::EndpointId* src_ = nullptr;
  const relay::Datagram* dg_ = nullptr;
  relay::ByteSpan frame_;
  std::size_t size_ = 0;
};

// The datagram lane: whole WebSocket binary messages, one per datagram, in chunks of up to
// kChunkBytes. The producer appends at the tail chunk; the writer takes the queued bytes of the
// front chunks as spans (take) and gives them back once written (release): until then the
// chunks stay put, while producers keep appending behind what is in flight. A chunk that was
// entirely written is reused from its start when it is the tail (the lane wraps around), else
// kept as the one spare or freed. release_storage() frees everything of an empty lane: an idle
// client holds no chunk. Only the queued bytes count against the caps (SendQueue); what a chunk
// holds beyond them is at most one chunk's slack, the batch in flight and one spare.
class DatagramLane {
 public:
  struct Span {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
  };
  // What one take() handed out.
  struct Taken {
    std::size_t spans = 0;
    std::size_t frames = 0;
    std::size_t frame_bytes = 0;     // relay frames, as counted by bytes()
    std::size_t contents_bytes = 0;  // datagram contents (metrics)
    std::size_t wire_bytes = 0;      // with the WebSocket headers: what the spans hold
  };
  // A chunk holds up to this much, or one larger message on its own. The first chunk after an
  // idle period is smaller (kMinChunkBytes and up, doubling with what is queued): a client that
  // receives one datagram now and then does not pin 64 KiB for it.
  static constexpr std::size_t kChunkBytes = 64 * 1024;
  static constexpr std::size_t kMinChunkBytes = 4 * 1024;

  DatagramLane() = default;
  DatagramLane(const DatagramLane&) = delete;
  DatagramLane& operator=(const DatagramLane&) = delete;

  std::size_t frames() const { return frames_; }
  std::size_t bytes() const { return bytes_; }
  bool empty() const { return frames_ == 0; }

  // Appends `dg` as one unfragmented binary WebSocket message (RFC 6455 §5.2).
  void push(const ServerDatagram& dg) {
    std::uint8_t head[ws::kMaxServerHeader];
    const std::size_t head_len = ws::encode_server_header(ws::kBinary, dg.size(), head);
    const std::size_t wire = head_len + dg.size();
    Chunk* c = chunks_.empty() ? nullptr : &chunks_.back();
    if (!c || c->capacity - c->end < wire) c = &add_chunk(wire);
    std::uint8_t* out = c->data.get() + c->end;
    std::memcpy(out, head, head_len);
    dg.write(out + head_len);
    c->end += wire;
    ++c->frames;
    c->frame_bytes += dg.size();
    c->contents_bytes += dg.contents_size();
    ++frames_;
    bytes_ += dg.size();
    wire_bytes_ += wire;
  }

  // Hands the writer the queued messages of the front chunks, in order, as at most `max_spans`
  // spans: the first chunk's whole run, then further ones while the total stays within
  // `max_bytes`. Call release() once they are written, before the next take().
  Taken take(Span* out, std::size_t max_spans, std::size_t max_bytes) {
    Taken t;
    for (std::size_t i = 0; i < chunks_.size() && t.spans < max_spans; ++i) {
      Chunk& c = chunks_[i];
      const std::size_t n = c.end - c.taken;
      if (n == 0) continue;
      if (t.spans != 0 && t.wire_bytes + n > max_bytes) break;
      out[t.spans++] = Span{c.data.get() + c.taken, n};
      t.wire_bytes += n;
      t.frames += c.frames;
      t.frame_bytes += c.frame_bytes;
      t.contents_bytes += c.contents_bytes;
      c.taken = c.end;
      c.frames = c.frame_bytes = c.contents_bytes = 0;
      in_flight_ = i + 1;
    }
    frames_ -= t.frames;
    bytes_ -= t.frame_bytes;
    wire_bytes_ -= t.wire_bytes;
    return t;
  }

  // The spans of the last take() are written (or abandoned): chunks the writer emptied are
  // reused (the tail, from its start), kept as the spare or freed.
  void release() {
    std::size_t done = 0;
    while (done < in_flight_ && chunks_[done].taken == chunks_[done].end) ++done;
    if (done == chunks_.size() && done != 0) {
      // Everything written: the tail stays for the next messages, from its start.
      Chunk& tail = chunks_.back();
      tail.taken = tail.end = 0;
      --done;
    }
    for (std::size_t i = 0; i < done; ++i) retire(std::move(chunks_[i]));
    chunks_.erase(chunks_.begin(), chunks_.begin() + std::ptrdiff_t(done));
    in_flight_ = 0;
  }

  // Drops every queued message; returns how many. Chunks the writer still has spans in stay
  // until release() or the lane's end.
  std::size_t clear() {
    const std::size_t dropped = frames_;
    for (auto& c : chunks_) {
      c.end = c.taken;
      c.frames = c.frame_bytes = c.contents_bytes = 0;
    }
    chunks_.resize(std::min(chunks_.size(), in_flight_));
    spare_ = {};
    frames_ = bytes_ = wire_bytes_ = 0;
    return dropped;
  }

  // An empty lane with nothing in flight frees all its storage (the writer goes idle).
  void release_storage() {
    spare_ = {};
    if (frames_ == 0 && in_flight_ == 0) std::vector<Chunk>().swap(chunks_);
  }

  // Heap bytes held by chunks (tests, idle checks).
  std::size_t storage_bytes() const {
    std::size_t n = spare_.capacity;
    for (const auto& c : chunks_) n += c.capacity;
    return n;
  }

 private:
  struct Chunk {
    std::unique_ptr<std::uint8_t[]> data;
    std::size_t capacity = 0;
    std::size_t taken = 0;  // [0, taken): handed to the writer
    std::size_t end = 0;    // [taken, end): queued, whole messages
    // Of the queued messages [taken, end):
    std::size_t frames = 0;
    std::size_t frame_bytes = 0;
    std::size_t contents_bytes = 0;
  };

  Chunk& add_chunk(std::size_t wire) {
    const std::size_t want =
        std::max(wire, std::clamp(std::bit_ceil(wire_bytes_ + wire), kMinChunkBytes, kChunkBytes));
    Chunk c;
    if (spare_.data && spare_.capacity >= want) {
      c = std::move(spare_);
      spare_ = {};
    } else {
      c.data = std::make_unique_for_overwrite<std::uint8_t[]>(want);
      c.capacity = want;
    }
    c.taken = c.end = 0;
    chunks_.push_back(std::move(c));
    return chunks_.back();
  }

  void retire(Chunk&& c) {
    if (c.capacity == kChunkBytes && !spare_.data) spare_ = std::move(c);
  }

  std::vector<Chunk> chunks_;
  std::size_t in_flight_ = 0;  // chunks_[0, in_flight_) have bytes in the writer's spans
  Chunk spare_;
  std::size_t frames_ = 0;
  std::size_t bytes_ = 0;
  std::size_t wire_bytes_ = 0;
};

class SendQueue {
 public:
  struct Caps {
    std::size_t frames = 512;
    std::size_t bytes = 1 << 20;
  };
  // OkAboveMark: queued, and the lane is now above its throttle mark (above_throttle_mark).
  enum class Push { Ok, OkAboveMark, Full, BudgetFull };
  using Span = DatagramLane::Span;
  using Taken = DatagramLane::Taken;

  SendQueue(Caps caps, QueueBudget& budget) : caps_(caps), budget_(budget) {}
  ~SendQueue() { clear(); }
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  // A datagram frame. One frame always fits an empty queue (caps.bytes holds the largest frame),
  // so a client is never starved by the byte cap alone.
  Push push_datagram(const ServerDatagram& frame) {
    const std::size_t n = frame.size();
    if (datagrams_.frames() >= caps_.frames ||
        (!datagrams_.empty() && datagrams_.bytes() + n > caps_.bytes))
      return Push::Full;
    if (!budget_.try_take(n)) return Push::BudgetFull;
    datagrams_.push(frame);
    return above_throttle_mark() ? Push::OkAboveMark : Push::Ok;
  }
  // A control frame; false if the lane holds `capacity` frames already.
  bool push_control(QueuedFrame&& frame, std::size_t capacity) {
    if (control_.size() >= capacity) return false;
    control_.push(std::move(frame));
    return true;
  }

  // The writer's next batch: control frames first (the priority lane, moved into `control`, at
  // most `max_control`), then, while under `max_bytes`, queued datagrams as spans of whole
  // WebSocket messages (at most `max_spans`; DatagramLane::take). The spans stay valid until
  // release_batch(), which must come before the next pop_batch().
  Taken pop_batch(std::vector<QueuedFrame>& control, std::size_t max_control, Span* spans,
                  std::size_t max_spans, std::size_t max_bytes) {
    std::size_t bytes = 0;
    while (!control_.empty() && control.size() < max_control && bytes < max_bytes) {
      control.push_back(control_.pop());
      bytes += control.back().bytes.size();
    }
    if (bytes >= max_bytes || datagrams_.empty()) return {};
    const Taken t = datagrams_.take(spans, max_spans, max_bytes - bytes);
    budget_.give_back(t.frame_bytes);
    return t;
  }
  void release_batch() { datagrams_.release(); }
  // The writer goes idle: an empty queue frees its storage.
  void release_storage() { datagrams_.release_storage(); }

  // Drops everything; returns the number of datagram frames dropped.
  std::size_t clear() {
    budget_.give_back(datagrams_.bytes());
    control_.clear();
    return datagrams_.clear();
  }

  bool empty() const { return control_.empty() && datagrams_.empty(); }
  std::size_t datagram_count() const { return datagrams_.frames(); }
  std::size_t datagram_bytes() const { return datagrams_.bytes(); }
  std::size_t control_count() const { return control_.size(); }
  std::size_t storage_bytes() const { return datagrams_.storage_bytes(); }
  // True once the datagram lane has room for a burst again (half of both caps free): where a
  // sender throttled on this queue resumes.
  bool below_resume_mark() const {
    return datagrams_.frames() <= caps_.frames / 2 && datagrams_.bytes() <= caps_.bytes / 2;
  }
  // Over three quarters of either cap: where a sender is throttled (issue 13), before the queue
  // is full. A sender throttled only at a full queue lost one datagram per pause, and a flood
  // kept the queue between half and all of the cap; throttled here, it stops with a quarter of
  // the cap still free for what it (or a sender on another worker, until the post reaches it)
  // has in flight, and the queue stays between half and three quarters.
  bool above_throttle_mark() const {
    return datagrams_.frames() > caps_.frames - caps_.frames / 4 ||
           datagrams_.bytes() > caps_.bytes - caps_.bytes / 4;
  }

 private:
  Caps caps_;
  QueueBudget& budget_;
  FrameFifo control_;
  DatagramLane datagrams_;
};

}  // namespace iroh::server
