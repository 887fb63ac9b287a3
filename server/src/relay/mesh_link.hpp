// One relay mesh link over a Beast WebSocket (issue 16, docs/mesh.md §3-§5), for both ends: the
// acceptor runs inside the relay listener's Connection (GET /relay/mesh), the dialer in
// mesh_dial.cpp. Templates over the WebSocket stream type (plain or TLS, server or client).
#pragma once

#include <sodium.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "core/await.hpp"
#include "core/log.hpp"
#include "iroh/mesh_proto.hpp"
#include "relay/mesh.hpp"

namespace iroh::server::meshlink {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using boost::system::error_code;

// §5.4: frames waiting on one link. Presence beyond this closes the link (the peer redials and
// resynchronises); datagrams beyond it are dropped and counted.
inline constexpr std::size_t kMaxQueuedFrames = 65536;
inline constexpr std::size_t kMaxQueuedBytes = 32 * 1024 * 1024;
// §3: liveness. Beast pings an idle link after half of this and closes it after all of it.
inline constexpr auto kIdleTimeout = std::chrono::seconds(10);
inline constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
inline constexpr std::size_t kMaxMessage = relay::kMaxFrameSize + 64;
// §5.1: queued Forwards are coalesced into ForwardBatch messages up to this size (a single
// Forward, at most 64 KiB + 33 bytes, always fits within kMaxMessage on its own).
inline constexpr std::size_t kBatchBytes = 256 * 1024;

inline bool is_forward(const relay::Bytes& frame) {
  return !frame.empty() && frame[0] == static_cast<std::uint8_t>(mesh::FrameType::Forward);
}

template <class WS>
void set_link_options(WS& ws, beast::role_type role) {
  websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(role);
  t.handshake_timeout = kHandshakeTimeout;
  t.idle_timeout = kIdleTimeout;
  t.keep_alive_pings = true;
  ws.set_option(t);
  ws.read_message_max(kMaxMessage);
  ws.auto_fragment(false);
  ws.binary(true);
}

// The sending half of a link: a bounded queue drained by write_loop on the link's executor.
template <class WS>
class LinkIo final : public MeshLinkSink, public std::enable_shared_from_this<LinkIo<WS>> {
 public:
  // `owner` keeps `ws` alive while the writer runs.
  LinkIo(WS& ws, std::shared_ptr<void> owner)
      : ws_(ws), owner_(std::move(owner)), wake_(ws.get_executor()) {
    wake_.expires_at(asio::steady_timer::time_point::max());
  }

  bool send(relay::Bytes&& frame) override {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_ || queue_.size() >= kMaxQueuedFrames ||
          queued_bytes_ + frame.size() > kMaxQueuedBytes) {
        return false;
      }
      queued_bytes_ += frame.size();
      queue_.push_back(std::move(frame));
      wake = waiting_;
      waiting_ = false;
    }
    if (wake)
      asio::post(wake_.get_executor(), [self = this->shared_from_this()] { self->wake_.cancel(); });
    return true;
  }

  void close() override {
    asio::post(wake_.get_executor(), [self = this->shared_from_this()] { self->close_now(); });
  }

  // On the link's executor.
  void close_now() {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
      queue_.clear();
      queued_bytes_ = 0;
    }
    auto& lowest = beast::get_lowest_layer(ws_);
    error_code ec;
    // A beast::tcp_stream (dialer) or a plain socket (acceptor).
    if constexpr (requires { lowest.socket(); }) {
      lowest.socket().close(ec);
    } else {
      lowest.close(ec);
    }
    wake_.cancel();
  }

  static asio::awaitable<void> write_loop(std::shared_ptr<LinkIo> self) {
    std::deque<relay::Bytes> batch;
    relay::Bytes merged;
    for (;;) {
      {
        std::lock_guard lock(self->mutex_);
        if (self->closed_) co_return;
        if (self->queue_.empty()) {
          self->waiting_ = true;
        } else {
          batch.swap(self->queue_);
          self->queued_bytes_ = 0;
        }
      }
      if (batch.empty()) {
        error_code ec;
        co_await self->wake_.async_wait(ec_token(ec));
        continue;
      }
      // Consecutive Forwards go out as one ForwardBatch message (one write here and one read at
      // the peer for many datagrams, §5.1); anything else as it is, in order.
      for (std::size_t i = 0; i < batch.size();) {
        const relay::Bytes* out = &batch[i];
        std::size_t next = i + 1;
        if (is_forward(batch[i]) && next < batch.size() && is_forward(batch[next])) {
          merged.clear();
          do {
            mesh::append_to_batch(merged, batch[i]);
            ++i;
          } while (i < batch.size() && is_forward(batch[i]) &&
                   merged.size() + mesh::batch_element_size(batch[i].size()) <= kBatchBytes);
          out = &merged;
          next = i;
        }
        error_code ec;
        co_await self->ws_.async_write(asio::buffer(*out), ec_token(ec));
        if (ec) {
          self->close_now();
          co_return;
        }
        i = next;
      }
      batch.clear();
    }
  }

 private:
  WS& ws_;
  std::shared_ptr<void> owner_;
  asio::steady_timer wake_;
  std::mutex mutex_;
  std::deque<relay::Bytes> queue_;
  std::size_t queued_bytes_ = 0;
  bool waiting_ = false;
  bool closed_ = false;
};

