#include "iroh/config.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>

#include "config_detail.hpp"

namespace iroh::config {
namespace {

namespace fs = std::filesystem;
using detail::blank_or_comments;
using detail::domain_name_problem;
using detail::in_quotes;
using detail::lowercase;
using detail::unreadable;

constexpr std::string_view kBoolTag = "tag:yaml.org,2002:bool";
constexpr std::string_view kIntTag = "tag:yaml.org,2002:int";
constexpr std::string_view kFloatTag = "tag:yaml.org,2002:float";
// relay_threads: more event loops than this is a configuration mistake, not a bigger machine.
constexpr std::uint64_t kMaxRelayThreads = 1024;

const char* node_kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return node.Tag() == "?" ? "a plain scalar" : "a quoted string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// A value together with the place it was written, so every error can point at it.
struct Field {
  std::string path;  // "limits.client.rx.bytes_per_second", "access.allowlist[2]"
  int line = 0;      // 1-based line of the key (or list item); 0 = not in the file
  YAML::Node value;
};

int line_of(const YAML::Node& node) {
  auto mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string host_of(const SocketAddr& addr) {
  return addr.host;
}

// The sections of the file that were present, keyed by name, in file order of first sight.
class Section {
 public:
  const Field* find(std::string_view key) const {
    auto it = fields_.find(std::string(key));
    return it == fields_.end() ? nullptr : &it->second;
  }
  bool empty() const { return fields_.empty(); }
  std::size_t size() const { return fields_.size(); }
  const std::map<std::string, Field>& fields() const { return fields_; }
  std::map<std::string, Field>& fields() { return fields_; }

 private:
  std::map<std::string, Field> fields_;
};

class Loader {
 public:
  Loader(std::string file, bool dev) : file_(std::move(file)), dev_(dev) {}

  Config load(const YAML::Node& root) {
    Config cfg;
    cfg.source = file_;
    cfg.dev = dev_;

    Field root_field{"", 1, root};
    if (root.IsScalar() || root.IsSequence()) {
      fail(line_of(root), "",
           std::string("the file must be a mapping of keys, found ") + node_kind(root));
    }
    Section top = read_map(
        root_field,
        {"enable_relay", "http_bind_addr", "tls", "enable_quic_addr_discovery", "limits",
         "enable_metrics", "metrics_bind_addr", "key_cache_capacity", "relay_threads", "access",
         "enable_stun", "stun_bind_addr", "data_dir", "log_level", "log_format",
         "shutdown_grace_secs", "enable_pkarr", "pkarr_put_rate_limit", "pkarr_put_burst",
         "pkarr_put_refill_secs", "zone_store", "enable_dns", "dns",
         // issue 19 item 4
         "trusted_proxies", "pkarr_put_rate_limit_ipv6_prefix", "pkarr_max_future_skew_secs",
         // issue 17: lookup on its own listeners
         "lookup_listeners",
         // issue 16
         "mesh"});

    if (auto* f = top.find("enable_relay")) cfg.enable_relay = as_bool(*f);
    const Field* tls_field = read_relay_listener(top, cfg);
    if (auto* f = top.find("limits")) cfg.limits = read_limits(*f);
    read_metrics_listener(top, cfg);
    read_relay_tuning(top, cfg);
    read_stun(top, cfg);
    read_data_dir(top, cfg);
    read_lookup(top, cfg);
    read_logging(top, cfg);
    if (auto* f = top.find("mesh")) cfg.mesh = read_mesh(*f);

    if (cfg.tls) check_tls_files(cfg, *tls_field);
    if (auto* f = top.find("lookup_listeners")) read_lookup_listeners(*f, cfg);
    return cfg;
  }

 private:
  // Steps of load(), in file order of the keys they read: each reads its top-level keys into
  // `cfg` and applies their defaults (which may depend on keys read before, e.g. the bind
  // addresses default to http_bind_addr's host), failing on the first bad value.

  // http_bind_addr, tls and enable_quic_addr_discovery; returns the tls field for the file
  // checks done last (check_tls_files).
  const Field* read_relay_listener(const Section& top, Config& cfg) {
    if (auto* f = top.find("http_bind_addr")) {
      cfg.http_bind_addr = as_socket_addr(*f);
    } else {
      cfg.http_bind_addr = dev_ ? SocketAddr{"::", 3340} : SocketAddr{"::", 80};
    }

    const Field* tls_field = top.find("tls");
    if (tls_field) cfg.tls = read_tls(*tls_field, cfg.http_bind_addr);

    // --dev turns QAD on too, with a self-signed certificate when there is no tls section.
    cfg.enable_quic_addr_discovery = dev_;
    const Field* qad_field = top.find("enable_quic_addr_discovery");
    if (qad_field) cfg.enable_quic_addr_discovery = as_bool(*qad_field);
    if (cfg.enable_quic_addr_discovery && !cfg.tls && !dev_) {
      fail(qad_field->line, qad_field->path,
           "QUIC address discovery needs a tls section (it serves QUIC with the relay's "
           "certificate)");
    }
    return tls_field;
  }

  void read_metrics_listener(const Section& top, Config& cfg) {
    if (auto* f = top.find("enable_metrics")) cfg.enable_metrics = as_bool(*f);
    if (auto* f = top.find("metrics_bind_addr")) {
      cfg.metrics_bind_addr = as_socket_addr(*f);
    } else {
      cfg.metrics_bind_addr = {host_of(cfg.http_bind_addr), 9090};
    }
  }

  // key_cache_capacity, relay_threads and the access section (with its environment overrides).
  void read_relay_tuning(const Section& top, Config& cfg) {
    if (auto* f = top.find("key_cache_capacity")) {
      cfg.key_cache_capacity = as_uint(*f, 0, std::uint64_t{1} << 32);
    }
    if (auto* f = top.find("relay_threads")) {
      cfg.relay_threads = unsigned(as_uint(*f, 0, kMaxRelayThreads));
    }

    if (auto* f = top.find("access")) cfg.access = read_access(*f);
    apply_access_env(cfg.access, top.find("access"));
  }

  void read_stun(const Section& top, Config& cfg) {
    cfg.stun.enabled = dev_;
    if (auto* f = top.find("enable_stun")) cfg.stun.enabled = as_bool(*f);
    if (auto* f = top.find("stun_bind_addr")) {
      cfg.stun.bind_addr = as_socket_addr(*f);
    } else {
      cfg.stun.bind_addr = {host_of(cfg.http_bind_addr), 3478};
    }
  }

  // data_dir; --dev defaults it to $IROH_RELAY_DATA_DIR or ./data.
  void read_data_dir(const Section& top, Config& cfg) {
    if (auto* f = top.find("data_dir")) {
      cfg.data_dir = as_string(*f);
    } else if (dev_) {
      const char* env = std::getenv("IROH_RELAY_DATA_DIR");
      cfg.data_dir = env && *env ? fs::path(env) : fs::path("./data");
    }
  }

  // log_level, log_format and shutdown_grace_secs.
  void read_logging(const Section& top, Config& cfg) {
    if (auto* f = top.find("log_level")) {
      std::string level = as_string(*f);
      static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
      if (std::find(std::begin(kLevels), std::end(kLevels), level) == std::end(kLevels)) {
        fail(f->line, f->path,
             "unknown log level " + in_quotes(level) +
                 " (expected trace, debug, info, warn or error)");
      }
      cfg.log_level = level;
    }
    if (auto* f = top.find("log_format")) {
      std::string format = as_string(*f);
      if (format != "text" && format != "json") {
        fail(f->line, f->path,
             "unknown log format " + in_quotes(format) + " (expected text or json)");
      }
      cfg.log_format = format;
    }
    if (auto* f = top.find("shutdown_grace_secs")) {
      cfg.shutdown_grace = std::chrono::seconds(as_uint(*f, 0, 3600));
    }
  }

  [[noreturn]] void fail(int line, const std::string& key, const std::string& reason) const {
    throw ConfigError(file_, line, key, reason);
  }

  // Reads a mapping (a missing value counts as an empty one), rejecting non-string keys,
  // duplicate keys and keys outside `allowed`.
  Section read_map(const Field& at, std::initializer_list<std::string_view> allowed) {
    Section section;
    if (at.value.IsNull()) return section;
    if (!at.value.IsMap()) {
      fail(at.line, at.path, std::string("expected a mapping, found ") + node_kind(at.value));
    }
    for (auto it = at.value.begin(); it != at.value.end(); ++it) {
      // Copies: the iterator hands out a temporary pair.
      const YAML::Node key = it->first;
      int line = line_of(key);
      if (!key.IsScalar()) {
        fail(line, at.path, std::string("keys must be plain strings, found ") + node_kind(key));
      }
      const std::string& name = key.Scalar();
      std::string path = child_path(at.path, name);
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string known;
        for (auto k : allowed) known += (known.empty() ? "" : ", ") + std::string(k);
        fail(line, path, "unknown key (known keys here: " + known + ")");
      }
      if (auto* previous = section.find(name)) {
        fail(line, path,
             "duplicate key (first set on line " + std::to_string(previous->line) + ")");
      }
      section.fields().emplace(name, Field{path, line, it->second});
    }
    return section;
  }

  const std::string& scalar(const Field& f, const char* expected) {
    if (!f.value.IsScalar()) {
      fail(f.line, f.path, std::string("expected ") + expected + ", found " + node_kind(f.value));
    }
    return f.value.Scalar();
  }

  // Numbers and booleans must be written plainly: a quoted "80" is a string in YAML.
  void require_plain(const Field& f, std::string_view typed_tag, const char* expected) {
    const std::string& tag = f.value.Tag();
    if (tag != "?" && tag != typed_tag) {
      fail(f.line, f.path,
           std::string("expected ") + expected + ", found " +
               (tag == "!" ? std::string("a quoted string") : "a value tagged " + tag));
    }
  }

  bool as_bool(const Field& f) {
    const char* expected = "a boolean (true or false)";
    const std::string& text = scalar(f, expected);
    require_plain(f, kBoolTag, expected);
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    fail(f.line, f.path, std::string("expected ") + expected + ", found " + in_quotes(text));
  }

  std::uint64_t as_uint(const Field& f, std::uint64_t min, std::uint64_t max) {
    const char* expected = "a non-negative integer";
    const std::string& text = scalar(f, expected);
    require_plain(f, kIntTag, expected);
    std::uint64_t value = 0;
    bool digits_only = !text.empty() && std::all_of(text.begin(), text.end(),
                                                    [](char c) { return c >= '0' && c <= '9'; });
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    bool parsed = digits_only && ec == std::errc() && end == text.data() + text.size();
    if (!parsed && !(digits_only && ec == std::errc::result_out_of_range)) {
      fail(f.line, f.path, std::string("expected ") + expected + ", found " + in_quotes(text));
    }
    if (!parsed || value < min || value > max) {
      fail(f.line, f.path,
           "out of range: " + text + " (allowed " + std::to_string(min) + " to " +
               std::to_string(max) + ")");
    }
    return value;
  }

  double as_positive_double(const Field& f) {
    const char* expected = "a number";
    const std::string& text = scalar(f, expected);
    const std::string& tag = f.value.Tag();
    if (tag != "?" && tag != kFloatTag && tag != kIntTag) require_plain(f, kFloatTag, expected);
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      fail(f.line, f.path, std::string("expected ") + expected + ", found " + in_quotes(text));
    }
    if (!std::isfinite(value) || value <= 0) {
      fail(f.line, f.path, "out of range: " + text + " (must be a finite number above 0)");
    }
    return value;
  }

