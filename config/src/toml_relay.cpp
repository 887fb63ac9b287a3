// iroh-relay's own TOML config file (iroh 1.0.3, iroh-relay/src/main.rs `Config`) -> Config.
// Every key of the reference with its default; keys it does not have are refused (the YAML format
// holds this daemon's other settings), and so are values it would refuse at start. The mapping
// is listed in docs/migrating.md.
#include <cstdlib>
#include <limits>

#include "config_detail.hpp"
#include "iroh/config.hpp"
#include "toml_reader.hpp"

namespace iroh::config {
namespace {

using detail::TomlReader;
using Item = TomlReader::Item;

constexpr const char* kHint =
    "; this daemon's other settings are in its YAML format, see docs/migrating.md";

class RelayTomlLoader {
 public:
  RelayTomlLoader(const std::string& name, bool dev) : r_(name, kHint), dev_(dev) {}

  Config load(std::string_view text) {
    Item root = r_.parse(text);
    Config cfg;
    cfg.source = r_.file();
    cfg.dev = dev_;
    auto top = r_.read_table(
        root, {"enable_relay", "http_bind_addr", "tls", "enable_quic_addr_discovery", "limits",
               "enable_metrics", "metrics_bind_addr", "key_cache_capacity", "access",
               // Older iroh-relay releases (iroh 1.0 ignores them).
               "enable_stun", "stun_bind_addr"});
    if (auto* f = find(top, "enable_relay")) cfg.enable_relay = r_.as_bool(*f);
    // --dev: [::]:3340 unless the file sets http_bind_addr (iroh-relay's DEV_MODE_HTTP_PORT).
    cfg.http_bind_addr = dev_ ? SocketAddr{"::", 3340} : SocketAddr{"::", 80};
    if (auto* f = find(top, "http_bind_addr")) cfg.http_bind_addr = r_.as_socket_addr(*f);

    const Item* tls_item = find(top, "tls");
    if (tls_item) cfg.tls = read_tls(*tls_item, cfg.http_bind_addr);

    // Unlike this daemon's YAML --dev, iroh-relay's --dev switches nothing on: QAD, STUN and
    // address lookup stay as the file says (they are not iroh-relay keys: off).
    if (auto* f = find(top, "enable_quic_addr_discovery")) {
      cfg.enable_quic_addr_discovery = r_.as_bool(*f);
      if (cfg.enable_quic_addr_discovery && !cfg.tls) {
        r_.fail(f->line, f->path,
                "QUIC address discovery needs a tls section (iroh-relay: \"TLS must be configured "
                "in order to spawn a QUIC endpoint\")");
      }
    }
    if (auto* f = find(top, "limits")) read_limits(*f, cfg.limits);
    if (auto* f = find(top, "enable_metrics")) cfg.enable_metrics = r_.as_bool(*f);
    cfg.metrics_bind_addr = {cfg.http_bind_addr.host, 9090};
    if (auto* f = find(top, "metrics_bind_addr")) cfg.metrics_bind_addr = r_.as_socket_addr(*f);
    if (auto* f = find(top, "key_cache_capacity")) {
      cfg.key_cache_capacity = r_.as_uint(*f, 0, std::uint64_t{1} << 32);
    }
    // Older iroh-relay releases ran STUN with these keys; iroh 1.0 ignores them (relay.md §9).
    // Here they run this daemon's STUN service as the older relay did (off when absent).
    if (auto* f = find(top, "enable_stun")) cfg.stun.enabled = r_.as_bool(*f);
    cfg.stun.bind_addr = {cfg.http_bind_addr.host, 3478};
    if (auto* f = find(top, "stun_bind_addr")) cfg.stun.bind_addr = r_.as_socket_addr(*f);
    const Item* access = find(top, "access");
    if (access) read_access(*access, cfg.access);
    apply_access_env(cfg.access, access);
    if (cfg.tls) check_tls_files(cfg);
    return cfg;
  }

 private:
  static const Item* find(const TomlReader::Section& s, std::string_view key) {
    auto it = s.find(key);
    return it == s.end() ? nullptr : &it->second;
  }