template <class WS>
asio::awaitable<bool> write_message(WS& ws, const relay::Bytes& frame) {
  error_code ec;
  co_await ws.async_write(asio::buffer(frame), ec_token(ec));
  co_return !ec;
}

// The next message decoded; nullopt (with `why`) on error or a frame that does not decode.
template <class WS>
asio::awaitable<std::optional<mesh::Frame>> read_frame(WS& ws, beast::flat_buffer& buf,
                                                       std::string& why) {
  buf.consume(buf.size());
  error_code ec;
  co_await ws.async_read(buf, ec_token(ec));
  if (ec) {
    why = ec.message();
    co_return std::nullopt;
  }
  auto data = static_cast<const std::uint8_t*>(buf.data().data());
  auto decoded = mesh::decode(relay::ByteSpan(data, buf.size()));
  if (auto* err = std::get_if<relay::DecodeError>(&decoded)) {
    why = std::string("bad frame: ") + std::string(relay::to_string(*err));
    co_return std::nullopt;
  }
  co_return std::get<mesh::Frame>(decoded);
}

// §4, acceptor side, after the WebSocket accept: Hello, then the dialer's Auth is checked and
// answered with Accept. False (logged, counted) if the dialer does not know the key.
template <class WS>
asio::awaitable<bool> accept_handshake(WS& ws, Mesh& mesh, RelayMetrics& metrics,
                                       const std::string& who) {
  mesh::Hello hello;
  hello.node = mesh.node_id();
  randombytes_buf(hello.nonce.data(), hello.nonce.size());
  // Results in locals, not `if (!co_await ...)`: GCC 12 miscompiles that form in places.
  const bool hello_sent = co_await write_message(ws, mesh::encode(hello));
  if (!hello_sent) co_return false;
  beast::flat_buffer buf;
  std::string why;
  auto frame = co_await read_frame(ws, buf, why);
  auto* auth = frame ? std::get_if<mesh::Auth>(&*frame) : nullptr;
  if (!auth) {
    log::warn("mesh: link from ", who, " refused: expected Auth (", frame ? "other frame" : why,
              ")");
    metrics.mesh_links_refused.fetch_add(1, std::memory_order_relaxed);
    co_return false;
  }
  if (!mesh::mac_equal(auth->mac, mesh::link_mac(mesh.psk(), mesh::Role::Dialer, hello, auth->node,
                                                 auth->nonce))) {
    log::warn("mesh: link from ", who, " refused: wrong key (MAC mismatch)");
    metrics.mesh_links_refused.fetch_add(1, std::memory_order_relaxed);
    co_return false;
  }
  mesh::Accept accept{
      mesh::link_mac(mesh.psk(), mesh::Role::Acceptor, hello, auth->node, auth->nonce)};
  const bool accepted = co_await write_message(ws, mesh::encode(accept));
  co_return accepted;
}