  // A rate per second: 0 = unlimited (nullopt), else a finite number above 0.
  std::optional<double> as_rate(const Field& f) {
    if (f.value.IsScalar() && f.value.Tag() == "?" &&
        (f.value.Scalar() == "0" || f.value.Scalar() == "0.0")) {
      return std::nullopt;
    }
    return as_positive_double(f);
  }

  std::string as_string(const Field& f, bool allow_empty = false) {
    const std::string& text = scalar(f, "a string");
    if (text.empty() && !allow_empty) fail(f.line, f.path, "must not be empty");
    return text;
  }

  SocketAddr as_socket_addr(const Field& f) {
    const std::string& text = scalar(f, "a socket address (\"host:port\" or \"[v6]:port\")");
    auto addr = SocketAddr::parse(text);
    if (!addr) {
      fail(f.line, f.path,
           "invalid socket address " + in_quotes(text) +
               " (expected \"host:port\", \"[v6]:port\" or \"*:port\")");
    }
    return *addr;
  }

  std::vector<Field> list_items(const Field& f, const char* expected) {
    if (!f.value.IsSequence()) {
      fail(f.line, f.path, std::string("expected ") + expected + ", found " + node_kind(f.value));
    }
    std::vector<Field> items;
    std::size_t index = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it) {
      const YAML::Node item = *it;
      int line = line_of(item);
      items.push_back(
          Field{f.path + "[" + std::to_string(index++) + "]", line ? line : f.line, item});
    }
    return items;
  }

