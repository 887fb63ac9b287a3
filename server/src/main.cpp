// iroh-relay [--dev] [--config|--config-path|-c FILE] [--help] [--version]
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "iroh/config.hpp"
#include "bind_address.hpp"
#include "iroh/server/daemon.hpp"
#include "log.hpp"
#include "qad_thread_service.hpp"
#include "qad/quic_tls.hpp"
#include "stun_service.hpp"

#ifndef IROH_RELAY_VERSION
#define IROH_RELAY_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kUsage =
    "Usage: iroh-relay [--dev] [--config FILE] [--help] [--version]\n"
    "\n"
    "A self-hostable relay server for iroh endpoints.\n"
    "\n"
    "Options:\n"
    "  --dev                    plain HTTP on http_bind_addr (default [::]:3340), no TLS\n"
    "  -c, --config FILE        YAML configuration file (alias: --config-path)\n"
    "  -h, --help               print this help\n"
    "  -V, --version            print the version\n";

// The services beside the relay's HTTP listeners, as the config enables them.
void add_configured_services(iroh::server::Daemon& daemon) {
  namespace asio = boost::asio;
  const iroh::config::Config& config = daemon.config();
  if (config.stun.enabled) {
    daemon.add_service(
        std::make_unique<iroh::server::StunService>(daemon.io_context(), config.stun));
  }
  if (config.enable_quic_addr_discovery) {
    iroh::server::QadConfig qad;
    if (config.tls) {
      qad.bind_addr = iroh::server::resolve_bind_endpoint<asio::ip::udp::endpoint>(
          config.tls->quic_bind_addr, "tls.quic_bind_addr");
      qad.cert_path = config.tls->manual_cert_path.string();
      qad.key_path = config.tls->manual_key_path.string();
    } else {
      // --dev without a tls section: QAD on port 7842 of the HTTP host, self-signed certificate
      // (iroh endpoints that verify it against web roots just fall back to /ping latency).
      qad.bind_addr = iroh::server::resolve_bind_endpoint<asio::ip::udp::endpoint>(
          iroh::config::SocketAddr{config.http_bind_addr.host, 7842}, "http_bind_addr");
      qad.certificate_pem = iroh::server::quic::generate_self_signed_certificate("localhost");
      if (!qad.certificate_pem) throw std::runtime_error("qad: cannot generate a certificate");
    }
    qad.log = [](std::string_view line) { iroh::log::debug("qad: ", line); };
    auto service = std::make_unique<iroh::server::QadThreadService>(std::move(qad));
    daemon.add_service(std::move(service));
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool dev = false;
  std::string config_path;
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
    if (!config_path.empty()) {
      config = iroh::config::load_file(config_path, dev);
    } else if (dev) {
      config = iroh::config::dev_default();
    } else {
      // Like the reference: no config file means the built-in defaults (plain HTTP on [::]:80).
      config.source = "<defaults>";
    }
  } catch (const iroh::config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }

  if (!iroh::log::set_level(config.log_level)) {
    std::cerr << config.source.string() << ": log_level: unknown level '" << config.log_level
              << "'\n";
    return 2;
  }
  iroh::log::info("iroh-relay ", IROH_RELAY_VERSION, " starting (config ", config.source.string(),
                  config.dev ? ", dev mode" : "", ")");

  try {
    iroh::server::Daemon daemon(std::move(config));
    boost::asio::signal_set signals(daemon.io_context(), SIGINT, SIGTERM);
    signals.async_wait([&daemon](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      iroh::log::info("received signal ", signo, ", shutting down");
      daemon.request_stop();
    });
    std::signal(SIGPIPE, SIG_IGN);
    add_configured_services(daemon);
    daemon.start();
    daemon.wait();
    daemon.stop();
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
