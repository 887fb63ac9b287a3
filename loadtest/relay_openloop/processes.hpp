// The processes under test: iroh-relay (plain HTTP or HTTPS) and nginx `stream` for the
// baselines, started as pinned children, and the self-signed certificate both serve.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "relay_openloop/streams.hpp"

namespace relay_openloop {

// YAML lines every relay started here gets (--relay-threads).
extern std::string g_relay_extra_yaml;

// ---- processes ---------------------------------------------------------------------------------

struct RelayProcess {
  std::unique_ptr<lt::ChildProcess> child;
  std::uint16_t port = 0;
  std::filesystem::path log;
};

// Plain: one HTTP listener serving everything. TLS: HTTPS listener (the plain one then only
// answers captive-portal checks, relay.md §2.1).
RelayProcess start_relay(const std::string& binary, const lt::TempDir& dir, bool tls, int cpu);

bool make_cert(const lt::TempDir& dir);

struct NginxProcess {
  std::unique_ptr<lt::ChildProcess> child;
  std::uint16_t plain_port = 0, tls_port = 0, tls_both_port = 0;
};

// nginx `stream` with one worker (the relay also gets one core): a plain listener and an `ssl`
// listener with the relay's certificate proxying to the plain sink (TLS termination: half the
// relay's crypto), and an `ssl` listener proxying with `proxy_ssl` to the TLS sink (decrypt and
// encrypt again, as the relay does between its sender's and receiver's TLS connections). Both
// TLS legs use the relay's suites in its order (kTls12Ciphers, kTls13Suites).
std::optional<NginxProcess> start_nginx(const std::string& binary, const std::string& module,
                                        const lt::TempDir& dir, std::uint16_t sink_port,
                                        std::uint16_t tls_sink_port, int cpu);

}  // namespace relay_openloop
