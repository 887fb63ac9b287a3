// The HTTP side of the relay listeners (spec relay.md §2, §3.1): the built-in routes (status
// pages, /ping, /robots.txt, the captive-portal check of §2.4). The upgrade check itself and the
// formatting helpers are declared in relay_service.hpp (unit tests use them).
#pragma once

#include "relay/relay_state.hpp"

namespace iroh::server {

// `plain_mode`: the relay listener is plain HTTP, so it answers /generate_204 itself.
void register_builtin_routes(RelayServiceState& state, bool plain_mode);

}  // namespace iroh::server
