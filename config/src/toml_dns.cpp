// iroh-dns-server's TOML config file (iroh 1.0.3, iroh-dns-server/src/config.rs `Config`) on top
// of the daemon's Config: address lookup (pkarr PUT/GET, DNS, DoH) with the reference's keys and
// defaults (spec address-lookup.md §8). With a relay config, an [http]/[https] on the relay's own
// addresses joins those listeners; one elsewhere becomes a lookup listener of its own
// (lookup_listeners, issue 17 item 2) with its own certificate. A [metrics] listener apart from
// the relay's is refused with the reason, never dropped. Mapping: docs/migrating.md.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "config_detail.hpp"
#include "iroh/config.hpp"
#include "toml_reader.hpp"

namespace iroh::config {
namespace {

using detail::TomlReader;
using Item = TomlReader::Item;

constexpr const char* kHint = "; see docs/migrating.md";
constexpr const char* kOwnListener = "a metrics listener apart from the relay's is not supported: ";

const Item* find(const TomlReader::Section& s, std::string_view key) {
  auto it = s.find(key);
  return it == s.end() ? nullptr : &it->second;
}

// iroh-dns-server's data directory when neither data_dir nor IROH_DNS_DATA_DIR is set:
// dirs_next::data_dir() (XDG_DATA_HOME, else ~/.local/share) + "iroh-dns".
std::filesystem::path default_data_dir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg == '/') {
    return std::filesystem::path(xdg) / "iroh-dns";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return std::filesystem::path(home) / ".local/share/iroh-dns";
  }
  return "/var/lib/iroh-dns";
}

class DnsTomlLoader {
 public:
  DnsTomlLoader(const std::string& name, Config& cfg, bool relay_file)
      : r_(name, kHint), cfg_(cfg), relay_file_(relay_file) {}

  void load(std::string_view text) {
    Item root = r_.parse(text);
    auto top = r_.read_table(root, {"http", "https", "dns", "metrics", "mainline", "zone_store",
                                    "pkarr_put_rate_limit", "data_dir"});
    if (relay_file_ && !cfg_.dev && (cfg_.pkarr.enabled || cfg_.dns.enabled)) {
      r_.fail(0, "",
              "address lookup is configured in both files (" + cfg_.source.string() +
                  " sets enable_pkarr or enable_dns): keep it in one of them");
    }
    cfg_.pkarr.enabled = true;
    cfg_.dns.enabled = true;

    cfg_.pkarr.put_rate_limit = PutRateLimitMode::Simple;
    if (auto* f = find(top, "pkarr_put_rate_limit")) {
      std::string mode = r_.as_string(*f);
      if (mode == "disabled") {
        cfg_.pkarr.put_rate_limit = PutRateLimitMode::Disabled;
      } else if (mode == "simple") {
        cfg_.pkarr.put_rate_limit = PutRateLimitMode::Simple;
      } else if (mode == "smart") {
        cfg_.pkarr.put_rate_limit = PutRateLimitMode::Smart;
      } else {
        r_.fail(f->line, f->path,
                "unknown rate limit mode " + detail::in_quotes(mode) +
                    " (expected \"disabled\", \"simple\" or \"smart\")");
      }
    }
    // iroh-dns-server's order: data_dir, then IROH_DNS_DATA_DIR, then the platform data dir.
    std::filesystem::path data_dir;
    if (auto* f = find(top, "data_dir")) {
      data_dir = r_.as_string(*f);
    } else if (const char* env = std::getenv("IROH_DNS_DATA_DIR"); env && *env) {
      data_dir = env;
    } else {
      data_dir = default_data_dir();
    }
    cfg_.data_dir = data_dir;
    // Our SQLite store; iroh-dns-server's redb file (signed-packets-1.db) is not read.
    cfg_.zone_store.path = data_dir / "pkarr.sqlite3";

    const Item* http = find(top, "http");
    const Item* https = find(top, "https");
    if (!http && !https) {
      r_.fail(0, "http",
              "either [http] or [https] is required (iroh-dns-server: \"Either http or https "
              "config is required\")");
    }
    if (http) read_http(*http);
    if (https) read_https(*https, data_dir / "cert_cache");

    const Item* dns = find(top, "dns");
    if (!dns) r_.fail(0, "dns", "required section [dns] is missing");
    read_dns(*dns);
    read_metrics(find(top, "metrics"));
    if (auto* f = find(top, "zone_store")) read_zone_store(*f);
    if (auto* f = find(top, "mainline")) read_mainline(*f);
  }

