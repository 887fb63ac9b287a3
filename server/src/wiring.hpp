// Builds the services the config enables and adds them to the daemon (issue 14: main.cpp is the
// command line only; this is the one place that knows every service). The relay itself is built
// by the Daemon, with the certificate it picked (certificate.hpp); this hands the same
// certificate to QAD and the daemon's reload_certificate to ACME.
#pragma once

#include "iroh/server/daemon.hpp"

namespace iroh::server {

// In start order: ACME (so a cached certificate is installed before the others start), STUN,
// QAD, the address-lookup store with pkarr HTTP, DNS and DoH, then the status routes and the
// metrics listener (last, so that they see every metric family). Call before daemon.start().
// Throws config::ConfigError / std::runtime_error for settings that cannot be served.
void add_configured_services(Daemon& daemon);

}  // namespace iroh::server
