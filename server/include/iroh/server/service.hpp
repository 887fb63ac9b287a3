// The lifecycle every service of the daemon shares (design.md "Services") and the context a
// service is built from. In a header of its own so that services include this and not the daemon:
// the daemon and wiring.cpp sit above every service and no service takes a Daemon& (issue 14).
#pragma once

#include <prometheus/registry.h>

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "iroh/config.hpp"

namespace iroh::server {

// What a service is built from besides its config section: the executor its I/O runs on and the
// registry its Prometheus families go into (the metrics listener serialises it; it outlives every
// service). The logger is process-wide (core/log.hpp: one level and one format for the whole
// daemon, set from the config), so the context has no logger of its own to carry.
struct ServiceContext {
  boost::asio::io_context& io;
  std::shared_ptr<prometheus::Registry> registry;
};

// A service with the daemon's lifecycle. start() runs on the caller's thread after the relay
// listeners are bound and may post work onto ServiceContext::io; stop() must be idempotent.
class Service {
 public:
  virtual ~Service() = default;
  virtual std::string_view name() const = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
  // SIGHUP / Daemon::reload: apply the reloadable settings of `next` (already validated by the
  // config loader) without dropping anyone. Throw (std::exception) to reject it: the daemon then
  // keeps the old config everywhere it can. Default: nothing reloads.
  virtual void reload(const config::Config& /*next*/) {}
  // A new certificate chain + key (PEM text) for services that serve TLS (QAD). Called after the
  // relay accepted the pair; throw std::runtime_error if it cannot be used.
  virtual void reload_certificate(const std::string& /*cert_chain_pem*/,
                                  const std::string& /*key_pem*/) {}
};

}  // namespace iroh::server