 private:
  SocketAddr listener_addr(const TomlReader::Section& s, const Item& at) {
    const Item* port = find(s, "port");
    if (!port) r_.fail(at.line, at.path + ".port", "required key is missing");
    SocketAddr addr{"::", static_cast<std::uint16_t>(r_.as_uint(*port, 0, 65535))};
    if (auto* f = find(s, "bind_addr")) addr.host = r_.as_ip(*f);
    return addr;
  }

  void read_http(const Item& at) {
    auto s = r_.read_table(at, {"port", "bind_addr"});
    SocketAddr addr = listener_addr(s, at);
    if (!relay_file_) {
      // iroh-dns-server serves everything on both listeners; with [https] too the daemon's plain
      // listener would otherwise have only the captive portal (see load()).
      cfg_.http_bind_addr = addr;
      cfg_.lookup_on_http_listener = true;
      return;
    }
    const bool relay_tls = cfg_.tls && !cfg_.tls->dangerous_http_only && !cfg_.dev;
    if (!detail::same_addr(addr, cfg_.http_bind_addr)) {
      // A listener of its own (lookup_listeners.http_bind_addr), as iroh-dns-server has.
      cfg_.lookup_listeners.http_bind_addr = addr;
      return;
    }
    // In TLS mode that listener has only the captive portal and ACME; lookup joins them.
    if (relay_tls) cfg_.lookup_on_http_listener = true;
  }

  void read_https(const Item& at, const std::filesystem::path& cert_cache) {
    auto s = r_.read_table(at, {"port", "bind_addr", "domains", "cert_mode", "letsencrypt_contact",
                                "letsencrypt_prod"});
    TlsConfig tls;
    tls.https_bind_addr = listener_addr(s, at);
    tls.quic_bind_addr = {tls.https_bind_addr.host, kDefaultQuicPort};
    const Item* domains = find(s, "domains");
    if (!domains) r_.fail(at.line, at.path + ".domains", "required key is missing");
    tls.hostname = r_.as_string_list(*domains, "a list of domain names");
    const Item* mode = find(s, "cert_mode");
    if (!mode) r_.fail(at.line, at.path + ".cert_mode", "required key is missing");
    std::string mode_text = r_.as_string(*mode);
    tls.cert_dir = cert_cache;
    if (mode_text == "manual") {
      read_manual_files(*domains, *mode, tls);
    } else if (mode_text == "lets_encrypt") {
      read_lets_encrypt(s, at, *domains, *mode, tls);
    } else if (mode_text == "self_signed") {
      tls.cert_mode = CertMode::SelfSigned;  // generated at start, like iroh-dns-server's rcgen one
    } else {
      r_.fail(mode->line, mode->path,
              "unknown certificate mode " + detail::in_quotes(mode_text) +
                  " (expected \"manual\", \"lets_encrypt\" or \"self_signed\")");
    }
    if (auto* f = find(s, "letsencrypt_contact"); f && mode_text != "lets_encrypt") {
      (void)r_.as_string(*f, true);  // ignored by iroh-dns-server too, but type-checked
    }
    if (auto* f = find(s, "letsencrypt_prod"); f && mode_text != "lets_encrypt")
      (void)r_.as_bool(*f);

    place_https_listener(at, std::move(tls));
  }

