// iroh-relay [--dev] [--config|--config-path|-c FILE] [--dns-config FILE] [--help] [--version]
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli/token_cli.hpp"
#include "core/log.hpp"
#include "iroh/config.hpp"
#include "iroh/server/daemon.hpp"
#include "wiring.hpp"

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

// The command line: the files to load and --dev. `exit_code` is set when the process should exit
// at once (help, version, a usage error).
struct Options {
  bool dev = false;
  std::string config_path;
  std::string dns_config_path;  // iroh-dns-server's TOML (issue 17)
  std::optional<int> exit_code;
};

Options parse_options(int argc, char** argv) {
  Options o;
  auto usage_error = [&](const std::string& message) {
    std::cerr << "iroh-relay: " << message << "\n" << kUsage;
    o.exit_code = 2;
  };
  for (int i = 1; i < argc && !o.exit_code; ++i) {
    std::string arg = argv[i];
    if (arg == "--dev") {
      o.dev = true;
    } else if (arg == "--config" || arg == "--config-path" || arg == "-c" ||
               arg == "--dns-config") {
      if (i + 1 >= argc) {
        usage_error(arg + " needs a file argument");
        break;
      }
      (arg == "--dns-config" ? o.dns_config_path : o.config_path) = argv[++i];
    } else if (arg.starts_with("--config=") || arg.starts_with("--config-path=")) {
      o.config_path = arg.substr(arg.find('=') + 1);
    } else if (arg.starts_with("--dns-config=")) {
      o.dns_config_path = arg.substr(arg.find('=') + 1);
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      o.exit_code = 0;
    } else if (arg == "--version" || arg == "-V") {
      std::cout << "iroh-relay " IROH_RELAY_VERSION "\n";
      o.exit_code = 0;
    } else {
      usage_error("unknown argument '" + arg + "'");
    }
  }
  return o;
}

// SIGHUP reloads the config files; the first SIGTERM/SIGINT drains, a second one exits at once.
void watch_signals(boost::asio::signal_set& signals, iroh::server::Daemon& daemon,
                   const Options& o) {
  auto stop_signals = std::make_shared<int>(0);
  signals.async_wait(
      [&signals, &daemon, &o, stop_signals](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (signo == SIGHUP) {
          if (o.config_path.empty() && o.dns_config_path.empty()) {
            iroh::log::warn("SIGHUP: no config file to reload (started without --config)");
          } else {
            iroh::log::info("SIGHUP: reloading ",
                            o.config_path.empty() ? o.dns_config_path : o.config_path);
            try {
              daemon.reload(iroh::config::load_files(o.config_path, o.dns_config_path, o.dev));
            } catch (const iroh::config::ConfigError& e) {
              iroh::log::error("reload rejected: ", e.what(), "; keeping the running config");
            }
          }
        } else if (++*stop_signals == 1) {
          iroh::log::info("received signal ", signo, ", draining");
          daemon.request_stop();
        } else {
          iroh::log::warn("received signal ", signo, " again, exiting now");
          std::_Exit(1);
        }
        watch_signals(signals, daemon, o);
      });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "token") {
    return iroh::server::run_token_command(argc, argv);
  }
  const Options options = parse_options(argc, argv);
  if (options.exit_code) return *options.exit_code;

  iroh::config::Config config;
  try {
    config = iroh::config::load_files(options.config_path, options.dns_config_path, options.dev);
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
    watch_signals(signals, daemon, options);
    std::signal(SIGPIPE, SIG_IGN);
    iroh::server::add_configured_services(daemon);
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
