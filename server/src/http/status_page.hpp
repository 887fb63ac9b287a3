// The relay listener's `/` status page and `/healthz` (spec relay.md §2.2; address-lookup.md
// §4.1). `/` starts with the reference's index HTML byte for byte and appends a status section
// (version, uptime, services, relay clients and traffic, lookup store size, the counters other
// services keep in the shared registry). No external assets, no inline styles or scripts (the
// relay's Content-Security-Policy forbids them).
#pragma once

#include <prometheus/registry.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "iroh/config.hpp"
#include "iroh/server/http_router.hpp"
#include "iroh/server/metrics.hpp"

namespace iroh::server {

struct StatusPageSources {
  const config::Config* config = nullptr;  // services enabled; may be null
  const RelayMetrics* relay = nullptr;     // clients and traffic; may be null
  // Other services' counters and gauges (summed over their labels); may be null.
  std::shared_ptr<prometheus::Registry> registry;
  // Signed packets in the address-lookup store, when one is open.
  std::function<std::optional<std::size_t>()> lookup_store_size;
  // "ok", "degraded" or "unavailable" (issue 19 item 3): the `store` field of /healthz.
  std::function<std::string_view()> lookup_store_health;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// Registers GET /, /index.html and /healthz on `router`, replacing earlier registrations.
void add_status_routes(HttpRouter& router, StatusPageSources sources);
// The same, reading `sources` at each request: the daemon registers the routes once at
// construction and completes the sources (the lookup store's) before it starts.
void add_status_routes(HttpRouter& router, std::shared_ptr<const StatusPageSources> sources);

// Exposed for tests.
std::string render_status_page(const StatusPageSources& sources);
// `store`: the lookup store's health, when there is a store.
std::string render_healthz(std::chrono::steady_clock::duration uptime,
                           std::optional<std::string_view> store = std::nullopt);

}  // namespace iroh::server
