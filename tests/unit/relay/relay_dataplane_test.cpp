// The relay's per-client send queue (issue 13): byte and frame caps, the daemon-wide budget, the
// control lane's priority, batching and the resume mark used for back-pressure.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <future>
#include <thread>

#include "relay/client_registry.hpp"
#include "relay/handoff_queue.hpp"
#include "relay/ping_tracker.hpp"
#include "relay/send_queue.hpp"
#include "relay/workers.hpp"
#include "relay/ws_framing.hpp"

namespace iroh::server {
namespace {

relay::Bytes frame_of(std::size_t n, std::uint8_t fill = 0) {
  return relay::Bytes(n, fill);
}

TEST(QueueBudget, TakesUpToTheLimitAndGivesBack) {
  QueueBudget budget(1000);
  EXPECT_TRUE(budget.try_take(600));
  EXPECT_FALSE(budget.try_take(401));
  EXPECT_TRUE(budget.try_take(400));
  EXPECT_EQ(budget.used(), 1000u);
  budget.give_back(1000);
  EXPECT_EQ(budget.used(), 0u);
  // Larger than the whole limit, and the overflow edge.
  EXPECT_FALSE(budget.try_take(1001));
  EXPECT_FALSE(budget.try_take(SIZE_MAX));
  budget.set_limit(10);
  EXPECT_FALSE(budget.try_take(11));
  EXPECT_TRUE(budget.try_take(10));
}

TEST(QueueBudget, ConcurrentTakersNeverExceedTheLimit) {
  QueueBudget budget(100'000);
  std::atomic<std::size_t> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        if (budget.try_take(7)) taken.fetch_add(7);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(taken.load(), 100'000u);
  EXPECT_EQ(budget.used(), taken.load());
  EXPECT_GT(taken.load(), 100'000u - 7);
}

SendQueue::Push push(SendQueue& q, std::size_t n, std::uint8_t fill = 0) {
  const relay::Bytes frame = frame_of(n, fill);
  return q.push_datagram(ServerDatagram::encoded(frame));
}

// One writer batch of a SendQueue: its control frames and datagram runs.
struct Popped {
  std::vector<QueuedFrame> control;
  std::array<SendQueue::Span, 4> spans{};
  SendQueue::Taken taken;
  // The datagram runs concatenated (WebSocket messages).
  relay::Bytes wire() const {
    relay::Bytes out;
    for (std::size_t i = 0; i < taken.spans; ++i)
      out.insert(out.end(), spans[i].data, spans[i].data + spans[i].size);
    return out;
  }
};

Popped pop(SendQueue& q, std::size_t max_control = 128, std::size_t max_bytes = 1 << 20) {
  q.release_batch();
  Popped p;
  p.taken = q.pop_batch(p.control, max_control, p.spans.data(), p.spans.size(), max_bytes);
  return p;
}

// Splits WebSocket server messages (unmasked, unfragmented) into their payloads.
std::vector<relay::Bytes> messages_of(const relay::Bytes& wire) {
  std::vector<relay::Bytes> out;
  std::size_t pos = 0;
  while (pos < wire.size()) {
    EXPECT_EQ(wire[pos], 0x80 | ws::kBinary);
    std::size_t len = wire[pos + 1], head = 2;
    if (len == 126) {
      len = std::size_t(wire[pos + 2]) << 8 | wire[pos + 3];
      head = 4;
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i) len = len << 8 | wire[pos + 2 + i];
      head = 10;
    }
    if (pos + head + len > wire.size()) {
      ADD_FAILURE() << "message cut at " << pos;
      break;
    }
    out.emplace_back(wire.begin() + std::ptrdiff_t(pos + head),
                     wire.begin() + std::ptrdiff_t(pos + head + len));
    pos += head + len;
  }
  return out;
}

TEST(SendQueue, ByteCapDropsOnceFullAndCountsBytes) {
  QueueBudget budget(1 << 30);
  SendQueue q({1000, 10'000}, budget);
  for (int i = 0; i < 6; ++i) ASSERT_EQ(push(q, 1200), SendQueue::Push::Ok);
  // Past three quarters of the byte cap: still queued, with the throttle mark reported.
  for (int i = 0; i < 2; ++i) ASSERT_EQ(push(q, 1200), SendQueue::Push::OkAboveMark);
  EXPECT_EQ(q.datagram_bytes(), 9600u);
  EXPECT_EQ(push(q, 1200), SendQueue::Push::Full);
  // A smaller frame that still fits is taken.
  EXPECT_EQ(push(q, 400), SendQueue::Push::OkAboveMark);
  EXPECT_EQ(push(q, 1), SendQueue::Push::Full);
  EXPECT_EQ(q.datagram_count(), 9u);
  EXPECT_EQ(budget.used(), 10'000u);
}

TEST(SendQueue, FrameCapStillApplies) {
  QueueBudget budget(1 << 30);
  SendQueue q({4, 1 << 20}, budget);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(push(q, 10), SendQueue::Push::Ok);
  EXPECT_EQ(push(q, 10), SendQueue::Push::OkAboveMark);
  EXPECT_EQ(push(q, 10), SendQueue::Push::Full);
}

// Issue 13: a sender is throttled past three quarters of either cap and resumes at half, so a
// flood paced by back-pressure keeps a quarter of the queue free for what is in flight.
TEST(SendQueue, ThrottleMarkAtThreeQuartersResumeMarkAtHalf) {
  QueueBudget budget(1 << 30);
  SendQueue bytes({1000, 4000}, budget);
  ASSERT_EQ(push(bytes, 2000), SendQueue::Push::Ok);
  EXPECT_TRUE(bytes.below_resume_mark());  // 2000 of 4000
  ASSERT_EQ(push(bytes, 1000), SendQueue::Push::Ok);
  EXPECT_FALSE(bytes.below_resume_mark());
  EXPECT_FALSE(bytes.above_throttle_mark());  // 3000: at the mark, not past it
  EXPECT_EQ(push(bytes, 1), SendQueue::Push::OkAboveMark);
  EXPECT_TRUE(bytes.above_throttle_mark());

  SendQueue frames({8, 1 << 20}, budget);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(push(frames, 10), SendQueue::Push::Ok);
  EXPECT_TRUE(frames.below_resume_mark());
  for (int i = 0; i < 2; ++i) ASSERT_EQ(push(frames, 10), SendQueue::Push::Ok);
  EXPECT_FALSE(frames.below_resume_mark());
  EXPECT_EQ(push(frames, 10), SendQueue::Push::OkAboveMark);  // 7 of 8
  // Emptied by the writer: neither mark.
  Popped all = pop(frames);
  EXPECT_EQ(all.taken.frames, 7u);
  EXPECT_TRUE(frames.below_resume_mark());
  EXPECT_FALSE(frames.above_throttle_mark());
}

TEST(SendQueue, OneFrameAlwaysFitsAnEmptyQueue) {
  QueueBudget budget(1 << 30);
  SendQueue q({10, 100}, budget);
  EXPECT_EQ(push(q, 5000), SendQueue::Push::OkAboveMark);  // queued, and past the mark
  EXPECT_EQ(push(q, 1), SendQueue::Push::Full);
}

TEST(SendQueue, DaemonBudgetIsSharedAndReleasedOnPopAndClear) {
  QueueBudget budget(3000);
  SendQueue a({100, 1 << 20}, budget), b({100, 1 << 20}, budget);
  EXPECT_EQ(push(a, 2000), SendQueue::Push::Ok);
  EXPECT_EQ(push(b, 1500), SendQueue::Push::BudgetFull);
  EXPECT_EQ(push(b, 1000), SendQueue::Push::Ok);
  EXPECT_EQ(budget.used(), 3000u);
  EXPECT_EQ(pop(a).taken.frames, 1u);
  EXPECT_EQ(budget.used(), 1000u);
  EXPECT_EQ(b.clear(), 1u);
  EXPECT_EQ(budget.used(), 0u);
  {
    SendQueue c({100, 1 << 20}, budget);
    EXPECT_EQ(push(c, 700), SendQueue::Push::Ok);
    EXPECT_EQ(budget.used(), 700u);
  }
  // A destroyed queue gives its bytes back.
  EXPECT_EQ(budget.used(), 0u);
}

TEST(SendQueue, ControlLaneGoesFirstAndHasItsOwnCap) {
  QueueBudget budget(1 << 30);
  SendQueue q({100, 1 << 20}, budget);
  ASSERT_EQ(push(q, 10, 1), SendQueue::Push::Ok);
  EXPECT_TRUE(q.push_control(QueuedFrame{frame_of(3, 9), ws::kBinary}, 2));
  EXPECT_TRUE(q.push_control(QueuedFrame{frame_of(2, 8), ws::kPong}, 2));
  EXPECT_FALSE(q.push_control(QueuedFrame{frame_of(2, 7), ws::kBinary}, 2));
  // At most one control frame per batch here: the datagram waits for the second.
  Popped first = pop(q, 1);
  ASSERT_EQ(first.control.size(), 1u);
  EXPECT_EQ(first.control[0].bytes[0], 9);
  EXPECT_EQ(first.taken.frames, 1u);
  // A control frame queued behind a datagram still goes ahead of the datagrams queued later.
  ASSERT_EQ(push(q, 10, 2), SendQueue::Push::Ok);
  EXPECT_TRUE(q.push_control(QueuedFrame{frame_of(1, 6), ws::kBinary}, 2));
  Popped second = pop(q);
  ASSERT_EQ(second.control.size(), 2u);
  EXPECT_EQ(second.control[0].opcode, ws::kPong);
  EXPECT_EQ(second.control[1].bytes[0], 6);
  EXPECT_EQ(messages_of(second.wire()), std::vector<relay::Bytes>{frame_of(10, 2)});
  EXPECT_TRUE(q.empty());
  // Control frames that fill the batch's bytes leave the datagrams for the next one.
  ASSERT_EQ(push(q, 10, 3), SendQueue::Push::Ok);
  EXPECT_TRUE(q.push_control(QueuedFrame{frame_of(100, 5), ws::kBinary}, 2));
  Popped third = pop(q, 128, 100);
  EXPECT_EQ(third.control.size(), 1u);
  EXPECT_EQ(third.taken.spans, 0u);
  EXPECT_EQ(pop(q).taken.frames, 1u);
}

TEST(SendQueue, BatchStopsNearTheByteBudgetAtWholeRuns) {
  QueueBudget budget(1 << 30);
  SendQueue q({1000, 1 << 20}, budget);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(push(q, 1000, std::uint8_t(i)), SendQueue::Push::Ok);
  std::size_t total = 0, batches = 0;
  std::vector<relay::Bytes> seen;
  while (!q.empty()) {
    Popped p = pop(q, 128, 64 * 1024);
    ASSERT_GT(p.taken.frames, 0u);
    // The first run is taken whole (one chunk); further runs only within the budget.
    EXPECT_LE(p.taken.wire_bytes, DatagramLane::kChunkBytes);
    EXPECT_EQ(p.taken.frame_bytes, p.taken.frames * 1000);
    for (auto& m : messages_of(p.wire())) seen.push_back(std::move(m));
    total += p.taken.frames;
    ++batches;
    ASSERT_LT(batches, 200u);
  }
  EXPECT_EQ(total, 200u);
  ASSERT_EQ(seen.size(), 200u);
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], frame_of(1000, std::uint8_t(i)));
  // Over 200 KB in batches of about 64 KiB, not one per frame.
  EXPECT_LE(batches, 8u);
}

TEST(SendQueue, ResumeMarkIsHalfOfBothCaps) {
  QueueBudget budget(1 << 30);
  SendQueue q({10, 10'000}, budget);
  for (int i = 0; i < 7; ++i) ASSERT_EQ(push(q, 1000), SendQueue::Push::Ok);
  ASSERT_EQ(push(q, 1000), SendQueue::Push::OkAboveMark);  // 8,000 of 10,000
  EXPECT_FALSE(q.below_resume_mark());
  pop(q);
  EXPECT_TRUE(q.below_resume_mark());
}

TEST(FrameFifo, KeepsOrderAndReleasesStorage) {
  FrameFifo fifo;
  for (std::uint8_t i = 0; i < 200; ++i) fifo.push(QueuedFrame{frame_of(1, i), ws::kBinary});
  EXPECT_EQ(fifo.bytes(), 200u);
  for (std::uint8_t i = 0; i < 150; ++i) ASSERT_EQ(fifo.pop().bytes[0], i);
  EXPECT_EQ(fifo.size(), 50u);
  EXPECT_EQ(fifo.front().bytes[0], 150);
  EXPECT_EQ(fifo.clear(), 50u);
  EXPECT_EQ(fifo.bytes(), 0u);
  EXPECT_TRUE(fifo.empty());
}

// ---- The datagram lane's chunks (issue 13: one copy per datagram, whole runs per write) ----

TEST(ServerDatagram, EncodesInPlaceWhatEncodeServerDatagramEncodes) {
  const auto src = relay::SecretKey::generate().public_key();
  const relay::Bytes contents(1200, 0x5a);
  for (std::uint16_t segment : {std::uint16_t(0), std::uint16_t(600)}) {
    relay::Datagram dg;
    dg.peer = relay::SecretKey::generate().public_key();
    dg.ecn = relay::Ecn::Ce;
    dg.segment_size = segment;
    dg.contents = contents;
    const auto frame = ServerDatagram::from(src, dg);
    ASSERT_TRUE(frame.valid());
    const auto expected = relay::encode_server_datagram(src, dg.ecn, segment, contents);
    ASSERT_TRUE(expected);
    EXPECT_EQ(frame.to_bytes(), *expected);
    EXPECT_EQ(frame.size(), expected->size());
    EXPECT_EQ(frame.contents_size(), 1200u);
    // The same frame handed on already encoded (another worker, a mesh peer).
    EXPECT_EQ(ServerDatagram::encoded(*expected).contents_size(), 1200u);
  }
  // What encode_server_datagram refuses (§5.4) is not valid: too large, or no contents.
  relay::Datagram big;
  const relay::Bytes too_much(relay::kMaxPacketSize, 1);
  big.contents = too_much;
  EXPECT_FALSE(ServerDatagram::from(src, big).valid());
  EXPECT_FALSE(relay::encode_server_datagram(src, big.ecn, 0, too_much));
  relay::Datagram empty;
  EXPECT_FALSE(ServerDatagram::from(src, empty).valid());
}

TEST(DatagramLane, WrapsAroundInItsTailChunkAndFreesEverythingWhenIdle) {
  DatagramLane lane;
  std::array<DatagramLane::Span, 4> spans{};
  const relay::Bytes frame = frame_of(1000, 7);
  std::size_t max_storage = 0;
  for (int round = 0; round < 2000; ++round) {
    const std::size_t n = 1 + std::size_t(round % 50);
    for (std::size_t i = 0; i < n; ++i) lane.push(ServerDatagram::encoded(frame));
    std::size_t taken = 0;
    for (int guard = 0; guard < 100 && !lane.empty(); ++guard) {
      taken += lane.take(spans.data(), spans.size(), 64 * 1024).frames;
      lane.release();
    }
    ASSERT_EQ(taken, n);
    max_storage = std::max(max_storage, lane.storage_bytes());
  }
  // The written chunks are reused (the tail from its start, one spare), not piled up: at most
  // one full queue of 50 frames (~50 KB) in chunks of at most 64 KiB, plus the spare.
  EXPECT_LE(max_storage, 3 * DatagramLane::kChunkBytes);
  lane.release_storage();
  EXPECT_EQ(lane.storage_bytes(), 0u);
}

TEST(DatagramLane, ProducersAppendBehindTheRunInFlight) {
  DatagramLane lane;
  std::array<DatagramLane::Span, 4> spans{};
  for (std::uint8_t i = 0; i < 5; ++i) lane.push(ServerDatagram::encoded(frame_of(100, i)));
  const auto t = lane.take(spans.data(), spans.size(), 64 * 1024);
  ASSERT_EQ(t.frames, 5u);
  ASSERT_EQ(t.spans, 1u);
  const relay::Bytes in_flight(spans[0].data, spans[0].data + spans[0].size);
  // More messages while the run is being written: same chunk, after it, untouched run.
  for (std::uint8_t i = 5; i < 10; ++i) lane.push(ServerDatagram::encoded(frame_of(100, i)));
  EXPECT_EQ(relay::Bytes(spans[0].data, spans[0].data + spans[0].size), in_flight);
  EXPECT_EQ(lane.frames(), 5u);
  lane.release();
  const auto t2 = lane.take(spans.data(), spans.size(), 64 * 1024);
  ASSERT_EQ(t2.frames, 5u);
  const auto second = messages_of(relay::Bytes(spans[0].data, spans[0].data + spans[0].size));
  ASSERT_EQ(second.size(), 5u);
  EXPECT_EQ(second[0], frame_of(100, 5));
  EXPECT_EQ(second[4], frame_of(100, 9));
  lane.release();
  EXPECT_TRUE(lane.empty());
}

TEST(DatagramLane, ClearDropsTheQueuedButKeepsTheRunInFlight) {
  DatagramLane lane;
  std::array<DatagramLane::Span, 4> spans{};
  for (int i = 0; i < 100; ++i) lane.push(ServerDatagram::encoded(frame_of(1000, 3)));
  const auto t = lane.take(spans.data(), 1, 64 * 1024);
  ASSERT_GT(t.frames, 0u);
  const relay::Bytes in_flight(spans[0].data, spans[0].data + spans[0].size);
  EXPECT_EQ(lane.clear(), 100u - t.frames);
  EXPECT_TRUE(lane.empty());
  EXPECT_EQ(lane.bytes(), 0u);
  EXPECT_EQ(relay::Bytes(spans[0].data, spans[0].data + spans[0].size), in_flight);
  lane.release();
  lane.release_storage();
  EXPECT_EQ(lane.storage_bytes(), 0u);
}

TEST(DatagramLane, LargeMessagesGetAChunkOfTheirOwnAndLongHeaders) {
  DatagramLane lane;
  std::array<DatagramLane::Span, 4> spans{};
  // A frame above 64 KiB cannot be a relay datagram (§5.4) but can be handed on encoded (a mesh
  // peer's frame); and frames of 126..65535 bytes take the 16-bit length form.
  const relay::Bytes huge = frame_of(DatagramLane::kChunkBytes + 10, 4);
  lane.push(ServerDatagram::encoded(frame_of(200, 1)));
  lane.push(ServerDatagram::encoded(huge));
  lane.push(ServerDatagram::encoded(frame_of(20, 2)));
  std::vector<relay::Bytes> seen;
  for (int guard = 0; guard < 10 && !lane.empty(); ++guard) {
    const auto t = lane.take(spans.data(), spans.size(), 1024);
    for (std::size_t i = 0; i < t.spans; ++i) {
      for (auto& m : messages_of(relay::Bytes(spans[i].data, spans[i].data + spans[i].size)))
        seen.push_back(std::move(m));
    }
    lane.release();
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], frame_of(200, 1));
  EXPECT_EQ(seen[1], huge);
  EXPECT_EQ(seen[2], frame_of(20, 2));
}

// ---- WebSocket framing (RFC 6455 §5.2) ----

TEST(WsFraming, ServerHeaderLengthForms) {
  std::uint8_t h[ws::kMaxServerHeader];
  EXPECT_EQ(ws::encode_server_header(ws::kBinary, 125, h), 2u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 125);
  EXPECT_EQ(ws::encode_server_header(ws::kBinary, 126, h), 4u);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(h[3], 126);
  EXPECT_EQ(ws::encode_server_header(ws::kClose, 65535, h), 4u);
  EXPECT_EQ(h[0], 0x88);
  EXPECT_EQ(ws::encode_server_header(ws::kBinary, 65536, h), 10u);
  EXPECT_EQ(h[1], 127);
  EXPECT_EQ(h[7], 1);
  EXPECT_EQ(h[8], 0);
  EXPECT_EQ(h[9], 0);
}

TEST(WsFraming, UnmaskMatchesBytewiseXorAtEveryLength) {
  const std::uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  // Past the 64- and 16-byte steps, from unaligned starts too.
  for (std::size_t offset = 0; offset < 3; ++offset) {
    for (std::size_t len = 0; len < 200; ++len) {
      std::vector<std::uint8_t> data(offset + len), expected(len);
      for (std::size_t i = 0; i < len; ++i) {
        data[offset + i] = std::uint8_t(i * 7);
        expected[i] = std::uint8_t(data[offset + i] ^ key[i % 4]);
      }
      ws::unmask(data.data() + offset, len, key);
      EXPECT_EQ(std::vector<std::uint8_t>(data.begin() + std::ptrdiff_t(offset), data.end()),
                expected)
          << len << " at offset " << offset;
    }
  }
}

ws::Parse parse(const std::vector<std::uint8_t>& bytes, ws::ClientHeader& h, std::size_t& need,
                const char*& error) {
  return ws::parse_client_header(bytes.data(), bytes.size(), h, need, error);
}

TEST(WsFraming, ParsesClientHeadersIncrementally) {
  ws::ClientHeader h;
  std::size_t need = 0;
  const char* error = nullptr;
  std::vector<std::uint8_t> frame = {0x82, 0x80 | 126, 0x01, 0x00, 1, 2, 3, 4};
  EXPECT_EQ(parse({0x82}, h, need, error), ws::Parse::NeedMore);
  EXPECT_EQ(need, 2u);
  EXPECT_EQ(parse({0x82, 0x80 | 126, 0x01}, h, need, error), ws::Parse::NeedMore);
  EXPECT_EQ(need, 8u);
  ASSERT_EQ(parse(frame, h, need, error), ws::Parse::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, ws::kBinary);
  EXPECT_EQ(h.payload_len, 256u);
  EXPECT_EQ(h.header_len, 8u);
  EXPECT_EQ(h.mask[0], 1);
  std::vector<std::uint8_t> big = {0x02, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9};
  ASSERT_EQ(parse(big, h, need, error), ws::Parse::Ok);
  EXPECT_FALSE(h.fin);
  EXPECT_EQ(h.payload_len, 65536u);
  EXPECT_EQ(h.header_len, 14u);
}

TEST(WsFraming, RejectsWhatRfc6455Forbids) {
  ws::ClientHeader h;
  std::size_t need = 0;
  const char* error = nullptr;
  const std::vector<std::pair<const char*, std::vector<std::uint8_t>>> bad = {
      {"reserved bits set", {0xC2, 0x80, 0, 0, 0, 0}},
      {"unmasked client frame", {0x82, 0x05}},
      {"bad control frame", {0x09, 0x80, 0, 0, 0, 0}},                // fragmented ping
      {"bad control frame", {0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0}},  // > 125 bytes
      {"unknown opcode", {0x83, 0x80, 0, 0, 0, 0}},
      {"unknown opcode", {0x8B, 0x80, 0, 0, 0, 0}},
  };
  for (const auto& [why, bytes] : bad) {
    error = nullptr;
    EXPECT_EQ(parse(bytes, h, need, error), ws::Parse::Error) << why;
    ASSERT_NE(error, nullptr);
    EXPECT_STREQ(error, why);
  }
}

// ---- Client registry (§6.2-§6.4) against fake connections ----

class FakeClient : public RelayClientHandle, public std::enable_shared_from_this<FakeClient> {
 public:
  FakeClient(relay::EndpointId id, Enqueue answer = Enqueue::Ok)
      : RelayClientHandle(id, relay::ProtocolVersion::V2), answer_(answer) {}
  Enqueue try_enqueue_datagram(const ServerDatagram& frame, RelayClientHandle* sender) override {
    last_sender = sender;
    if (answer_ == Enqueue::Ok) datagrams.push_back(frame.to_bytes());
    return answer_;
  }
  Enqueue try_enqueue_control(relay::Bytes&& frame) override {
    control.push_back(std::move(frame));
    return Enqueue::Ok;
  }
  void close() override { closed = true; }
  std::weak_ptr<RelayClientHandle> weak_handle() override { return shared_from_this(); }

  std::vector<relay::Bytes> datagrams, control;
  RelayClientHandle* last_sender = nullptr;
  bool closed = false;

 private:
  Enqueue answer_;
};

const relay::Bytes kOne{1};
const ServerDatagram kFrame = ServerDatagram::encoded(kOne);

TEST(ClientRegistry, ForwardsToTheActiveConnectionAndMapsEveryOutcome) {
  RelayMetrics metrics;
  ClientRegistry registry(metrics);
  auto id = relay::SecretKey::generate().public_key();
  EXPECT_EQ(registry.forward(id, kFrame), ClientRegistry::Forward::UnknownDestination);
  auto a = std::make_shared<FakeClient>(id);
  registry.register_client(a);
  FakeClient sender(relay::SecretKey::generate().public_key());
  const relay::Bytes two{1, 2};
  EXPECT_EQ(registry.forward(id, ServerDatagram::encoded(two), &sender),
            ClientRegistry::Forward::Queued);
  ASSERT_EQ(a->datagrams.size(), 1u);
  EXPECT_EQ(a->last_sender, &sender);
  using E = RelayClientHandle::Enqueue;
  using F = ClientRegistry::Forward;
  const std::pair<E, F> outcomes[] = {{E::OkThrottle, F::QueuedThrottle},
                                      {E::Full, F::QueueFull},
                                      {E::FullThrottle, F::QueueFullThrottle},
                                      {E::BudgetFull, F::TotalQueueFull},
                                      {E::Closed, F::RecipientClosed}};
  for (const auto& [answer, expected] : outcomes) {
    auto other = relay::SecretKey::generate().public_key();
    registry.register_client(std::make_shared<FakeClient>(other, answer));
    EXPECT_EQ(registry.forward(other, kFrame), expected);
  }
  EXPECT_EQ(registry.endpoint_count(), 6u);
}

TEST(ClientRegistry, DuplicateIdsAndEndpointGone) {
  RelayMetrics metrics;
  ClientRegistry registry(metrics);
  auto id = relay::SecretKey::generate().public_key();
  auto peer_id = relay::SecretKey::generate().public_key();
  auto first = std::make_shared<FakeClient>(id), second = std::make_shared<FakeClient>(id);
  auto peer = std::make_shared<FakeClient>(peer_id);
  registry.register_client(peer);
  registry.register_client(first);
  registry.register_client(second);
  // The older one is told another connection took over; datagrams go to the newest.
  ASSERT_EQ(first->control.size(), 1u);
  EXPECT_EQ(first->control[0], ClientRegistry::same_id_connected_frame(relay::ProtocolVersion::V2));
  registry.forward(id, kFrame);
  EXPECT_EQ(second->datagrams.size(), 1u);
  EXPECT_TRUE(first->datagrams.empty());
  // The newest leaves: the older is active again and told it is healthy.
  registry.unregister_client(second.get(), {peer_id});
  ASSERT_EQ(first->control.size(), 2u);
  EXPECT_EQ(first->control[1], ClientRegistry::healthy_frame(relay::ProtocolVersion::V2));
  // The last one leaves: the peers it sent to hear EndpointGone.
  registry.unregister_client(first.get(), {});
  EXPECT_FALSE(registry.is_registered(id));
  ASSERT_EQ(peer->control.size(), 1u);
  EXPECT_EQ(peer->control[0][0], std::uint8_t(relay::FrameType::EndpointGone));
  EXPECT_EQ(metrics.clients_connected.load(), 1);
}

// A sender's route cache (issue 13) follows every change of the destination's connection.
TEST(ClientRegistry, RouteCacheFollowsReconnectsAndDepartures) {
  RelayMetrics metrics;
  ClientRegistry registry(metrics);
  auto id = relay::SecretKey::generate().public_key();
  auto first = std::make_shared<FakeClient>(id);
  registry.register_client(first);
  FakeClient sender(relay::SecretKey::generate().public_key());
  ClientRegistry::RouteCache cache;
  using F = ClientRegistry::Forward;
  EXPECT_EQ(registry.forward(id, kFrame, &sender, &cache), F::Queued);
  EXPECT_EQ(cache.active.get(), first.get());
  EXPECT_EQ(registry.forward(id, kFrame, &sender, &cache), F::Queued);
  EXPECT_EQ(first->datagrams.size(), 2u);
  // Another destination through the same cache: looked up, and cached instead.
  auto other_id = relay::SecretKey::generate().public_key();
  auto other = std::make_shared<FakeClient>(other_id);
  registry.register_client(other);
  EXPECT_EQ(registry.forward(other_id, kFrame, &sender, &cache), F::Queued);
  EXPECT_EQ(other->datagrams.size(), 1u);
  EXPECT_EQ(cache.active.get(), other.get());
  // A newer connection of the same id takes the datagrams at once.
  auto second = std::make_shared<FakeClient>(other_id);
  registry.register_client(second);
  EXPECT_EQ(registry.forward(other_id, kFrame, &sender, &cache), F::Queued);
  EXPECT_EQ(second->datagrams.size(), 1u);
  EXPECT_EQ(other->datagrams.size(), 1u);
  // Every connection of the id gone: unknown, not the cached connection.
  registry.unregister_client(second.get(), {});
  registry.unregister_client(other.get(), {});
  EXPECT_EQ(registry.forward(other_id, kFrame, &sender, &cache), F::UnknownDestination);
  EXPECT_EQ(second->datagrams.size(), 1u);
  EXPECT_EQ(other->datagrams.size(), 1u);
  cache.reset();
  EXPECT_EQ(cache.active, nullptr);
}

// §6.5 keepalive, driven with explicit clock readings.
TEST(PingTracker, PingsAfterTheIdleIntervalAndRestartsItOnEveryFrame) {
  using namespace std::chrono_literals;
  using Due = PingTracker::Due;
  const PingTracker::Clock::time_point t0{std::chrono::hours(1)};
  PingTracker ping(17s);
  ping.on_receive(t0);
  EXPECT_EQ(ping.wake_at(), t0 + 17s);
  EXPECT_EQ(ping.check(t0 + 16s), Due::Nothing);
  // A frame received restarts the idle interval.
  ping.on_receive(t0 + 16s);
  EXPECT_EQ(ping.check(t0 + 17s), Due::Nothing);
  EXPECT_EQ(ping.check(t0 + 33s), Due::SendPing);
  EXPECT_FALSE(ping.outstanding());
}

TEST(PingTracker, TimesOutWithoutTheMatchingPongAndMeasuresTheRtt) {
  using namespace std::chrono_literals;
  using Due = PingTracker::Due;
  const PingTracker::Clock::time_point t0{std::chrono::hours(1)};
  PingTracker ping(16s);
  ping.on_receive(t0);
  const PingTracker::Data data{1, 2, 3, 4, 5, 6, 7, 8};
  // Until measured the timeout is the 5 s maximum.
  ping.on_ping_sent(data, t0 + 16s, 18s);
  EXPECT_TRUE(ping.outstanding());
  EXPECT_EQ(ping.wake_at(), t0 + 21s);
  EXPECT_EQ(ping.check(t0 + 20s), Due::Nothing);
  EXPECT_EQ(ping.check(t0 + 21s), Due::TimedOut);
  // A Pong with other data does not answer it; the matching one does: RTT 1 s -> timeout 3 s.
  EXPECT_FALSE(ping.on_pong(PingTracker::Data{}, t0 + 17s));
  EXPECT_TRUE(ping.on_pong(data, t0 + 17s));
  EXPECT_FALSE(ping.outstanding());
  EXPECT_EQ(ping.timeout(), 3s);
  // The next Ping comes `next_interval` after the later of the last frame and the last Ping.
  EXPECT_EQ(ping.wake_at(), t0 + 16s + 18s);
  // Tiny and huge RTTs are clamped to [500 ms, 5 s].
  ping.on_ping_sent(data, t0 + 40s, 18s);
  ping.on_pong(data, t0 + 40s + 1ms);
  EXPECT_EQ(ping.timeout(), PingTracker::kMinTimeout);
  ping.on_ping_sent(data, t0 + 60s, 18s);
  ping.on_pong(data, t0 + 64s);
  EXPECT_EQ(ping.timeout(), PingTracker::kMaxTimeout);
}

// ---- Hand-off between relay workers (issue 13 item 1) ----

TEST(HandoffQueue, KeepsOrderAndWakesTheConsumerOncePerIdlePeriod) {
  HandoffQueue<int> q({100, 1000});
  auto one = [](int) { return std::size_t{1}; };
  std::vector<int> batch{1, 2, 3};
  auto pushed = q.push(batch, one);
  EXPECT_EQ(pushed.dropped, 0u);
  EXPECT_TRUE(pushed.wake);
  EXPECT_TRUE(batch.empty());
  // A wake-up is already scheduled: the next batch rides on it.
  batch = {4, 5};
  EXPECT_FALSE(q.push(batch, one).wake);
  std::vector<int> out{99};
  q.take(out);
  EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(q.size(), 0u);
  // Taken: the next batch wakes the consumer again; an empty batch never does.
  std::vector<int> empty;
  EXPECT_FALSE(q.push(empty, one).wake);
  batch = {6};
  EXPECT_TRUE(q.push(batch, one).wake);
}

TEST(HandoffQueue, BoundedInItemsAndBytesAndCountsWhatItDrops) {
  HandoffQueue<int> q({4, 10});
  auto cost = [](int v) { return std::size_t(v); };
  std::vector<int> batch{3, 3, 3, 3};  // the 4th would make 12 bytes
  EXPECT_EQ(q.push(batch, cost).dropped, 1u);
  batch = {1, 1, 1};  // one more item fits (4 items), then the item cap
  EXPECT_EQ(q.push(batch, cost).dropped, 2u);
  std::vector<int> out;
  q.take(out);
  EXPECT_EQ(out, (std::vector<int>{3, 3, 3, 1}));
  // Taking frees both caps.
  batch = {5, 5};
  EXPECT_EQ(q.push(batch, cost).dropped, 0u);
}

TEST(HandoffQueue, ManyProducersOneConsumerLoseNothingWithinTheCaps) {
  constexpr int kProducers = 4, kBatches = 500, kBatch = 8;
  HandoffQueue<int> q({1u << 20, 1u << 20});
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&q, p] {
      std::vector<int> batch;
      for (int b = 0; b < kBatches; ++b) {
        for (int i = 0; i < kBatch; ++i) batch.push_back(p * 1'000'000 + b * kBatch + i);
        q.push(batch, [](int) { return std::size_t{1}; });
      }
    });
  }
  std::vector<int> last(kProducers, -1), out;
  std::size_t total = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (total < std::size_t(kProducers * kBatches * kBatch) &&
         std::chrono::steady_clock::now() < deadline) {
    q.take(out);
    for (int v : out) {
      // Each producer's items arrive in the order it pushed them.
      EXPECT_GT(v % 1'000'000, last[v / 1'000'000]);
      last[v / 1'000'000] = v % 1'000'000;
    }
    total += out.size();
    if (out.empty()) std::this_thread::yield();
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(total, std::size_t(kProducers * kBatches * kBatch));
}

// A connection on a given worker that records where and how often it was reached.
class WorkerClient : public RelayClientHandle, public std::enable_shared_from_this<WorkerClient> {
 public:
  WorkerClient(unsigned worker, Enqueue answer = Enqueue::Ok)
      : RelayClientHandle(relay::SecretKey::generate().public_key(), relay::ProtocolVersion::V2,
                          worker),
        answer_(answer) {}
  Enqueue try_enqueue_datagram(const ServerDatagram&, RelayClientHandle* sender) override {
    delivered_on = std::this_thread::get_id();
    last_sender = sender;
    ++delivered;
    return answer_;
  }
  Enqueue try_enqueue_control(relay::Bytes&&) override { return Enqueue::Ok; }
  void close() override {}
  void slow_down(SlowDown why) override {
    if (why == SlowDown::WaitForDrain) ++slowed_for_drain;
  }
  std::weak_ptr<RelayClientHandle> weak_handle() override { return shared_from_this(); }

  std::atomic<int> delivered{0}, slowed_for_drain{0};
  std::atomic<RelayClientHandle*> last_sender{nullptr};
  std::thread::id delivered_on;

 private:
  Enqueue answer_;
};

// Runs `f` on `worker`'s loop and waits for it (bounded).
template <class F>
void run_on(RelayWorkers& workers, unsigned worker, F f) {
  std::promise<void> done;
  boost::asio::post(workers.context(worker), [&] {
    f();
    done.set_value();
  });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(RelayWorkers, DatagramsForAnotherWorkerArriveOnItsThreadAndFullQueuesSlowTheSender) {
  RelayMetrics metrics;
  ClientRegistry registry(metrics);
  RelayWorkers workers(2, metrics);
  registry.set_cross_worker(&workers);
  workers.start();
  auto sender = std::make_shared<WorkerClient>(0);
  auto local = std::make_shared<WorkerClient>(0);
  auto remote = std::make_shared<WorkerClient>(1);
  auto full = std::make_shared<WorkerClient>(1, RelayClientHandle::Enqueue::FullThrottle);
  auto filling = std::make_shared<WorkerClient>(1, RelayClientHandle::Enqueue::OkThrottle);
  for (const auto& c : {sender, local, remote, full, filling}) registry.register_client(c);
  std::thread::id worker1;
  run_on(workers, 1, [&] { worker1 = std::this_thread::get_id(); });

  constexpr int kFrames = 200;  // more than one flush batch
  const relay::Bytes bytes(100);
  const ServerDatagram frame = ServerDatagram::encoded(bytes);
  std::vector<ClientRegistry::Forward> outcomes;
  run_on(workers, 0, [&] {
    for (int i = 0; i < kFrames; ++i) {
      outcomes.push_back(registry.forward(remote->endpoint_id(), frame, sender.get()));
    }
    // Same worker: enqueued at once, no hand-off.
    outcomes.push_back(registry.forward(local->endpoint_id(), frame, sender.get()));
    outcomes.push_back(registry.forward(full->endpoint_id(), frame, sender.get()));
  });
  ASSERT_EQ(outcomes.size(), std::size_t(kFrames + 2));
  EXPECT_EQ(outcomes[0], ClientRegistry::Forward::HandedOff);
  EXPECT_EQ(outcomes[kFrames], ClientRegistry::Forward::Queued);
  EXPECT_EQ(local->delivered.load(), 1);
  EXPECT_TRUE(eventually([&] { return remote->delivered.load() == kFrames; }));
  EXPECT_EQ(remote->delivered_on, worker1);
  EXPECT_EQ(remote->last_sender.load(), sender.get());
  // The full destination drops (counted) and slows the sender down from the other worker.
  EXPECT_TRUE(eventually([&] { return sender->slowed_for_drain.load() == 1; }));
  EXPECT_EQ(metrics.dropped_queue_full.load(), 1u);
  EXPECT_EQ(metrics.dropped_handoff_full.load(), 0u);
  // A destination past its throttle mark queues the datagram and slows the sender down too.
  run_on(workers, 0, [&] {
    EXPECT_EQ(registry.forward(filling->endpoint_id(), frame, sender.get()),
              ClientRegistry::Forward::HandedOff);
  });
  EXPECT_TRUE(eventually([&] { return sender->slowed_for_drain.load() == 2; }));
  EXPECT_EQ(filling->delivered.load(), 1);
  EXPECT_EQ(metrics.dropped_queue_full.load(), 1u);
  EXPECT_EQ(metrics.send_packets_dropped.load(), 1u);
  workers.join();
  registry.clear();
}

}  // namespace
}  // namespace iroh::server
