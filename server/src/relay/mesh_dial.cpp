// The dialer side of the relay mesh (issue 16, docs/mesh.md §3): one coroutine per peer that
// connects to the peer's /relay/mesh, authenticates, serves the link until it drops, and
// redials with exponential backoff.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "relay/mesh.hpp"
#include "relay/mesh_link.hpp"

namespace iroh::server {

namespace ssl = boost::asio::ssl;

namespace {

using namespace meshlink;
using tcp = asio::ip::tcp;

constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kBackoffMin = std::chrono::milliseconds(100);
constexpr auto kBackoffMax = std::chrono::seconds(5);

template <class WS>
void set_client_decorator(WS& ws) {
  ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
    req.set(beast::http::field::user_agent, "iroh-relay-mesh");
    req.set(beast::http::field::sec_websocket_protocol, mesh::kSubprotocol);
  }));
}

// One connection attempt; true if the link was authenticated (whatever ended it later).
template <bool kTls>
asio::awaitable<bool> dial_once(Mesh& mesh, std::size_t peer_index, ssl::context* tls) {
  const config::MeshPeer& peer = mesh.config().peers[peer_index];
  const std::string& who = peer.url;
  auto ex = co_await asio::this_coro::executor;
  error_code ec;
  tcp::resolver resolver(ex);
  auto results =
      co_await resolver.async_resolve(peer.host, std::to_string(peer.port), ec_token(ec));
  if (ec) {
    log::debug("mesh: resolving ", who, " failed: ", ec.message());
    co_return false;
  }
  using Lowest = beast::tcp_stream;
  using WS = std::conditional_t<kTls, websocket::stream<beast::ssl_stream<Lowest>>,
                                websocket::stream<Lowest>>;
  std::shared_ptr<WS> ws;
  (void)tls;  // plain links have none
  if constexpr (kTls) {
    ws = std::make_shared<WS>(ex, *tls);
  } else {
    ws = std::make_shared<WS>(ex);
  }
  auto& lowest = beast::get_lowest_layer(*ws);
  lowest.expires_after(kConnectTimeout);
  co_await lowest.async_connect(results, ec_token(ec));
  if (ec) {
    log::debug("mesh: connecting to ", who, " failed: ", ec.message());
    co_return false;
  }
  lowest.socket().set_option(tcp::no_delay(true), ec);
  if constexpr (kTls) {
    // SNI and certificate name check against the peer's host name.
    SSL_set_tlsext_host_name(ws->next_layer().native_handle(), peer.host.c_str());
    ws->next_layer().set_verify_callback(ssl::host_name_verification(peer.host));
    co_await ws->next_layer().async_handshake(ssl::stream_base::client, ec_token(ec));
    if (ec) {
      log::warn("mesh: TLS handshake with ", who, " failed: ", ec.message());
      co_return false;
    }
  }
  lowest.expires_never();
  set_link_options(*ws, beast::role_type::client);
  set_client_decorator(*ws);
  std::string host = peer.host.find(':') != std::string::npos ? "[" + peer.host + "]" : peer.host;
  host += ":" + std::to_string(peer.port);
  websocket::response_type res;
  co_await ws->async_handshake(res, host, std::string(mesh::kPath), ec_token(ec));
  if (ec) {
    log::warn("mesh: upgrade at ", who, " failed: ", ec.message(), " (HTTP ", res.result_int(),
              ")");
    co_return false;
  }
  const bool authenticated = co_await dial_handshake(*ws, mesh, who);
  if (!authenticated) co_return false;
  co_await serve_outgoing(*ws, mesh, peer_index, ws, who);
  co_return true;
}

asio::awaitable<void> dial_loop(Mesh& mesh, std::size_t peer, std::shared_ptr<ssl::context> tls) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  mesh.set_dial_timer(peer, &timer);
  std::chrono::milliseconds backoff = kBackoffMin;
  while (!mesh.stopping()) {
    bool linked = false;
    try {
      if (mesh.config().peers[peer].tls) {
        linked = co_await dial_once<true>(mesh, peer, tls.get());
      } else {
        linked = co_await dial_once<false>(mesh, peer, nullptr);
      }
    } catch (const std::exception& e) {
      log::warn("mesh: link to ", mesh.config().peers[peer].url, " failed: ", e.what());
    }
    if (linked) backoff = kBackoffMin;
    if (mesh.stopping()) break;
    // Jitter, so that nodes restarted together do not redial in lockstep.
    auto wait = backoff / 2 + std::chrono::milliseconds(randombytes_uniform(
                                  std::uint32_t(std::max<std::int64_t>(1, backoff.count() / 2))));
    timer.expires_after(wait);
    error_code ec;
    co_await timer.async_wait(ec_token(ec));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
  }
}

}  // namespace

void Mesh::start(asio::io_context& ioc) {
  bool any_tls = false;
  for (const auto& p : config_.peers) any_tls = any_tls || p.tls;
  if (any_tls && !client_tls_) {
    client_tls_ = std::make_shared<ssl::context>(ssl::context::tls_client);
    client_tls_->set_default_verify_paths();
    client_tls_->set_verify_mode(ssl::verify_peer);
  }
  dial_ioc_ = &ioc;
  for (std::size_t i = 0; i < config_.peers.size(); ++i) {
    asio::co_spawn(ioc, dial_loop(*this, i, client_tls_), asio::detached);
  }
}

}  // namespace iroh::server