  TlsConfig read_tls(const Item& at, const SocketAddr& http_bind_addr) {
    auto s = r_.read_table(
        at, {"https_bind_addr", "quic_bind_addr", "hostname", "cert_mode", "cert_dir",
             "manual_cert_path", "manual_key_path", "prod_tls", "contact", "dangerous_http_only"});
    TlsConfig tls;
    const Item* mode = find(s, "cert_mode");
    if (!mode) r_.fail(at.line, at.path + ".cert_mode", "required key is missing");
    // serde's names of iroh-relay's CertMode, case and all.
    std::string mode_text = r_.as_string(*mode);
    if (mode_text == "Manual") {
      tls.cert_mode = CertMode::Manual;
    } else if (mode_text == "LetsEncrypt") {
      tls.cert_mode = CertMode::LetsEncrypt;
    } else if (mode_text == "Reloading") {
      tls.cert_mode = CertMode::Reloading;
    } else {
      r_.fail(mode->line, mode->path,
              "unknown certificate mode " + detail::in_quotes(mode_text) +
                  " (expected \"Manual\", \"LetsEncrypt\" or \"Reloading\")");
    }
    cert_mode_line_ = mode->line;
    tls.https_bind_addr = {http_bind_addr.host, 443};
    if (auto* f = find(s, "https_bind_addr")) tls.https_bind_addr = r_.as_socket_addr(*f);
    tls.quic_bind_addr = {tls.https_bind_addr.host, kDefaultQuicPort};
    if (auto* f = find(s, "quic_bind_addr")) tls.quic_bind_addr = r_.as_socket_addr(*f);
    if (auto* f = find(s, "hostname")) {
      // A string or a list of strings (iroh-relay's string_or_seq).
      if (r_.is_array(*f)) {
        tls.hostname = r_.as_string_list(*f, "a host name or a list of host names");
      } else {
        tls.hostname.push_back(r_.as_string(*f));
      }
    }
    if (auto* f = find(s, "cert_dir")) tls.cert_dir = r_.as_string(*f);
    tls.manual_cert_path = tls.cert_dir / "default.crt";
    tls.manual_key_path = tls.cert_dir / "default.key";
    if (auto* f = find(s, "manual_cert_path")) {
      tls.manual_cert_path = r_.as_string(*f);
      cert_path_line_ = f->line;
    }
    if (auto* f = find(s, "manual_key_path")) {
      tls.manual_key_path = r_.as_string(*f);
      key_path_line_ = f->line;
    }
    if (auto* f = find(s, "prod_tls")) tls.prod_tls = r_.as_bool(*f);
    if (!tls.prod_tls) {
      tls.acme_directory_url = "https://acme-staging-v02.api.letsencrypt.org/directory";
    }
    if (auto* f = find(s, "contact")) tls.contact = r_.as_string(*f);
    if (auto* f = find(s, "dangerous_http_only")) tls.dangerous_http_only = r_.as_bool(*f);
    if (dev_) tls.dangerous_http_only = true;
    if (tls.cert_mode == CertMode::LetsEncrypt) {
      if (dev_) {
        r_.fail(mode->line, mode->path,
                "LetsEncrypt cannot be used with --dev (iroh-relay: \"--dev is incompatible with "
                "cert_mode LetsEncrypt\")");
      }
      if (tls.hostname.empty()) {
        r_.fail(mode->line, at.path + ".hostname", "LetsEncrypt needs at least one hostname");
      }
      if (tls.contact.empty()) {
        r_.fail(mode->line, at.path + ".contact", "LetsEncrypt needs a contact email");
      }
      detail::apply_acme_env(tls, r_.file());
      // iroh-relay orders through tokio-rustls-acme, which answers TLS-ALPN-01 on the HTTPS port.
      tls.acme_challenge = AcmeChallenge::TlsAlpn01;
    }
    return tls;
  }

  void check_tls_files(const Config& cfg) {
    const TlsConfig& tls = *cfg.tls;
    if (tls.cert_mode == CertMode::LetsEncrypt) return;
    // iroh-relay loads the files whenever there is a tls section, --dev included.
    auto check = [&](const std::filesystem::path& path, int line, const char* key,
                     const char* what) {
      if (auto reason = detail::unreadable(path)) {
        r_.fail(line ? line : cert_mode_line_, std::string("tls.") + key,
                std::string("cannot read ") + what + " " + detail::in_quotes(path.string()) + ": " +
                    *reason);
      }
    };
    check(tls.manual_cert_path, cert_path_line_, "manual_cert_path", "certificate file");
    check(tls.manual_key_path, key_path_line_, "manual_key_path", "private key file");
  }

  void read_limits(const Item& at, Limits& limits) {
    auto s = r_.read_table(at, {"accept_conn_limit", "accept_conn_burst", "client"});
    if (auto* f = find(s, "accept_conn_limit")) {
      double rate = r_.as_number(*f);
      if (!(rate > 0) || rate > 1e9) {
        r_.fail(f->line, f->path,
                "out of range: " + std::to_string(rate) + " (must be above 0 and at most 1e9)");
      }
      limits.accept_conn_limit = rate;
    }
    if (auto* f = find(s, "accept_conn_burst")) {
      limits.accept_conn_burst = r_.as_uint(*f, 1, std::uint64_t{1} << 32);
    }
    if (auto* f = find(s, "client")) {
      auto client = r_.read_table(*f, {"rx"});
      if (auto* rx = find(client, "rx")) limits.client_rx = read_client_rx(*rx);
    }
  }