  // Steps of read_https().

  // manual: the files must be readable now.
  void read_manual_files(const Item& domains, const Item& mode, TlsConfig& tls) {
    const std::filesystem::path& cert_cache = tls.cert_dir;
    // iroh-dns-server: cert_cache/<first domain>.crt and .key under the data directory.
    if (tls.hostname.empty()) {
      r_.fail(domains.line, domains.path, "manual needs a domain (it names the files)");
    }
    tls.cert_mode = CertMode::Manual;
    std::string base = detail::escape_hostname(tls.hostname.front());
    tls.manual_cert_path = cert_cache / (base + ".crt");
    tls.manual_key_path = cert_cache / (base + ".key");
    for (const auto& path : {tls.manual_cert_path, tls.manual_key_path}) {
      if (auto reason = detail::unreadable(path)) {
        r_.fail(mode.line, mode.path,
                "cannot read " + detail::in_quotes(path.string()) + ": " + *reason);
      }
    }
  }

  // lets_encrypt: domains, a contact, staging unless letsencrypt_prod, TLS-ALPN-01.
  void read_lets_encrypt(const TomlReader::Section& s, const Item& at, const Item& domains,
                         const Item& mode, TlsConfig& tls) {
    tls.cert_mode = CertMode::LetsEncrypt;
    if (tls.hostname.empty()) {
      r_.fail(domains.line, domains.path, "lets_encrypt needs at least one domain");
    }
    const Item* contact = find(s, "letsencrypt_contact");
    if (!contact) {
      r_.fail(mode.line, at.path + ".letsencrypt_contact",
              "lets_encrypt needs a contact (iroh-dns-server: \"contact is required for "
              "letsencrypt cert mode\")");
    }
    tls.contact = r_.as_string(*contact);
    // iroh-dns-server uses Let's Encrypt's staging directory unless letsencrypt_prod = true.
    tls.prod_tls = false;
    if (auto* f = find(s, "letsencrypt_prod")) tls.prod_tls = r_.as_bool(*f);
    if (!tls.prod_tls) {
      tls.acme_directory_url = "https://acme-staging-v02.api.letsencrypt.org/directory";
    }
    // iroh-dns-server orders through tokio-rustls-acme: TLS-ALPN-01 on the HTTPS port.
    tls.acme_challenge = AcmeChallenge::TlsAlpn01;
    // Not read by iroh-dns-server: iroh-relay's IROH_RELAY_ACME_URL / IROH_RELAY_ACME_CA, so
    // that one daemon orders both certificates from the same (private) CA.
    detail::apply_acme_env(tls, r_.file());
  }

  // Where the [https] listener goes: the only TLS listener of a DNS-server-only file, a lookup
  // listener of its own, or the relay's HTTPS listener when it describes it (same address and
  // certificate).
  void place_https_listener(const Item& at, TlsConfig tls) {
    if (!relay_file_) {
      cfg_.tls = std::move(tls);
      return;
    }
    // Lookup runs on the relay's HTTPS listener, with the relay's certificate: the DNS server's
    // [https] is accepted when it describes that listener and certificate.
    const bool relay_tls = cfg_.tls && !cfg_.tls->dangerous_http_only && !cfg_.dev;
    if (!relay_tls || !detail::same_addr(tls.https_bind_addr, cfg_.tls->https_bind_addr)) {
      // A listener of its own with its own certificate (lookup_listeners.https).
      // lets_encrypt: its own ACME order and cache (<data_dir>/cert_cache) beside the relay's.
      if (auto problem = detail::lookup_acme_problem(cfg_.tls, tls)) {
        r_.fail(at.line, at.path + ".cert_mode", *problem);
      }
      cfg_.lookup_listeners.https = std::move(tls);
      return;
    }
    const std::string differs = relay_certificate_difference(tls);
    if (!differs.empty()) {
      r_.fail(at.line, at.path,
              "[https] is on the relay's HTTPS listener, but " + differs +
                  " (one listener serves one certificate); give [https] a port of its own, "
                  "or the relay's certificate");
    }
  }

