#include "wiring.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "acme/acme_service.hpp"
#include "core/bind_address.hpp"
#include "core/log.hpp"
#include "dns/dns_service.hpp"
#include "dns/doh.hpp"
#include "lookup/pkarr_http.hpp"
#include "lookup/pkarr_store_service.hpp"
#include "metrics/metrics_service.hpp"
#include "qad/qad_thread_service.hpp"
#include "stun/stun_service.hpp"

namespace iroh::server {
namespace {

namespace asio = boost::asio;

// What the status page and the metrics listener read from the address-lookup store, when one
// is open (empty functions otherwise).
struct LookupSources {
  std::function<std::optional<std::size_t>()> store_size;
  std::function<std::string_view()> store_health;
};

ServiceContext context_of(Daemon& daemon) {
  return ServiceContext{daemon.io_context(), daemon.metrics_registry()};
}

// Wired after every other service, so that the metrics listener sees every metric family. The
// status routes themselves are the daemon's (registered once); they get the lookup store's part.
void add_status_and_metrics(Daemon& daemon, LookupSources lookup) {
  const config::Config& config = daemon.config();
  daemon.set_lookup_status(lookup.store_size, std::move(lookup.store_health));
  if (config.enable_metrics) {
    daemon.add_service(make_metrics_service(
        context_of(daemon), config.metrics_bind_addr, daemon.metrics(),
        [&daemon] { return daemon.relay_queue_depth(); }, std::move(lookup.store_size)));
  }
}

// QAD serves the certificate the daemon picked (the relay's: one certificate for both, later
// ones through Service::reload_certificate). --dev without a tls section: a self-signed one on
// the default QUIC port of the HTTP host (iroh endpoints that verify it against web roots just
// fall back to /ping latency).
QadConfig qad_config(Daemon& daemon) {
  const config::Config& config = daemon.config();
  QadConfig qad;
  if (config.tls) {
    qad.bind_addr = resolve_bind_endpoint<asio::ip::udp::endpoint>(config.tls->quic_bind_addr,
                                                                   "tls.quic_bind_addr");
    const std::optional<PemPair>& pem = daemon.certificate();
    if (!pem) throw std::logic_error("qad: the daemon picked no certificate");
    qad.certificate_pem = quic::PemCertificate{pem->chain_pem, pem->key_pem};
  } else {
    qad.bind_addr = resolve_bind_endpoint<asio::ip::udp::endpoint>(
        config::SocketAddr{config.http_bind_addr.host, config::kDefaultQuicPort}, "http_bind_addr");
    qad.certificate_pem = quic::generate_self_signed_certificate("localhost");
    if (!qad.certificate_pem) throw std::runtime_error("qad: cannot generate a certificate");
  }
  qad.log = [](std::string_view line) { log::debug("qad: ", line); };
  qad.metrics_registry = daemon.metrics_registry();
  const auto [qad_rate, qad_burst] = qad_new_connection_limit(config.limits);
  qad.new_connection_rate = qad_rate;
  qad.new_connection_burst = qad_burst;
  const auto [source_rate, source_burst] = qad_per_source_limit(config.limits);
  qad.per_source_rate = source_rate;
  qad.per_source_burst = source_burst;
  return qad;
}

// Address lookup: one store (and one LookupMetrics) for the pkarr HTTP API and DNS/DoH, served
// on the relay router, the plain HTTP listener when it is not the relay listener already (TLS
// mode) and the config asks for it (iroh-dns-server's [http] beside [https]), and the
// lookup_listeners when configured (issue 17 item 2).
LookupSources add_lookup(Daemon& daemon) {
  const config::Config& config = daemon.config();
  auto lookup =
      std::make_unique<PkarrStoreService>(daemon.io_context(), config, *daemon.metrics_registry());
  PkarrStoreService& pkarr_store = *lookup;
  daemon.add_service(std::move(lookup));
  HttpRouter* plain = nullptr;
  if (config.lookup_on_http_listener && &daemon.plain_router() != &daemon.router()) {
    plain = &daemon.plain_router();
  }
  HttpRouter* own = config.lookup_listeners.any() ? &daemon.lookup_router() : nullptr;
  if (config.pkarr.enabled) {
    add_pkarr_routes(daemon.router(), pkarr_store, config.pkarr, {plain, own});
  }
  if (config.dns.enabled) {
    // Authoritative DNS (UDP + TCP on dns.bind_addr) and DoH at /dns-query, one handler.
    auto dns = std::make_shared<DnsHandler>(config, pkarr_store.store(), &pkarr_store.metrics(),
                                            config.zone_store.cache_capacity);
    daemon.add_service(std::make_unique<DnsService>(
        daemon.io_context(), config.dns, dns,
        DnsServiceOptions{.metrics_registry = daemon.metrics_registry()}));
    if (plain) add_doh_routes(*plain, dns);
    if (own) add_doh_routes(*own, dns);
    add_doh_routes(daemon.router(), std::move(dns));
  }
  // The store's maintained count (no table scan on the I/O thread, issue 19 item 7).
  return LookupSources{pkarr_store.packet_count_source(), pkarr_store.health_source()};
}

}  // namespace

void add_configured_services(Daemon& daemon) {
  const config::Config& config = daemon.config();
  // ACME first, so a cached certificate is installed before the other services start.
  const bool relay_acme = config.tls && config.tls->cert_mode == config::CertMode::LetsEncrypt;
  if (relay_acme) {
    daemon.add_service(std::make_unique<acme::AcmeService>(
        context_of(daemon), config, acme::AcmeTarget::Relay,
        std::vector<HttpRouter*>{&daemon.plain_router()},
        [&daemon](const PemPair& pem) { daemon.reload_certificate(pem.chain_pem, pem.key_pem); }));
  }
  // The lookup HTTPS listener's own ACME certificate (issue 17 item 2), its own order and cache.
  if (const auto& https = config.lookup_listeners.https;
      https && https->cert_mode == config::CertMode::LetsEncrypt) {
    // Its HTTP-01 validator comes to port 80 of its domains: the lookup HTTP listener
    // (iroh-dns-server's [http]) when there is one, and the daemon's plain listener unless the
    // relay's ACME service has added the (process-wide) route there already.
    std::vector<HttpRouter*> routers;
    if (config.lookup_listeners.http_bind_addr) routers.push_back(&daemon.lookup_router());
    if (!relay_acme) routers.push_back(&daemon.plain_router());
    daemon.add_service(std::make_unique<acme::AcmeService>(
        context_of(daemon), config, acme::AcmeTarget::Lookup, routers,
        [&daemon](const PemPair& pem) {
          daemon.reload_lookup_certificate(pem.chain_pem, pem.key_pem);
        }));
  }
  if (config.stun.enabled) {
    StunOptions stun_options;
    stun_options.metrics_registry = daemon.metrics_registry();
    daemon.add_service(
        std::make_unique<StunService>(daemon.io_context(), config.stun, stun_options));
  }
  if (config.enable_quic_addr_discovery) {
    daemon.add_service(std::make_unique<QadThreadService>(qad_config(daemon)));
  }
  LookupSources lookup;
  if (config.pkarr.enabled || config.dns.enabled) lookup = add_lookup(daemon);
  add_status_and_metrics(daemon, std::move(lookup));
}

}  // namespace iroh::server