  TlsConfig read_tls(const Field& at, const SocketAddr& http_bind_addr) {
    Section s = read_map(
        at, {"cert_mode", "https_bind_addr", "quic_bind_addr", "hostname", "cert_dir",
             "manual_cert_path", "manual_key_path", "prod_tls", "contact", "dangerous_http_only",
             "acme_directory_url", "acme_ca_file", "acme_challenge"});
    TlsConfig tls;
    const Field* mode = s.find("cert_mode");
    if (!mode) fail(at.line, child_path(at.path, "cert_mode"), "required key is missing");
    tls.cert_mode = read_cert_mode(*mode);
    read_tls_addresses(s, http_bind_addr, tls);
    read_tls_names_and_files(s, tls);
    read_acme_settings(s, tls);
    check_letsencrypt(at, *mode, tls);
    if (tls.cert_mode == CertMode::LetsEncrypt) detail::apply_acme_env(tls, file_);
    tls_lines_.cert_mode = mode->line;
    if (auto* f = s.find("manual_cert_path")) tls_lines_.cert_path = f->line;
    if (auto* f = s.find("manual_key_path")) tls_lines_.key_path = f->line;
    return tls;
  }

  // Steps of read_tls(), in the order of its checks (the first failure is the one reported).

  CertMode read_cert_mode(const Field& mode) {
    const std::string text = lowercase(scalar(mode, "manual, reloading or letsencrypt"));
    if (text == "manual") return CertMode::Manual;
    if (text == "reloading") return CertMode::Reloading;
    if (text == "letsencrypt") return CertMode::LetsEncrypt;
    fail(mode.line, mode.path,
         "unknown certificate mode " + in_quotes(mode.value.Scalar()) +
             " (expected manual, reloading or letsencrypt)");
  }

  // https_bind_addr defaults to http_bind_addr's host, quic_bind_addr to https_bind_addr's.
  void read_tls_addresses(const Section& s, const SocketAddr& http_bind_addr, TlsConfig& tls) {
    if (auto* f = s.find("https_bind_addr")) {
      tls.https_bind_addr = as_socket_addr(*f);
    } else {
      tls.https_bind_addr = {host_of(http_bind_addr), 443};
    }
    if (auto* f = s.find("quic_bind_addr")) {
      tls.quic_bind_addr = as_socket_addr(*f);
    } else {
      tls.quic_bind_addr = {host_of(tls.https_bind_addr), kDefaultQuicPort};
    }
  }

  // hostname (one or a list), the certificate files (default <cert_dir>/default.crt and .key),
  // prod_tls, contact and dangerous_http_only (forced by --dev).
  void read_tls_names_and_files(const Section& s, TlsConfig& tls) {
    if (auto* f = s.find("hostname")) {
      if (f->value.IsSequence()) {
        for (const Field& item : list_items(*f, "a host name or a list of host names")) {
          tls.hostname.push_back(as_string(item));
        }
      } else {
        tls.hostname.push_back(as_string(*f));
      }
    }
    if (auto* f = s.find("cert_dir")) tls.cert_dir = as_string(*f);
    tls.manual_cert_path = tls.cert_dir / "default.crt";
    tls.manual_key_path = tls.cert_dir / "default.key";
    if (auto* f = s.find("manual_cert_path")) tls.manual_cert_path = as_string(*f);
    if (auto* f = s.find("manual_key_path")) tls.manual_key_path = as_string(*f);
    if (auto* f = s.find("prod_tls")) tls.prod_tls = as_bool(*f);
    if (auto* f = s.find("contact")) tls.contact = as_string(*f);
    if (auto* f = s.find("dangerous_http_only")) tls.dangerous_http_only = as_bool(*f);
    if (dev_) tls.dangerous_http_only = true;
  }

  // The ACME client's settings (staging directory unless prod_tls).
  void read_acme_settings(const Section& s, TlsConfig& tls) {
    if (auto* f = s.find("acme_directory_url")) {
      tls.acme_directory_url = as_string(*f);
      if (!tls.acme_directory_url.starts_with("https://")) {
        fail(f->line, f->path,
             "must be an https:// URL, found " + in_quotes(tls.acme_directory_url));
      }
    } else if (!tls.prod_tls) {
      tls.acme_directory_url = "https://acme-staging-v02.api.letsencrypt.org/directory";
    }
    if (auto* f = s.find("acme_ca_file")) {
      tls.acme_ca_file = as_string(*f);
      std::error_code ec;
      if (!std::filesystem::is_regular_file(tls.acme_ca_file, ec)) {
        fail(f->line, f->path, "not a readable file: " + tls.acme_ca_file.string());
      }
    }

    if (auto* f = s.find("acme_challenge")) {
      std::string text = lowercase(scalar(*f, "http-01 or tls-alpn-01"));
      if (text == "http-01") {
        tls.acme_challenge = AcmeChallenge::Http01;
      } else if (text == "tls-alpn-01") {
        tls.acme_challenge = AcmeChallenge::TlsAlpn01;
      } else {
        fail(f->line, f->path,
             "unknown challenge type " + in_quotes(f->value.Scalar()) +
                 " (expected http-01 or tls-alpn-01)");
      }
    }
  }

  // letsencrypt needs the HTTPS listener, a hostname and a contact.
  void check_letsencrypt(const Field& at, const Field& mode, const TlsConfig& tls) {
    if (tls.cert_mode == CertMode::LetsEncrypt) {
      if (dev_) {
        fail(mode.line, mode.path,
             "letsencrypt cannot be used with --dev (ACME needs the HTTPS listener)");
      }
      if (tls.hostname.empty()) {
        fail(mode.line, child_path(at.path, "hostname"), "letsencrypt needs at least one hostname");
      }
      if (tls.contact.empty()) {
        fail(mode.line, child_path(at.path, "contact"), "letsencrypt needs a contact address");
      }
    }
  }