  // Why the [https] certificate is not the relay's (empty when it is).
  std::string relay_certificate_difference(const TlsConfig& tls) const {
    std::string differs;
    if (tls.cert_mode == CertMode::SelfSigned) {
      if (cfg_.tls->cert_mode != CertMode::SelfSigned) {
        differs = "self_signed, but the relay serves its own certificate";
      }
    } else if (tls.cert_mode == CertMode::Manual) {
      if (cfg_.tls->cert_mode == CertMode::LetsEncrypt ||
          tls.manual_cert_path != cfg_.tls->manual_cert_path ||
          tls.manual_key_path != cfg_.tls->manual_key_path) {
        differs = "its certificate " + tls.manual_cert_path.string() +
                  " is not the relay's (tls.manual_cert_path)";
      }
    } else {
      if (cfg_.tls->cert_mode != CertMode::LetsEncrypt) {
        differs = "lets_encrypt, but the relay's certificate is manual";
      } else {
        for (const auto& d : tls.hostname) {
          if (std::find(cfg_.tls->hostname.begin(), cfg_.tls->hostname.end(), d) ==
              cfg_.tls->hostname.end()) {
            differs = "domain " + detail::in_quotes(d) + " is not among the relay's tls.hostname";
            break;
          }
        }
      }
    }
    return differs;
  }

  void read_dns(const Item& at) {
    auto s = r_.read_table(at, {"port", "bind_addr", "default_soa", "default_ttl", "origins",
                                "rr_a", "rr_aaaa", "rr_ns"});
    // Fresh: the reference's optional records are unset unless written (no --dev defaults).
    DnsConfig dns;
    dns.enabled = true;
    dns.bind_addr = listener_addr(s, at);
    const Item* soa = find(s, "default_soa");
    if (!soa) r_.fail(at.line, at.path + ".default_soa", "required key is missing");
    dns.default_soa = r_.as_string(*soa);
    if (auto problem = detail::soa_problem(dns.default_soa))
      r_.fail(soa->line, soa->path, *problem);
    const Item* ttl = find(s, "default_ttl");
    if (!ttl) r_.fail(at.line, at.path + ".default_ttl", "required key is missing");
    // Parsed and unused, as in iroh-dns-server (records keep their published TTL, spec §5.2).
    (void)r_.as_uint(*ttl, 0, std::numeric_limits<std::uint32_t>::max());
    const Item* origins = find(s, "origins");
    if (!origins) r_.fail(at.line, at.path + ".origins", "required key is missing");
    dns.origins.clear();
    for (const Item& item : r_.as_array(*origins, "a list of domain names")) {
      std::string origin = as_fqdn(item);
      if (std::find(dns.origins.begin(), dns.origins.end(), origin) != dns.origins.end()) {
        r_.fail(item.line, item.path, "duplicate origin " + detail::in_quotes(origin));
      }
      dns.origins.push_back(std::move(origin));
    }
    if (dns.origins.empty())
      r_.fail(origins->line, origins->path, "at least one origin is required");
    if (auto* f = find(s, "rr_a")) dns.rr_a = r_.as_ip(*f, AF_INET);
    if (auto* f = find(s, "rr_aaaa")) dns.rr_aaaa = r_.as_ip(*f, AF_INET6);
    if (auto* f = find(s, "rr_ns")) dns.rr_ns = as_fqdn(*f);
    cfg_.dns = std::move(dns);
  }

  std::string as_fqdn(const Item& item) {
    std::string text = r_.as_string(item);
    if (auto problem = detail::domain_name_problem(text)) {
      r_.fail(item.line, item.path,
              "invalid domain name " + detail::in_quotes(text) + " (" + *problem + ")");
    }
    text = detail::lowercase(text);
    if (!text.ends_with('.')) text += '.';
    return text;
  }

