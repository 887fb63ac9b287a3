#include "relay/listener.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "core/log.hpp"
#include "relay/connection.hpp"
#include "relay/connection_impl.hpp"

namespace iroh::server {

namespace {

// Limits are checked cheapest first; returns the reason a connection is refused, if it is.
// `counted_ip` / `pre_auth_ip` are set for what was counted.
const char* admit(RelayServiceState& state, ListenerRole role, const config::Limits& limits,
                  const asio::ip::address& ip, std::optional<asio::ip::address>& counted_ip,
                  std::optional<asio::ip::address>& pre_auth_ip) {
  if (role == ListenerRole::RelayService) {
    if (state.metrics.open_connections.load(std::memory_order_relaxed) >=
        std::int64_t(limits.max_connections)) {
      return "max_connections";
    }
    if (!state.take_accept_token(limits)) return "accept_conn_limit";
  }
  if (const char* refused = state.take_pre_auth(ip, limits)) return refused;
  pre_auth_ip = ip;
  if (role == ListenerRole::RelayService && limits.max_connections_per_ip) {
    if (!state.add_ip(ip, limits)) {
      state.release_pre_auth(ip);
      pre_auth_ip.reset();
      return "max_connections_per_ip";
    }
    counted_ip = ip;
  }
  return nullptr;
}

// Hands an admitted socket to a new connection, which runs on the socket's executor.
void start_connection(const std::shared_ptr<RelayServiceState>& state,
                      const RelayListener& listener, std::shared_ptr<const RelaySettings> settings,
                      tcp::socket socket, std::optional<asio::ip::address> counted_ip,
                      std::optional<asio::ip::address> pre_auth_ip) {
  if (listener.tls) {
    auto ctx =
        listener.role == ListenerRole::Lookup ? state->lookup_tls_context() : state->tls_context();
    auto& ctx_ref = *ctx;
    auto conn = std::make_shared<Connection<TlsStream>>(
        state, listener.role, std::move(settings), std::move(ctx), std::move(counted_ip),
        std::move(pre_auth_ip), listener.worker, std::move(socket), ctx_ref);
    asio::co_spawn(conn->executor(), conn->run(conn), asio::detached);
  } else {
    auto conn = std::make_shared<Connection<PlainStream>>(
        state, listener.role, std::move(settings), nullptr, std::move(counted_ip),
        std::move(pre_auth_ip), listener.worker, std::move(socket));
    asio::co_spawn(conn->executor(), conn->run(conn), asio::detached);
  }
}

}  // namespace

asio::awaitable<void> accept_loop(std::shared_ptr<RelayServiceState> state,
                                  RelayListener& listener) {
  for (;;) {
    // The worker's loop runs on one thread: the connection needs no strand.
    tcp::socket socket(listener.acceptor.get_executor());
    error_code ec;
    co_await listener.acceptor.async_accept(socket, ec_token(ec));
    if (state->stopping.load()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !listener.acceptor.is_open()) co_return;
      log::warn("accept failed: ", ec.message());
      // e.g. EMFILE: back off instead of spinning.
      asio::steady_timer backoff(listener.acceptor.get_executor(), 50ms);
      co_await backoff.async_wait(ec_token(ec));
      continue;
    }
    auto settings = state->settings();
    auto peer = socket.remote_endpoint(ec);
    if (ec) {
      // Gone before we looked.
      socket.close(ec);
      continue;
    }
    std::optional<asio::ip::address> counted_ip, pre_auth_ip;
    // A rejected connection is closed without a response.
    if (const char* rejected = admit(*state, listener.role, settings->limits, counted_address(peer),
                                     counted_ip, pre_auth_ip)) {
      log::debug("connection rejected (", rejected, ")");
      state->metrics.connections_rejected.fetch_add(1, std::memory_order_relaxed);
      socket.close(ec);
      continue;
    }
    start_connection(state, listener, std::move(settings), std::move(socket), std::move(counted_ip),
                     std::move(pre_auth_ip));
  }
}

}  // namespace iroh::server
