// --config and --dns-config together: one daemon from iroh-relay's and iroh-dns-server's files.
#include "config_detail.hpp"
#include "iroh/config.hpp"

namespace iroh::config {

Config load_files(const std::filesystem::path& relay, const std::filesystem::path& dns, bool dev) {
  Config cfg;
  if (!relay.empty()) {
    cfg = load_file(relay, dev);
  } else if (dev) {
    cfg = dev_default();
  } else {
    // Like the reference: no config file means the built-in defaults (plain HTTP on [::]:80).
    cfg.source = "<defaults>";
  }
  if (dns.empty()) return cfg;
  const std::string name = dns.string();
  if (dns.extension() != ".toml") {
    throw ConfigError(name, 0, "",
                      "--dns-config reads iroh-dns-server's TOML format (a .toml file); in YAML "
                      "the address lookup keys go in the --config file");
  }
  std::string text = detail::read_config_text(dns);
  if (detail::blank_or_comments(text)) throw ConfigError(name, 0, "", "empty document");
  apply_dns_toml(text, name, cfg, !relay.empty());
  if (relay.empty()) cfg.source = dns;
  if (relay.empty() && !dev) {
    // iroh-dns-server relays nothing; the relay endpoint on its listeners refuses everyone.
    cfg.access = AccessConfig{};
    cfg.access.mode = AccessMode::Allowlist;
  }
  return cfg;
}

}  // namespace iroh::config