  void read_metrics(const Item* at) {
    // iroh-dns-server: no [metrics] = metrics on 127.0.0.1:9117.
    bool enabled = true;
    SocketAddr addr{"127.0.0.1", 9117};
    if (at) {
      auto s = r_.read_table(*at, {"disabled", "bind_addr"});
      const Item* disabled = find(s, "disabled");
      if (!disabled) r_.fail(at->line, at->path + ".disabled", "required key is missing");
      enabled = !r_.as_bool(*disabled);
      if (auto* f = find(s, "bind_addr")) addr = r_.as_socket_addr(*f);
    }
    if (!relay_file_) {
      cfg_.enable_metrics = enabled;
      cfg_.metrics_bind_addr = addr;
      return;
    }
    // One metrics listener: the lookup metrics are on the relay's. Without a [metrics] section
    // that is where they go; a section asking for another listener is refused.
    if (at && enabled &&
        (!cfg_.enable_metrics || !detail::same_addr(addr, cfg_.metrics_bind_addr))) {
      r_.fail(at->line, at->path,
              std::string(kOwnListener) + "lookup metrics on " + addr.to_string() +
                  (cfg_.enable_metrics ? " are served on the relay's metrics_bind_addr " +
                                             cfg_.metrics_bind_addr.to_string()
                                       : std::string(", but the relay's metrics are off")) +
                  "; set bind_addr to it, set disabled = true, or remove the section");
    }
  }

  void read_zone_store(const Item& at) {
    auto s =
        r_.read_table(at, {"max_batch_size", "max_batch_time", "eviction", "eviction_interval"});
    // serde: all four are required when the section is there.
    for (const char* key : {"max_batch_size", "max_batch_time", "eviction", "eviction_interval"}) {
      if (!find(s, key)) r_.fail(at.line, at.path + "." + key, "required key is missing");
    }
    // Accepted and checked; no effect: every PUT is committed before its 204 (group commit of
    // the PUTs waiting together), so there is no batch to size or time.
    (void)r_.as_uint(*find(s, "max_batch_size"), 1, std::uint64_t{1} << 32);
    (void)r_.as_duration(*find(s, "max_batch_time"));
    const Item& eviction = *find(s, "eviction");
    auto ev = std::chrono::duration_cast<std::chrono::seconds>(r_.as_duration(eviction));
    if (ev.count() < 1) r_.fail(eviction.line, eviction.path, "out of range (at least 1s)");
    cfg_.zone_store.eviction = ev;
    const Item& interval = *find(s, "eviction_interval");
    auto iv = std::chrono::duration_cast<std::chrono::seconds>(r_.as_duration(interval));
    if (iv.count() < 1 || iv.count() > 86'400) {
      r_.fail(interval.line, interval.path, "out of range (1s to 1day)");
    }
    cfg_.zone_store.eviction_interval = iv;
  }

  void read_mainline(const Item& at) {
    auto s = r_.read_table(at, {"enabled", "bootstrap"});
    const Item* enabled = find(s, "enabled");
    if (!enabled) r_.fail(at.line, at.path + ".enabled", "required key is missing");
    if (auto* f = find(s, "bootstrap")) (void)r_.as_string_list(*f, "a list of \"host:port\"");
    if (r_.as_bool(*enabled)) {
      r_.fail(enabled->line, enabled->path,
              "not supported: the mainline DHT fallback is not implemented (issue 17 item 4); "
              "set enabled = false (names not in the store then get NXDOMAIN / 404)");
    }
  }

  TomlReader r_;
  Config& cfg_;
  bool relay_file_;
};

}  // namespace

void apply_dns_toml(std::string_view text, const std::string& name, Config& cfg, bool relay_file) {
  DnsTomlLoader(name, cfg, relay_file).load(text);
}

}  // namespace iroh::config