  // The certificate files are read at startup in manual/reloading mode; in --dev only QAD uses
  // them. Checking here turns a confusing TLS error later into a pointed config error now.
  void check_tls_files(const Config& cfg, const Field& tls_field) {
    const TlsConfig& tls = *cfg.tls;
    if (tls.cert_mode == CertMode::LetsEncrypt) return;
    if (dev_ && !cfg.enable_quic_addr_discovery) return;
    auto check = [&](const fs::path& path, int line, const char* key, const char* what) {
      if (auto reason = unreadable(path)) {
        fail(line ? line : tls_lines_.cert_mode, child_path(tls_field.path, key),
             std::string("cannot read ") + what + " " + in_quotes(path.string()) + ": " + *reason);
      }
    };
    check(tls.manual_cert_path, tls_lines_.cert_path, "manual_cert_path", "certificate file");
    check(tls.manual_key_path, tls_lines_.key_path, "manual_key_path", "private key file");
  }

  // ---- address lookup (enable_pkarr, pkarr_put_*, zone_store, enable_dns, dns) -----------------

  // lookup_listeners: http_bind_addr and/or https (a tls-like section: https_bind_addr required,
  // cert_mode manual | self_signed | letsencrypt, hostname = the domains; manual files default
  // to cert_dir/<first hostname>.crt / .key like iroh-dns-server's cert_cache).
  void read_lookup_listeners(const Field& at, Config& cfg) {
    Section s = read_map(at, {"http_bind_addr", "https"});
    if (auto* f = s.find("http_bind_addr"))
      cfg.lookup_listeners.http_bind_addr = as_socket_addr(*f);
    if (auto* f = s.find("https")) {
      Section h = read_map(*f, {"https_bind_addr", "cert_mode", "hostname", "cert_dir",
                                "manual_cert_path", "manual_key_path", "prod_tls", "contact",
                                "acme_directory_url", "acme_ca_file", "acme_challenge"});
      const Field* bind = h.find("https_bind_addr");
      if (!bind) fail(f->line, child_path(f->path, "https_bind_addr"), "required key is missing");
      const Field* mode = h.find("cert_mode");
      if (!mode) fail(f->line, child_path(f->path, "cert_mode"), "required key is missing");
      // Everything but self_signed reads like the relay's tls section.
      const bool self_signed =
          lowercase(scalar(*mode, "manual, self_signed or letsencrypt")) == "self_signed";
      TlsConfig tls;
      if (self_signed) {
        tls.cert_mode = CertMode::SelfSigned;
        tls.https_bind_addr = as_socket_addr(*bind);
        if (auto* n = h.find("hostname")) {
          if (n->value.IsSequence()) {
            for (const Field& item : list_items(*n, "a host name or a list of host names")) {
              tls.hostname.push_back(as_string(item));
            }
          } else {
            tls.hostname.push_back(as_string(*n));
          }
        }
      } else {
        const std::string mode_text = lowercase(mode->value.Scalar());
        if (mode_text != "manual" && mode_text != "letsencrypt") {
          fail(mode->line, mode->path,
               "unknown certificate mode " + in_quotes(mode->value.Scalar()) +
                   " (expected manual, self_signed or letsencrypt)");
        }
        const TlsLines relay_lines = tls_lines_;
        tls = read_tls(*f, cfg.http_bind_addr);
        tls_lines_ = relay_lines;
        // letsencrypt: its own ACME certificate (lookup AcmeService) beside the relay's.
        if (auto problem = detail::lookup_acme_problem(cfg.tls, tls)) {
          fail(mode->line, mode->path, *problem);
        }
        if (tls.cert_mode == CertMode::Manual) {
          if (!h.find("manual_cert_path") || !h.find("manual_key_path")) {
            if (tls.hostname.empty()) {
              fail(mode->line, child_path(f->path, "hostname"),
                   "manual without manual_cert_path needs a hostname (it names the files)");
            }
            const std::string base = detail::escape_hostname(tls.hostname.front());
            if (!h.find("manual_cert_path")) tls.manual_cert_path = tls.cert_dir / (base + ".crt");
            if (!h.find("manual_key_path")) tls.manual_key_path = tls.cert_dir / (base + ".key");
          }
          for (const char* key : {"manual_cert_path", "manual_key_path"}) {
            const fs::path& path = std::string_view(key) == "manual_cert_path"
                                       ? tls.manual_cert_path
                                       : tls.manual_key_path;
            if (auto reason = unreadable(path)) {
              const Field* k = h.find(key);
              fail(k ? k->line : mode->line, child_path(f->path, key),
                   "cannot read " + in_quotes(path.string()) + ": " + *reason);
            }
          }
        }
      }
      if (cfg.tls && tls.https_bind_addr.port != 0 &&
          detail::same_addr(tls.https_bind_addr, cfg.tls->https_bind_addr)) {
        fail(bind->line, bind->path, "is the relay's tls.https_bind_addr; leave it out there");
      }
      cfg.lookup_listeners.https = std::move(tls);
    }
    if (cfg.lookup_listeners.http_bind_addr && cfg.lookup_listeners.http_bind_addr->port != 0 &&
        detail::same_addr(*cfg.lookup_listeners.http_bind_addr, cfg.http_bind_addr)) {
      const Field* f = s.find("http_bind_addr");
      fail(f->line, f->path, "is the relay's http_bind_addr; leave it out there");
    }
  }

  // Called after data_dir is known (the store path defaults to a file in it).
  // The address lookup keys (spec address-lookup.md §8): the pkarr API, the zone store, DNS.
  void read_lookup(const Section& top, Config& cfg) {
    read_pkarr(top, cfg);
    read_zone_store(top, cfg);
    read_dns_service(top, cfg);
  }

