// iroh-relay [--dev] [--config|--config-path|-c FILE] [--dns-config FILE] [--help] [--version]
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <cstdio>
#include <iostream>
#include <string>

#include "iroh/config.hpp"
#include "acme/acme_service.hpp"
#include "acme/certificate_store.hpp"
#include "core/bind_address.hpp"
#include "dns/dns_service.hpp"
#include "dns/doh.hpp"
#include "iroh/server/daemon.hpp"
#include "core/log.hpp"
#include "metrics_service.hpp"
#include "pkarr_http.hpp"
#include "pkarr_store_service.hpp"
#include "qad_thread_service.hpp"
#include "qad/quic_tls.hpp"
#include "status_page.hpp"
#include "stun_service.hpp"
#include "token_cli.hpp"

namespace {

constexpr const char* kUsage =
    "Usage: iroh-relay [--dev] [--config FILE] [--dns-config FILE] [--help] [--version]\n"
    "\n"
    "A self-hostable relay server for iroh endpoints.\n"
    "\n"
    "Options:\n"
    "  --dev                    plain HTTP on http_bind_addr (default [::]:3340), no TLS\n"
    "  -c, --config FILE        YAML configuration file (alias: --config-path); a .toml file\n"
    "                           is read in iroh-relay's own format\n"
    "  --dns-config FILE        iroh-dns-server's TOML file: address lookup (pkarr, DNS, DoH)\n"
    "                           as it configures it (docs/migrating.md)\n"
    "  -h, --help               print this help\n"
    "  -V, --version            print the version\n"
    "\n"
    "  iroh-relay token ...     issuer keys and capability tokens (iroh-relay token --help)\n"
    "\n"
    "Signals: SIGHUP reloads the config file (limits, access, log level/format, certificate;\n"
    "a bad file is rejected and the running config stays). SIGTERM/SIGINT drain: relay clients\n"
    "get Restarting, connections close, services stop, exit 0 within shutdown_grace_secs; a\n"
    "second SIGTERM/SIGINT exits at once with status 1.\n";

// Wired after every other service, so that the status page and the metrics listener see their
// metric families: `/`, `/index.html` and `/healthz` on the relay listener (the full status page)
// and, if enable_metrics, the metrics listener. `lookup_store_size` reports the address-lookup
// store's packet count when one is open (empty otherwise).
void add_status_and_metrics(iroh::server::Daemon& daemon,
                            std::function<std::optional<std::size_t>()> lookup_store_size,
                            std::function<std::string_view()> lookup_store_health) {
  const iroh::config::Config& config = daemon.config();
  iroh::server::StatusPageSources status;
  status.config = &config;
  status.relay = &daemon.metrics();
  status.registry = daemon.metrics_registry();
  status.lookup_store_size = lookup_store_size;
  status.lookup_store_health = std::move(lookup_store_health);
  // lookup_listeners (issue 17) answer /healthz (and the status page) like the relay listener.
  if (config.lookup_listeners.any())
    iroh::server::add_status_routes(daemon.lookup_router(), status);
  iroh::server::add_status_routes(daemon.router(), std::move(status));
  if (config.enable_metrics) {
    daemon.add_service(iroh::server::make_metrics_service(daemon, std::move(lookup_store_size)));
  }
}

// The services beside the relay's HTTP listeners, as the config enables them.
void add_configured_services(iroh::server::Daemon& daemon) {
  namespace asio = boost::asio;
  const iroh::config::Config& config = daemon.config();
  const bool acme = config.tls && config.tls->cert_mode == iroh::config::CertMode::LetsEncrypt;
  // First, so a cached certificate is installed before the other services start.
  if (acme) daemon.add_service(std::make_unique<iroh::server::acme::AcmeService>(daemon));
  // The lookup HTTPS listener's own ACME certificate (issue 17 item 2), its own order and cache.
  if (const auto& https = config.lookup_listeners.https;
      https && https->cert_mode == iroh::config::CertMode::LetsEncrypt) {
    daemon.add_service(std::make_unique<iroh::server::acme::AcmeService>(
        daemon, iroh::server::acme::AcmeTarget::Lookup));
  }
  if (config.stun.enabled) {
    iroh::server::StunOptions stun_options;
    stun_options.metrics_registry = daemon.metrics_registry();
    daemon.add_service(std::make_unique<iroh::server::StunService>(daemon.io_context(),
                                                                   config.stun, stun_options));
  }
  if (config.enable_quic_addr_discovery) {
    iroh::server::QadConfig qad;
    if (config.tls) {
      qad.bind_addr = iroh::server::resolve_bind_endpoint<asio::ip::udp::endpoint>(
          config.tls->quic_bind_addr, "tls.quic_bind_addr");
      if (acme) {
        // Replaced through Service::reload_certificate once the ACME service installs one.
        iroh::server::acme::PemPair pem = iroh::server::acme::startup_certificate(*config.tls);
        qad.certificate_pem = iroh::server::quic::PemCertificate{pem.chain_pem, pem.key_pem};
      } else if (config.tls->cert_mode == iroh::config::CertMode::SelfSigned) {
        qad.certificate_pem = iroh::server::quic::generate_self_signed_certificate(
            config.tls->hostname.empty() ? "localhost" : config.tls->hostname[0]);
        if (!qad.certificate_pem) throw std::runtime_error("qad: cannot generate a certificate");
      } else {
        qad.cert_path = config.tls->manual_cert_path.string();
        qad.key_path = config.tls->manual_key_path.string();
      }
    } else {
      // --dev without a tls section: QAD on port 7842 of the HTTP host, self-signed certificate
      // (iroh endpoints that verify it against web roots just fall back to /ping latency).
      qad.bind_addr = iroh::server::resolve_bind_endpoint<asio::ip::udp::endpoint>(
          iroh::config::SocketAddr{config.http_bind_addr.host, 7842}, "http_bind_addr");
      qad.certificate_pem = iroh::server::quic::generate_self_signed_certificate("localhost");
      if (!qad.certificate_pem) throw std::runtime_error("qad: cannot generate a certificate");
    }
    qad.log = [](std::string_view line) { iroh::log::debug("qad: ", line); };
    qad.metrics_registry = daemon.metrics_registry();
    const auto [qad_rate, qad_burst] = iroh::server::qad_new_connection_limit(config.limits);
    qad.new_connection_rate = qad_rate;
    qad.new_connection_burst = qad_burst;
    const auto [source_rate, source_burst] = iroh::server::qad_per_source_limit(config.limits);
    qad.per_source_rate = source_rate;
    qad.per_source_burst = source_burst;
    auto service = std::make_unique<iroh::server::QadThreadService>(std::move(qad));
    daemon.add_service(std::move(service));
  }
  std::function<std::optional<std::size_t>()> lookup_store_size;
  std::function<std::string_view()> lookup_store_health;
  if (config.pkarr.enabled || config.dns.enabled) {
    // Address lookup: one store (and one LookupMetrics) for the pkarr HTTP API and DNS/DoH.
    auto lookup = std::make_unique<iroh::server::PkarrStoreService>(
        daemon.io_context(), config, *daemon.metrics_registry());
    iroh::server::PkarrStoreService& pkarr_store = *lookup;
    daemon.add_service(std::move(lookup));
    // The store's maintained count (no table scan on the I/O thread, issue 19 item 7).
    lookup_store_size = pkarr_store.packet_count_source();
    lookup_store_health = pkarr_store.health_source();
    // Lookup on the plain HTTP listener too when it is not the relay listener already (TLS
    // mode) and the config asks for it (iroh-dns-server's [http] beside [https]).
    iroh::server::HttpRouter* plain = nullptr;
    if (config.lookup_on_http_listener && &daemon.plain_router() != &daemon.router()) {
      plain = &daemon.plain_router();
    }
    // And on lookup_listeners, when configured (issue 17 item 2).
    iroh::server::HttpRouter* own =
        config.lookup_listeners.any() ? &daemon.lookup_router() : nullptr;
    if (config.pkarr.enabled) {
      iroh::server::add_pkarr_routes(daemon.router(), pkarr_store, config.pkarr, {plain, own});
    }
    if (config.dns.enabled) {
      // Authoritative DNS (UDP + TCP on dns.bind_addr) and DoH at /dns-query, one handler.
      auto dns = std::make_shared<iroh::server::DnsHandler>(config, pkarr_store.store(),
                                                            &pkarr_store.metrics(),
                                                            config.zone_store.cache_capacity);
      daemon.add_service(std::make_unique<iroh::server::DnsService>(
          daemon.io_context(), config.dns, dns,
          iroh::server::DnsServiceOptions{.metrics_registry = daemon.metrics_registry()}));
      if (plain) iroh::server::add_doh_routes(*plain, dns);
      if (own) iroh::server::add_doh_routes(*own, dns);
      iroh::server::add_doh_routes(daemon.router(), std::move(dns));
    }
  }
  add_status_and_metrics(daemon, std::move(lookup_store_size), std::move(lookup_store_health));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "token") {
    return iroh::server::run_token_command(argc, argv);
  }
  bool dev = false;
  std::string config_path;
  std::string dns_config_path;  // iroh-dns-server's TOML (issue 17)
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--dev") {
      dev = true;
    } else if (arg == "--config" || arg == "--config-path" || arg == "-c") {
      if (i + 1 >= argc) {
        std::cerr << "iroh-relay: " << arg << " needs a file argument\n" << kUsage;
        return 2;
      }
      config_path = argv[++i];
    } else if (arg.starts_with("--config=") || arg.starts_with("--config-path=")) {
      config_path = arg.substr(arg.find('=') + 1);
    } else if (arg == "--dns-config") {
      if (i + 1 >= argc) {
        std::cerr << "iroh-relay: " << arg << " needs a file argument\n" << kUsage;
        return 2;
      }
      dns_config_path = argv[++i];
    } else if (arg.starts_with("--dns-config=")) {
      dns_config_path = arg.substr(arg.find('=') + 1);
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--version" || arg == "-V") {
      std::cout << "iroh-relay " IROH_RELAY_VERSION "\n";
      return 0;
    } else {
      std::cerr << "iroh-relay: unknown argument '" << arg << "'\n" << kUsage;
      return 2;
    }
  }

  iroh::config::Config config;
  try {
    config = iroh::config::load_files(config_path, dns_config_path, dev);
  } catch (const iroh::config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }

  if (!iroh::log::set_level(config.log_level)) {
    std::cerr << config.source.string() << ": log_level: unknown level '" << config.log_level
              << "'\n";
    return 2;
  }
  iroh::log::set_format(config.log_format);
  iroh::log::info("iroh-relay ", IROH_RELAY_VERSION, " starting (config ", config.source.string(),
                  config.dev ? ", dev mode" : "", ")");

  try {
    iroh::server::Daemon daemon(std::move(config));
    boost::asio::signal_set signals(daemon.io_context(), SIGINT, SIGTERM, SIGHUP);
    int stop_signals = 0;
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int signo) {
          if (ec) return;
          if (signo == SIGHUP) {
            if (config_path.empty() && dns_config_path.empty()) {
              iroh::log::warn("SIGHUP: no config file to reload (started without --config)");
            } else {
              iroh::log::info("SIGHUP: reloading ",
                              config_path.empty() ? dns_config_path : config_path);
              try {
                daemon.reload(iroh::config::load_files(config_path, dns_config_path, dev));
              } catch (const iroh::config::ConfigError& e) {
                iroh::log::error("reload rejected: ", e.what(), "; keeping the running config");
              }
            }
          } else if (++stop_signals == 1) {
            iroh::log::info("received signal ", signo, ", draining");
            daemon.request_stop();
          } else {
            iroh::log::warn("received signal ", signo, " again, exiting now");
            std::_Exit(1);
          }
          signals.async_wait(on_signal);
        };
    signals.async_wait(on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    add_configured_services(daemon);
    daemon.start();
    daemon.wait();
    daemon.drain_and_stop();
    iroh::log::info("stopped");
  } catch (const iroh::config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    iroh::log::error("fatal: ", e.what());
    return 1;
  }
  return 0;
}
