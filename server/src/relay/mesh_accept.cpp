// The acceptor side of a relay mesh link (issue 16, docs/mesh.md §3-§5): GET /relay/mesh on the
// relay listener, upgraded to a WebSocket, authenticated with the pre-shared key, then served by
// relay/mesh_link.hpp for as long as it lasts.
#include "core/log.hpp"
#include "relay/connection_impl.hpp"
#include "relay/mesh_link.hpp"
#include "relay/relay_service.hpp"

namespace iroh::server {

template <class Stream>
asio::awaitable<void> Connection<Stream>::serve_mesh_link(HttpRequest& req) {
  const std::string who = peer_text();
  if (buffer_.size() != 0) {
    log::debug("mesh: connection from ", who, ": data after the upgrade request");
    co_return;
  }
  // A mesh link keeps Beast's WebSocket (pings, idle timeout) over the connection's stream; a
  // member, so that the link's writer, which the connection owns, never outlives it.
  mesh_ws_ = std::make_unique<websocket::stream<Stream&>>(stream_);
  auto& ws = *mesh_ws_;
  meshlink::set_link_options(ws, boost::beast::role_type::server);
  ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
    res.set(http::field::server, "iroh-relay");
    res.set(http::field::sec_websocket_protocol, mesh::kSubprotocol);
    res.set(http::field::date, http_date());
    add_security_headers(res.base());
  }));
  error_code ec;
  co_await ws.async_accept(req, ec_token(ec));
  if (ec) {
    log::debug("mesh: websocket accept from ", who, " failed: ", ec.message());
    co_return;
  }
  socket().set_option(tcp::no_delay(true), ec);
  const bool authenticated =
      co_await meshlink::accept_handshake(ws, *state_.mesh, state_.metrics, who);
  if (!authenticated) co_return;
  // Authenticated: no handshake deadline, no pre-auth reservation any more.
  watchdog_.cancel();
  release_pre_auth();
  co_await meshlink::serve_incoming(ws, *state_.mesh, this->shared_from_this(), who);
}

#define IROH_INSTANTIATE_MESH_ACCEPT(S) \
  template asio::awaitable<void> Connection<S>::serve_mesh_link(HttpRequest&);
IROH_RELAY_FOR_EACH_STREAM(IROH_INSTANTIATE_MESH_ACCEPT)

}  // namespace iroh::server