// §4, dialer side, after the WebSocket handshake. False (logged) if the peer does not prove the
// key, or is this node itself.
template <class WS>
asio::awaitable<bool> dial_handshake(WS& ws, Mesh& mesh, const std::string& who) {
  beast::flat_buffer buf;
  std::string why;
  auto frame = co_await read_frame(ws, buf, why);
  auto* hello = frame ? std::get_if<mesh::Hello>(&*frame) : nullptr;
  if (!hello) {
    log::warn("mesh: link to ", who, " failed: expected Hello (", frame ? "other frame" : why, ")");
    co_return false;
  }
  if (hello->version != mesh::kVersion) {
    log::warn("mesh: link to ", who, " failed: peer speaks version ", int(hello->version));
    co_return false;
  }
  if (hello->node == mesh.node_id()) {
    log::warn("mesh: ", who, " is this node itself; not linking to it");
    co_return false;
  }
  mesh::Auth auth;
  auth.node = mesh.node_id();
  randombytes_buf(auth.nonce.data(), auth.nonce.size());
  auth.mac = mesh::link_mac(mesh.psk(), mesh::Role::Dialer, *hello, auth.node, auth.nonce);
  const bool auth_sent = co_await write_message(ws, mesh::encode(auth));
  if (!auth_sent) co_return false;
  auto reply = co_await read_frame(ws, buf, why);
  auto* accept = reply ? std::get_if<mesh::Accept>(&*reply) : nullptr;
  if (!accept) {
    log::warn("mesh: link to ", who,
              " refused by the peer (wrong key?): ", reply ? "unexpected frame" : why);
    co_return false;
  }
  if (!mesh::mac_equal(accept->mac, mesh::link_mac(mesh.psk(), mesh::Role::Acceptor, *hello,
                                                   auth.node, auth.nonce))) {
    log::warn("mesh: link to ", who, " refused: the peer does not hold the key (MAC mismatch)");
    co_return false;
  }
  co_return true;
}

// §5.2: an authenticated incoming link. Presence goes out, Forward frames come in and are
// delivered locally. Returns when the link ends.
template <class WS>
asio::awaitable<void> serve_incoming(WS& ws, Mesh& mesh, std::shared_ptr<void> owner,
                                     const std::string& who) {
  auto link = std::make_shared<LinkIo<WS>>(ws, std::move(owner));
  asio::co_spawn(ws.get_executor(), LinkIo<WS>::write_loop(link), asio::detached);
  mesh.add_subscriber(link);
  log::info("mesh: link from ", who, " up");
  beast::flat_buffer buf;
  std::string why;
  for (;;) {
    auto frame = co_await read_frame(ws, buf, why);
    if (!frame) break;
    if (auto* f = std::get_if<mesh::Forward>(&*frame)) {
      mesh.deliver(*f);
    } else if (auto* b = std::get_if<mesh::ForwardBatch>(&*frame)) {
      for (const auto& each : b->forwards) mesh.deliver(each);
    } else {
      why = "unexpected frame type";
      break;
    }
  }
  mesh.remove_subscriber(link.get());
  link->close_now();
  log::info("mesh: link from ", who, " down (", why, ")");
}

// §5.3: an authenticated outgoing link. Presence comes in; `peer`'s datagrams go out through
// mesh.forward. Returns when the link ends.
template <class WS>
asio::awaitable<void> serve_outgoing(WS& ws, Mesh& mesh, std::size_t peer,
                                     std::shared_ptr<void> owner, const std::string& who) {
  auto link = std::make_shared<LinkIo<WS>>(ws, std::move(owner));
  asio::co_spawn(ws.get_executor(), LinkIo<WS>::write_loop(link), asio::detached);
  mesh.link_up(peer, link);
  log::info("mesh: link to ", who, " up");
  beast::flat_buffer buf;
  std::string why;
  for (;;) {
    auto frame = co_await read_frame(ws, buf, why);
    if (!frame) break;
    if (auto* p = std::get_if<mesh::Present>(&*frame)) {
      mesh.on_present(peer, p->endpoint, p->generation);
    } else if (auto* g = std::get_if<mesh::Gone>(&*frame)) {
      mesh.on_gone(peer, g->endpoint);
    } else if (std::holds_alternative<mesh::Synced>(*frame)) {
      mesh.on_synced(peer);
    } else {
      why = "unexpected frame type";
      break;
    }
  }
  link->close_now();
  mesh.link_down(peer);
  log::warn("mesh: link to ", who, " down (", why, ")");
}

}  // namespace iroh::server::meshlink