  // enable_pkarr, the PUT rate limit (§4.5) and what it trusts (issue 19 item 4).
  void read_pkarr(const Section& top, Config& cfg) {
    cfg.pkarr.enabled = dev_;
    if (auto* f = top.find("enable_pkarr")) cfg.pkarr.enabled = as_bool(*f);
    // Like iroh-dns-server's config.dev.toml: no PUT rate limit in development.
    cfg.pkarr.put_rate_limit = dev_ ? PutRateLimitMode::Disabled : PutRateLimitMode::Simple;
    if (auto* f = top.find("pkarr_put_rate_limit")) {
      std::string mode = lowercase(scalar(*f, "disabled, simple or smart"));
      if (mode == "disabled") {
        cfg.pkarr.put_rate_limit = PutRateLimitMode::Disabled;
      } else if (mode == "simple") {
        cfg.pkarr.put_rate_limit = PutRateLimitMode::Simple;
      } else if (mode == "smart") {
        cfg.pkarr.put_rate_limit = PutRateLimitMode::Smart;
      } else {
        fail(f->line, f->path,
             "unknown rate limit mode " + in_quotes(f->value.Scalar()) +
                 " (expected disabled, simple or smart)");
      }
    }
    if (auto* f = top.find("pkarr_put_burst")) {
      cfg.pkarr.put_burst = static_cast<std::uint32_t>(as_uint(*f, 1, 1 << 20));
    }
    if (auto* f = top.find("pkarr_put_refill_secs")) {
      cfg.pkarr.put_refill_secs = as_positive_double(*f);
      // Beyond a year the limiter's clock arithmetic would only produce nonsense.
      if (cfg.pkarr.put_refill_secs > 31'536'000) {
        fail(f->line, f->path,
             "out of range: " + f->value.Scalar() + " (allowed up to 31536000 seconds)");
      }
    }

    if (auto* f = top.find("trusted_proxies")) {
      cfg.pkarr.trusted_proxies.clear();
      for (const Field& item : list_items(*f, "a list of addresses or prefixes")) {
        const std::string& text = scalar(item, "an address or prefix (\"10.0.0.0/8\")");
        auto network = IpNetwork::parse(text);
        if (!network) {
          fail(item.line, item.path,
               "invalid address or prefix " + in_quotes(text) +
                   " (expected \"192.0.2.1\", \"10.0.0.0/8\" or \"2001:db8::/32\")");
        }
        cfg.pkarr.trusted_proxies.push_back(std::move(*network));
      }
    }
    if (auto* f = top.find("pkarr_put_rate_limit_ipv6_prefix")) {
      cfg.pkarr.put_rate_limit_ipv6_prefix = static_cast<unsigned>(as_uint(*f, 1, 128));
    }
    if (auto* f = top.find("pkarr_max_future_skew_secs")) {
      cfg.pkarr.max_future_skew = std::chrono::seconds(as_uint(*f, 0, 3'153'600'000));
    }
  }

  // zone_store: path (default <data_dir>/pkarr.sqlite3), eviction (§7.2), cache, bound, backend.
  void read_zone_store(const Section& top, Config& cfg) {
    cfg.zone_store.path = cfg.data_dir / "pkarr.sqlite3";
    if (auto* f = top.find("zone_store")) {
      Section s =
          read_map(*f, {"path", "eviction_secs", "eviction_interval_secs", "cache_capacity",
                        "max_records", "backend", "postgres_url", "postgres_password_file"});
      if (auto* p = s.find("path")) {
        std::string path = as_string(*p, true);
        if (!path.empty()) cfg.zone_store.path = path;
      }
      if (auto* e = s.find("eviction_secs")) {
        cfg.zone_store.eviction = std::chrono::seconds(as_uint(*e, 1, 3'153'600'000));
      }
      if (auto* e = s.find("eviction_interval_secs")) {
        cfg.zone_store.eviction_interval = std::chrono::seconds(as_uint(*e, 1, 86'400));
      }
      if (auto* c = s.find("cache_capacity"))
        cfg.zone_store.cache_capacity = as_uint(*c, 0, 1 << 26);
      if (auto* m = s.find("max_records")) {
        cfg.zone_store.max_records = as_uint(*m, 0, std::uint64_t{1} << 40);
      }
      read_zone_store_backend(s, *f, cfg.zone_store);
    }
  }

  // enable_dns and the dns section; --dev uses iroh-dns-server's config.dev.toml (spec §8).
  void read_dns_service(const Section& top, Config& cfg) {
    cfg.dns.enabled = dev_;
    if (auto* f = top.find("enable_dns")) cfg.dns.enabled = as_bool(*f);
    cfg.dns.bind_addr = {host_of(cfg.http_bind_addr), std::uint16_t(dev_ ? 5300 : 53)};
    if (dev_) {
      // iroh-dns-server's config.dev.toml (spec §8).
      cfg.dns.origins = {"irohdns.example.", "."};
      cfg.dns.default_soa =
          "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600";
      cfg.dns.rr_a = "127.0.0.1";
      cfg.dns.rr_ns = "ns1.irohdns.example.";
    }
    if (auto* f = top.find("dns")) read_dns(*f, cfg.dns);
  }

  // zone_store.backend and its postgres_* keys (issue 15). The URL is not parsed here (that is
  // libpq's job, at connect); it may carry a password, so no error message repeats it.
  void read_zone_store_backend(const Section& s, const Field& at, ZoneStoreConfig& store) {
    if (auto* b = s.find("backend")) {
      std::string backend = lowercase(scalar(*b, "sqlite or postgres"));
      if (backend == "sqlite") {
        store.backend = ZoneStoreBackend::Sqlite;
      } else if (backend == "postgres") {
        store.backend = ZoneStoreBackend::Postgres;
      } else {
        fail(b->line, b->path,
             "unknown backend " + in_quotes(b->value.Scalar()) + " (expected sqlite or postgres)");
      }
    }
    if (auto* u = s.find("postgres_url")) store.postgres_url = as_string(*u, true);
    if (auto* p = s.find("postgres_password_file")) {
      store.postgres_password_file = as_string(*p, true);
      if (!store.postgres_password_file.empty()) {
        if (auto reason = unreadable(store.postgres_password_file)) {
          fail(p->line, p->path,
               "cannot read " + store.postgres_password_file.string() + ": " + *reason);
        }
      }
    }
    if (store.backend == ZoneStoreBackend::Postgres && store.postgres_url.empty()) {
      const Field* b = s.find("backend");
      fail(b->line, child_path(at.path, "postgres_url"),
           "required when backend is postgres (a libpq URI such as "
           "\"postgresql://iroh@db.example/iroh\")");
    }
  }

  void read_dns(const Field& at, DnsConfig& dns) {
    Section s = read_map(at, {"bind_addr", "origins", "default_soa", "rr_a", "rr_aaaa", "rr_ns",
                              "tcp_idle_timeout_ms", "max_tcp_connections",
                              // Issue 19 item 5: UDP size cap and response-rate limiting.
                              "udp_max_payload", "rrl_rate", "rrl_slip", "rrl_ipv4_prefix",
                              "rrl_ipv6_prefix", "rrl_table_size"});
    if (auto* f = s.find("bind_addr")) dns.bind_addr = as_socket_addr(*f);
    if (auto* f = s.find("origins")) {
      dns.origins.clear();
      for (const Field& item : list_items(*f, "a list of domain names")) {
        std::string origin = as_fqdn(item);
        if (std::find(dns.origins.begin(), dns.origins.end(), origin) != dns.origins.end()) {
          fail(item.line, item.path, "duplicate origin " + in_quotes(origin));
        }
        dns.origins.push_back(std::move(origin));
      }
      if (dns.origins.empty()) fail(f->line, f->path, "at least one origin is required");
    }
    if (auto* f = s.find("default_soa")) {
      dns.default_soa = as_string(*f);
      check_soa(*f, dns.default_soa);
    }
    // An empty string unsets an optional record (also one that --dev set).
    if (auto* f = s.find("rr_a")) {
      std::string text = as_string(*f, true);
      in_addr addr{};
      if (!text.empty() && inet_pton(AF_INET, text.c_str(), &addr) != 1) {
        fail(f->line, f->path, "invalid IPv4 address " + in_quotes(text));
      }
      dns.rr_a = text.empty() ? std::nullopt : std::optional<std::string>(text);
    }
    if (auto* f = s.find("rr_aaaa")) {
      std::string text = as_string(*f, true);
      in6_addr addr{};
      if (!text.empty() && inet_pton(AF_INET6, text.c_str(), &addr) != 1) {
        fail(f->line, f->path, "invalid IPv6 address " + in_quotes(text));
      }
      dns.rr_aaaa = text.empty() ? std::nullopt : std::optional<std::string>(text);
    }
    if (auto* f = s.find("rr_ns")) {
      std::string text = as_string(*f, true);
      dns.rr_ns = text.empty() ? std::nullopt : std::optional<std::string>(as_fqdn(*f));
    }
    if (auto* f = s.find("tcp_idle_timeout_ms")) {
      dns.tcp_idle_timeout = std::chrono::milliseconds(as_uint(*f, 1, 3'600'000));
    }
    if (auto* f = s.find("max_tcp_connections")) dns.max_tcp_connections = as_uint(*f, 1, 1 << 20);
    // 512: RFC 1035's floor; 4096: the largest reply the UDP listener sends.
    if (auto* f = s.find("udp_max_payload")) dns.udp_max_payload = as_uint(*f, 512, 4096);
    if (auto* f = s.find("rrl_rate")) {
      dns.rrl_rate = static_cast<std::uint32_t>(as_uint(*f, 0, 1'000'000));
    }
    if (auto* f = s.find("rrl_slip")) {
      dns.rrl_slip = static_cast<std::uint32_t>(as_uint(*f, 0, 100));
    }
    if (auto* f = s.find("rrl_ipv4_prefix")) {
      dns.rrl_ipv4_prefix = static_cast<unsigned>(as_uint(*f, 8, 32));
    }
    if (auto* f = s.find("rrl_ipv6_prefix")) {
      dns.rrl_ipv6_prefix = static_cast<unsigned>(as_uint(*f, 16, 128));
    }
    if (auto* f = s.find("rrl_table_size")) dns.rrl_table_size = as_uint(*f, 1, 1 << 24);
  }

  // A domain name, lower-cased, with the trailing dot added when missing.
  std::string as_fqdn(const Field& f) {
    std::string text = as_string(f);
    if (auto problem = domain_name_problem(text)) {
      fail(f.line, f.path, "invalid domain name " + in_quotes(text) + " (" + *problem + ")");
    }
    text = lowercase(text);
    if (!text.ends_with('.')) text += '.';
    return text;
  }

  // The DNS server parses it again; checking here turns a typo into a config error with a line
  // number.
  void check_soa(const Field& f, const std::string& text) {
    if (auto problem = detail::soa_problem(text)) fail(f.line, f.path, *problem);
  }

  Limits read_limits(const Field& at) {
    Section s = read_map(at, {"accept_conn_limit", "accept_conn_burst", "client", "max_connections",
                              "max_connections_per_ip", "handshake_timeout_ms", "write_timeout_ms",
                              "client_queue_capacity", "client_queue_bytes", "total_queue_bytes",
                              "qad_new_conn_rate", "qad_new_conn_burst",
                              // Issue 19 item 9: per-source QAD limit.
                              "qad_per_source_rate", "qad_per_source_burst"});
    Limits limits;
    if (auto* f = s.find("accept_conn_limit")) limits.accept_conn_limit = as_positive_double(*f);
    if (auto* f = s.find("accept_conn_burst")) {
      limits.accept_conn_burst = as_uint(*f, 1, std::uint64_t{1} << 32);
    }
    if (auto* f = s.find("client")) {
      Section client = read_map(*f, {"rx"});
      if (auto* rx_field = client.find("rx")) limits.client_rx = read_client_rx(*rx_field);
    }
    if (auto* f = s.find("max_connections")) limits.max_connections = as_uint(*f, 1, 1 << 24);
    if (auto* f = s.find("max_connections_per_ip")) {
      limits.max_connections_per_ip = as_uint(*f, 1, 1 << 24);
    }
    if (auto* f = s.find("handshake_timeout_ms")) {
      limits.handshake_timeout = std::chrono::milliseconds(as_uint(*f, 1, 3'600'000));
    }
    if (auto* f = s.find("write_timeout_ms")) {
      limits.write_timeout = std::chrono::milliseconds(as_uint(*f, 1, 3'600'000));
    }
    if (auto* f = s.find("client_queue_capacity")) {
      limits.client_queue_capacity = as_uint(*f, 1, 1 << 20);
    }
    // A queue must hold one largest frame (64 KiB payload + header), §6.3.
    if (auto* f = s.find("client_queue_bytes")) {
      limits.client_queue_bytes = as_uint(*f, 65 * 1024, std::uint64_t{1} << 32);
    }
    if (auto* f = s.find("total_queue_bytes")) {
      limits.total_queue_bytes = as_uint(*f, 65 * 1024, std::uint64_t{1} << 40);
    }
    // 0 switches a QAD limit off (both are on by default).
    if (auto* f = s.find("qad_new_conn_rate")) limits.qad_new_conn_rate = as_rate(*f);
    if (auto* f = s.find("qad_new_conn_burst")) limits.qad_new_conn_burst = as_uint(*f, 1, 1 << 24);
    if (auto* f = s.find("qad_per_source_rate")) limits.qad_per_source_rate = as_rate(*f);
    if (auto* f = s.find("qad_per_source_burst")) {
      limits.qad_per_source_burst = as_uint(*f, 1, 1 << 24);
    }
    return limits;
  }

  std::optional<ClientRxLimit> read_client_rx(const Field& at) {
    Section s = read_map(at, {"bytes_per_second", "max_burst_bytes"});
    const Field* bps = s.find("bytes_per_second");
    const Field* burst = s.find("max_burst_bytes");
    if (!bps) {
      if (burst) {
        fail(burst->line, burst->path, "set without bytes_per_second (which enables the limit)");
      }
      return std::nullopt;
    }
    constexpr std::uint64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
    ClientRxLimit rx;
    rx.bytes_per_second = static_cast<std::uint32_t>(as_uint(*bps, 0, kU32Max));
    if (rx.bytes_per_second < 10) {
      fail(bps->line, bps->path,
           "out of range: " + std::to_string(rx.bytes_per_second) +
               " (must be at least 10: the refill per 100 ms period would be 0)");
    }
    rx.max_burst_bytes =
        burst ? static_cast<std::uint32_t>(as_uint(*burst, 1, kU32Max)) : rx.bytes_per_second / 10;
    return rx;
  }

  // Issue 16 (docs/mesh.md §2): the other nodes serving this relay URL and the shared key.
  MeshConfig read_mesh(const Field& at) {
    MeshConfig mesh;
    Section s = read_map(at, {"peers", "psk_file", "max_remote_endpoints"});
    if (auto* f = s.find("peers")) {
      for (const Field& item : list_items(*f, "a list of peer URLs")) {
        std::string error;
        auto peer = parse_mesh_peer(as_string(item), error);
        if (!peer) fail(item.line, item.path, error);
        mesh.peers.push_back(std::move(*peer));
      }
    }
    const Field* psk = s.find("psk_file");
    if (psk) {
      mesh.psk_file = as_string(*psk);
      if (auto problem = detail::mesh_psk_problem(mesh.psk_file, mesh.psk)) {
        fail(psk->line, psk->path, *problem);
      }
    }
    if (auto* f = s.find("max_remote_endpoints")) {
      mesh.max_remote_endpoints = as_uint(*f, 1, std::uint64_t{1} << 32);
    }
    if (!mesh.peers.empty() && !psk) {
      fail(at.line, at.path + ".psk_file", "required when mesh.peers is set");
    }
    return mesh;
  }

  AccessConfig read_access(const Field& at) {
    AccessConfig access;
    const char* expected =
        "\"everyone\" or a mapping with one of allowlist, denylist, shared_token, http, "
        "capability_issuers";
    if (at.value.IsScalar()) {
      if (lowercase(at.value.Scalar()) != "everyone") {
        fail(
            at.line, at.path,
            "unknown access mode " + in_quotes(at.value.Scalar()) + " (expected " + expected + ")");
      }
      return access;
    }
    if (!at.value.IsMap()) {
      fail(at.line, at.path,
           std::string("expected ") + expected + ", found " + node_kind(at.value));
    }
    Section s =
        read_map(at, {"allowlist", "denylist", "shared_token", "http", "capability_issuers"});
    if (s.empty()) fail(at.line, at.path, std::string("expected ") + expected);
    if (s.size() > 1) {
      // Report the later of the conflicting keys: that is the one to delete.
      const Field* later = nullptr;
      for (const auto& [name, field] : s.fields()) {
        if (!later || field.line > later->line) later = &field;
      }
      fail(later->line, later->path, "only one access mode may be set");
    }
    const auto& [mode, field] = *s.fields().begin();
    if (mode == "allowlist" || mode == "denylist") {
      read_endpoint_list(mode, field, access);
    } else if (mode == "shared_token") {
      read_shared_tokens(field, access);
    } else if (mode == "capability_issuers") {
      read_capability_issuers(field, access);
    } else {
      read_access_http(field, access);
    }
    return access;
  }

  // One step per access mode (the mode key's value in `field`).

  void read_endpoint_list(const std::string& mode, const Field& field, AccessConfig& access) {
    access.mode = mode == "allowlist" ? AccessMode::Allowlist : AccessMode::Denylist;
    for (const Field& item : list_items(field, "a list of endpoint ids")) {
      const std::string& text = scalar(item, "an endpoint id");
      if (auto problem = detail::endpoint_id_problem(text)) fail(item.line, item.path, *problem);
      access.endpoints.push_back(*relay::EndpointId::parse(text));
    }
  }

  void read_shared_tokens(const Field& field, AccessConfig& access) {
    access.mode = AccessMode::SharedToken;
    for (const Field& item : list_items(field, "a list of tokens")) {
      access.tokens.push_back(as_string(item));
    }
    shared_token_field_ = field;
  }

  // Capability tokens (issue 19): the issuers' Ed25519 keys, at least one.
  void read_capability_issuers(const Field& field, AccessConfig& access) {
    access.mode = AccessMode::Capability;
    for (const Field& item : list_items(field, "a list of issuer public keys")) {
      const std::string& text = scalar(item, "an Ed25519 public key");
      auto key = relay::EndpointId::parse(text);
      if (!key || !key->is_valid_point()) {
        fail(item.line, item.path,
             "invalid issuer key " + in_quotes(text) +
                 " (expected an Ed25519 public key: 64 hex or 52 base32 characters)");
      }
      access.capability_issuers.push_back(*key);
    }
    if (access.capability_issuers.empty()) {
      fail(field.line, field.path, "the issuer list must not be empty");
    }
  }

  // The HTTP access callout: url (required), bearer token, timeout, cache, fail_open.
  void read_access_http(const Field& field, AccessConfig& access) {
    access.mode = AccessMode::Http;
    Section http = read_map(field, {"url", "bearer_token", "timeout_ms", "cache_ttl_secs",
                                    "cache_capacity", "fail_open"});
    const Field* url = http.find("url");
    if (!url) fail(field.line, child_path(field.path, "url"), "required key is missing");
    access.http_url = as_string(*url);
    if (auto problem = detail::access_url_problem(access.http_url)) {
      fail(url->line, url->path, *problem);
    }
    if (auto* f = http.find("bearer_token")) access.http_bearer_token = as_string(*f);
    if (auto* f = http.find("timeout_ms")) {
      access.http_timeout = std::chrono::milliseconds(as_uint(*f, 1, 600'000));
    }
    if (auto* f = http.find("cache_ttl_secs")) {
      access.http_cache_ttl = std::chrono::seconds(as_uint(*f, 0, 86'400));
    }
    if (auto* f = http.find("cache_capacity")) {
      access.http_cache_capacity = as_uint(*f, 0, 1 << 24);
    }
    if (auto* f = http.find("fail_open")) access.http_fail_open = as_bool(*f);
  }

  void apply_access_env(AccessConfig& access, const Field* access_field) {
    int line = access_field ? access_field->line : 0;
    if (access.mode == AccessMode::SharedToken) {
      const Field& list = shared_token_field_;
      if (const char* env = std::getenv("IROH_RELAY_ACCESS_TOKEN")) {
        if (!*env) fail(list.line, list.path, "IROH_RELAY_ACCESS_TOKEN is set but empty");
        access.tokens = {env};
      } else if (access.tokens.empty()) {
        fail(list.line ? list.line : line, list.path, "the token list must not be empty");
      }
    }
    if (access.mode == AccessMode::Http) {
      if (const char* env = std::getenv("IROH_RELAY_HTTP_BEARER_TOKEN")) {
        access.http_bearer_token = env;
      }
    }
  }

  struct TlsLines {
    int cert_mode = 0;
    int cert_path = 0;
    int key_path = 0;
  };

  std::string file_;
  bool dev_;
  TlsLines tls_lines_;
  Field shared_token_field_;
};

}  // namespace

ConfigError::ConfigError(std::string file, int line, std::string key, std::string reason)
    : std::runtime_error(detail::format_error(file, line, key, reason)),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)),
      reason_(std::move(reason)) {}

namespace {

// The one document of `text` (a null node when there is none); throws ConfigError.
YAML::Node load_document(std::string_view text, const std::string& name) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    throw ConfigError(name, line, "", "YAML syntax error: " + e.msg);
  }
  if (documents.size() > 1) {
    throw ConfigError(name, line_of(documents[1]), "", "more than one YAML document in the file");
  }
  return documents.empty() ? YAML::Node() : documents.front();
}

}  // namespace

Config parse_yaml(std::string_view text, const std::string& name, bool dev) {
  YAML::Node root = load_document(text, name);
  try {
    return Loader(name, dev).load(root);
  } catch (const YAML::Exception& e) {
    // Not expected (the loader only reads scalars and iterates), but never let it escape raw.
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    throw ConfigError(name, line, "", e.msg);
  }
}

Config load_file(const std::filesystem::path& path, bool dev) {
  const std::string name = path.string();
  std::string text = detail::read_config_text(path);
  // Issue 19 item 1: a file truncated by a failed deploy (or an editor) must not reload as the
  // defaults, which admit everyone; whitespace (tabs too, which YAML would reject as
  // indentation), comments and a bare `~` or `---` count as empty too.
  const bool toml = path.extension() == ".toml";
  if (blank_or_comments(text) || (!toml && load_document(text, name).IsNull())) {
    throw ConfigError(name, 0, "", "empty document");
  }
  // iroh-relay's own format (docs/migrating.md); anything else is YAML, as before.
  if (toml) return parse_relay_toml(text, name, dev);
  return parse_yaml(text, name, dev);
}

namespace {

std::string count_of(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// True if every element of `a` is in `b`.
template <typename T>
bool subset(const std::vector<T>& a, const std::vector<T>& b) {
  return std::all_of(a.begin(), a.end(),
                     [&](const T& x) { return std::find(b.begin(), b.end(), x) != b.end(); });
}

}  // namespace

std::string describe_access(const AccessConfig& access) {
  switch (access.mode) {
    case AccessMode::Everyone:
      return "everyone";
    case AccessMode::Allowlist:
      return "allowlist (" + count_of(access.endpoints.size(), "id", "ids") + ")";
    case AccessMode::Denylist:
      return "denylist (" + count_of(access.endpoints.size(), "id", "ids") + ")";
    case AccessMode::SharedToken:
      return "shared_token (" + count_of(access.tokens.size(), "token", "tokens") + ")";
    case AccessMode::Http:
      return "http (" + access.http_url + (access.http_fail_open ? ", fail_open" : "") + ")";
    case AccessMode::Capability:
      return "capability_issuers (" +
             count_of(access.capability_issuers.size(), "issuer", "issuers") + ")";
  }
  return "unknown";
}

std::optional<std::string> access_widening(const AccessConfig& current, const AccessConfig& next) {
  bool wider = false;
  if (next.mode == AccessMode::Everyone) {
    wider = current.mode != AccessMode::Everyone;
  } else if (current.mode == AccessMode::Everyone) {
    wider = false;  // anything restricts "everyone"
  } else if (next.mode != current.mode) {
    // Two different restricting modes cannot be compared; a change of mode may admit someone
    // the old one refused, so it is reported.
    wider = true;
  } else {
    switch (next.mode) {
      case AccessMode::Allowlist:
        wider = !subset(next.endpoints, current.endpoints);  // an id added
        break;
      case AccessMode::Denylist:
        wider = !subset(current.endpoints, next.endpoints);  // an id removed
        break;
      case AccessMode::SharedToken:
        wider = !subset(next.tokens, current.tokens);  // a token added
        break;
      case AccessMode::Capability:
        wider = !subset(next.capability_issuers, current.capability_issuers);
        break;
      case AccessMode::Http:
        // Another decision service, or failing open where it failed closed.
        wider =
            next.http_url != current.http_url || (next.http_fail_open && !current.http_fail_open);
        break;
      case AccessMode::Everyone:
        break;
    }
  }
  if (!wider) return std::nullopt;
  return describe_access(current) + " -> " + describe_access(next);
}

Config dev_default() {
  Config cfg = parse_yaml("", "<dev default>", true);
  cfg.source = "<dev default>";
  return cfg;
}

}  // namespace iroh::config
