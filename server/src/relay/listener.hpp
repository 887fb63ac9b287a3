// The relay's TCP listeners (spec relay.md §2.1): the relay-service listener (HTTPS in TLS mode,
// else plain HTTP) and, in TLS mode, the plain captive-portal listener. The accept loop applies
// the accept-time limits and hands each socket to a Connection.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "relay/relay_state.hpp"

namespace iroh::server {

struct RelayListener {
  boost::asio::ip::tcp::acceptor acceptor;
  ListenerRole role;
  bool tls;
  unsigned worker = 0;  // the relay worker whose loop the acceptor and its connections run on
};

// Accepts on `listener` until it is closed or the service stops.
boost::asio::awaitable<void> accept_loop(std::shared_ptr<RelayServiceState> state,
                                         RelayListener& listener);

}  // namespace iroh::server