  std::optional<ClientRxLimit> read_client_rx(const Item& at) {
    auto s = r_.read_table(at, {"bytes_per_second", "max_burst_bytes"});
    const Item* bps = find(s, "bytes_per_second");
    const Item* burst = find(s, "max_burst_bytes");
    if (!bps) {
      if (burst) {
        r_.fail(burst->line, burst->path, "set without bytes_per_second (which enables the limit)");
      }
      return std::nullopt;
    }
    constexpr std::uint64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
    ClientRxLimit rx;
    rx.bytes_per_second = static_cast<std::uint32_t>(r_.as_uint(*bps, 0, kU32Max));
    // iroh-relay takes 1..9 too; here the 100 ms refill would round to 0 (relay.md §6.8).
    if (rx.bytes_per_second < 10) {
      r_.fail(bps->line, bps->path,
              "out of range: " + std::to_string(rx.bytes_per_second) +
                  " (must be at least 10: the refill per 100 ms period would be 0)");
    }
    rx.max_burst_bytes = burst ? static_cast<std::uint32_t>(r_.as_uint(*burst, 1, kU32Max))
                               : rx.bytes_per_second / 10;
    return rx;
  }

  // access = "everyone" | { allowlist = [...] } | { denylist = [...] } |
  //          { http = { url, bearer_token } } | { shared_token = [...] } (serde, lowercase).
  void read_access(const Item& at, AccessConfig& access) {
    const char* expected =
        "\"everyone\" or a table with one of allowlist, denylist, http, shared_token";
    if (r_.is_string(at)) {
      std::string mode = r_.as_string(at, true);
      if (mode != "everyone") {
        r_.fail(at.line, at.path,
                "unknown access mode " + detail::in_quotes(mode) + " (expected " + expected + ")");
      }
      return;
    }
    if (!r_.is_table(at)) r_.fail(at.line, at.path, std::string("expected ") + expected);
    auto s = r_.read_table(at, {"allowlist", "denylist", "http", "shared_token"});
    if (s.empty()) r_.fail(at.line, at.path, std::string("expected ") + expected);
    if (s.size() > 1) {
      const Item* later = nullptr;
      for (const auto& [name, item] : s) {
        if (!later || item.line > later->line) later = &item;
      }
      r_.fail(later->line, later->path, "only one access mode may be set");
    }
    const auto& [mode, item] = *s.begin();
    if (mode == "allowlist" || mode == "denylist") {
      access.mode = mode == "allowlist" ? AccessMode::Allowlist : AccessMode::Denylist;
      for (const Item& id : r_.as_array(item, "a list of endpoint ids")) {
        std::string text = r_.as_string(id, true);
        if (auto problem = detail::endpoint_id_problem(text)) r_.fail(id.line, id.path, *problem);
        access.endpoints.push_back(*relay::EndpointId::parse(text));
      }
    } else if (mode == "shared_token") {
      access.mode = AccessMode::SharedToken;
      for (const Item& token : r_.as_array(item, "a list of tokens")) {
        // iroh-relay: "access.shared_token must not be empty or contain empty strings".
        access.tokens.push_back(r_.as_string(token));
      }
      token_item_ = item;
    } else {
      access.mode = AccessMode::Http;
      auto http = r_.read_table(item, {"url", "bearer_token"});
      const Item* url = find(http, "url");
      if (!url) r_.fail(item.line, item.path + ".url", "required key is missing");
      access.http_url = r_.as_string(*url);
      if (auto problem = detail::access_url_problem(access.http_url)) {
        r_.fail(url->line, url->path, *problem);
      }
      if (auto* f = find(http, "bearer_token")) access.http_bearer_token = r_.as_string(*f);
      // iroh-relay asks the service on every connection: no decision cache, so a revocation
      // takes effect at once (YAML access.http.cache_ttl_secs turns the cache on).
      access.http_cache_ttl = std::chrono::seconds(0);
    }
  }

  // IROH_RELAY_ACCESS_TOKEN replaces the shared_token list with one token;
  // IROH_RELAY_HTTP_BEARER_TOKEN replaces access.http.bearer_token (iroh-relay's env overrides).
  void apply_access_env(AccessConfig& access, const Item* access_item) {
    if (access.mode == AccessMode::SharedToken) {
      if (const char* env = std::getenv("IROH_RELAY_ACCESS_TOKEN")) {
        if (!*env)
          r_.fail(token_item_.line, token_item_.path, "IROH_RELAY_ACCESS_TOKEN is set but empty");
        access.tokens = {env};
      } else if (access.tokens.empty()) {
        r_.fail(token_item_.line ? token_item_.line : (access_item ? access_item->line : 0),
                token_item_.path, "the token list must not be empty");
      }
    }
    if (access.mode == AccessMode::Http) {
      if (const char* env = std::getenv("IROH_RELAY_HTTP_BEARER_TOKEN")) {
        access.http_bearer_token = env;
      }
    }
  }

  TomlReader r_;
  bool dev_;
  int cert_mode_line_ = 0;
  int cert_path_line_ = 0;
  int key_path_line_ = 0;
  Item token_item_;
};

}  // namespace

Config parse_relay_toml(std::string_view text, const std::string& name, bool dev) {
  return RelayTomlLoader(name, dev).load(text);
}

}  // namespace iroh::config
