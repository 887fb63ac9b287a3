// The YAML config loader (config.cpp's parse_yaml/load_file), private to the config library:
// Loader reads one file into a Config, failing with a ConfigError that names the line and key.
// Its definitions go by subject: yaml_loader.cpp (load() and its steps, the scalar readers),
// yaml_tls.cpp (tls and lookup_listeners), yaml_lookup.cpp (pkarr, zone_store, dns),
// yaml_relay.cpp (limits, mesh, access).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config_detail.hpp"
#include "iroh/config.hpp"

namespace iroh::config::yaml {

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

inline const char* node_kind(const YAML::Node& node) {
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

inline int line_of(const YAML::Node& node) {
  auto mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

inline std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

inline std::string host_of(const SocketAddr& addr) {
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

  Config load(const YAML::Node& root);

 private:
  // Steps of load(), in file order of the keys they read: each reads its top-level keys into
  // `cfg` and applies their defaults (which may depend on keys read before, e.g. the bind
  // addresses default to http_bind_addr's host), failing on the first bad value.

  // http_bind_addr, tls and enable_quic_addr_discovery; returns the tls field for the file
  // checks done last (check_tls_files).
  const Field* read_relay_listener(const Section& top, Config& cfg);
  void read_metrics_listener(const Section& top, Config& cfg);

  // key_cache_capacity, relay_threads and the access section (with its environment overrides).
  void read_relay_tuning(const Section& top, Config& cfg);
  void read_stun(const Section& top, Config& cfg);

  // data_dir; --dev defaults it to $IROH_RELAY_DATA_DIR or ./data.
  void read_data_dir(const Section& top, Config& cfg);

  // log_level, log_format and shutdown_grace_secs.
  void read_logging(const Section& top, Config& cfg);

  // The readers of single values (yaml_loader.cpp); fail() throws the ConfigError.
  [[noreturn]] void fail(int line, const std::string& key, const std::string& reason) const;

  // Reads a mapping (a missing value counts as an empty one), rejecting non-string keys,
  // duplicate keys and keys outside `allowed`.
  Section read_map(const Field& at, std::initializer_list<std::string_view> allowed);
  const std::string& scalar(const Field& f, const char* expected);

  // Numbers and booleans must be written plainly: a quoted "80" is a string in YAML.
  void require_plain(const Field& f, std::string_view typed_tag, const char* expected);
  bool as_bool(const Field& f);
  std::uint64_t as_uint(const Field& f, std::uint64_t min, std::uint64_t max);
  double as_positive_double(const Field& f);

  // A rate per second: 0 = unlimited (nullopt), else a finite number above 0.
  std::optional<double> as_rate(const Field& f);
  std::string as_string(const Field& f, bool allow_empty = false);
  SocketAddr as_socket_addr(const Field& f);
  std::vector<Field> list_items(const Field& f, const char* expected);

  // ---- tls (yaml_tls.cpp) ----------------------------------------------------------------------
  TlsConfig read_tls(const Field& at, const SocketAddr& http_bind_addr);

  // Steps of read_tls(), in the order of its checks (the first failure is the one reported).
  CertMode read_cert_mode(const Field& mode);

  // https_bind_addr defaults to http_bind_addr's host, quic_bind_addr to https_bind_addr's.
  void read_tls_addresses(const Section& s, const SocketAddr& http_bind_addr, TlsConfig& tls);

  // hostname (one or a list), the certificate files (default <cert_dir>/default.crt and .key),
  // prod_tls, contact and dangerous_http_only (forced by --dev).
  void read_tls_names_and_files(const Section& s, TlsConfig& tls);

  // The ACME client's settings (staging directory unless prod_tls).
  void read_acme_settings(const Section& s, TlsConfig& tls);

  // letsencrypt needs the HTTPS listener, a hostname and a contact.
  void check_letsencrypt(const Field& at, const Field& mode, const TlsConfig& tls);

  // The certificate files are read at startup in manual/reloading mode; in --dev only QAD uses
  // them. Checking here turns a confusing TLS error later into a pointed config error now.
  void check_tls_files(const Config& cfg, const Field& tls_field);

  // ---- address lookup (enable_pkarr, pkarr_put_*, zone_store, enable_dns, dns) -----------------

  // lookup_listeners: http_bind_addr and/or https (a tls-like section: https_bind_addr required,
  // cert_mode manual | self_signed | letsencrypt, hostname = the domains; manual files default
  // to cert_dir/<first hostname>.crt / .key like iroh-dns-server's cert_cache).
  void read_lookup_listeners(const Field& at, Config& cfg);

  // The address lookup keys (spec address-lookup.md §8): the pkarr API, the zone store, DNS
  // (yaml_lookup.cpp). Called after data_dir is known (the store path defaults to a file in it).
  void read_lookup(const Section& top, Config& cfg);

  // enable_pkarr, the PUT rate limit (§4.5) and what it trusts (issue 19 item 4).
  void read_pkarr(const Section& top, Config& cfg);

  // zone_store: path (default <data_dir>/pkarr.sqlite3), eviction (§7.2), cache, bound, backend.
  void read_zone_store(const Section& top, Config& cfg);

  // enable_dns and the dns section; --dev uses iroh-dns-server's config.dev.toml (spec §8).
  void read_dns_service(const Section& top, Config& cfg);

  // zone_store.backend and its postgres_* keys (issue 15). The URL is not parsed here (that is
  // libpq's job, at connect); it may carry a password, so no error message repeats it.
  void read_zone_store_backend(const Section& s, const Field& at, ZoneStoreConfig& store);
  void read_dns(const Field& at, DnsConfig& dns);

  // A domain name, lower-cased, with the trailing dot added when missing.
  std::string as_fqdn(const Field& f);

  // The DNS server parses it again; checking here turns a typo into a config error with a line
  // number.
  void check_soa(const Field& f, const std::string& text);

  // ---- relay limits, mesh, access (yaml_relay.cpp) -------------------------------------------
  Limits read_limits(const Field& at);
  std::optional<ClientRxLimit> read_client_rx(const Field& at);

  // Issue 16 (docs/mesh.md §2): the other nodes serving this relay URL and the shared key.
  MeshConfig read_mesh(const Field& at);
  AccessConfig read_access(const Field& at);

  // One step per access mode (the mode key's value in `field`).
  void read_endpoint_list(const std::string& mode, const Field& field, AccessConfig& access);
  void read_shared_tokens(const Field& field, AccessConfig& access);

  // Capability tokens (issue 19): the issuers' Ed25519 keys, at least one.
  void read_capability_issuers(const Field& field, AccessConfig& access);

  // The HTTP access callout: url (required), bearer token, timeout, cache, fail_open.
  void read_access_http(const Field& field, AccessConfig& access);
  // IROH_RELAY_ACCESS_TOKEN and IROH_RELAY_HTTP_BEARER_TOKEN override the file.
  void apply_access_env(AccessConfig& access, const Field* access_field);

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

}  // namespace iroh::config::yaml
