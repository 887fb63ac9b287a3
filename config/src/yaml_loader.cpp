// Loader::load() and its steps, and the readers of single values every section uses.
#include "yaml_loader.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>

namespace iroh::config::yaml {

Config Loader::load(const YAML::Node& root) {
  Config cfg;
  cfg.source = file_;
  cfg.dev = dev_;

  Field root_field{"", 1, root};
  if (root.IsScalar() || root.IsSequence()) {
    fail(line_of(root), "",
         std::string("the file must be a mapping of keys, found ") + node_kind(root));
  }
  Section top =
      read_map(root_field,
               {"enable_relay", "http_bind_addr", "tls", "enable_quic_addr_discovery", "limits",
                "enable_metrics", "metrics_bind_addr", "key_cache_capacity", "relay_threads",
                "access", "enable_stun", "stun_bind_addr", "data_dir", "log_level", "log_format",
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

const Field* Loader::read_relay_listener(const Section& top, Config& cfg) {
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

void Loader::read_metrics_listener(const Section& top, Config& cfg) {
  if (auto* f = top.find("enable_metrics")) cfg.enable_metrics = as_bool(*f);
  if (auto* f = top.find("metrics_bind_addr")) {
    cfg.metrics_bind_addr = as_socket_addr(*f);
  } else {
    cfg.metrics_bind_addr = {host_of(cfg.http_bind_addr), 9090};
  }
}

void Loader::read_relay_tuning(const Section& top, Config& cfg) {
  if (auto* f = top.find("key_cache_capacity")) {
    cfg.key_cache_capacity = as_uint(*f, 0, std::uint64_t{1} << 32);
  }
  if (auto* f = top.find("relay_threads")) {
    cfg.relay_threads = unsigned(as_uint(*f, 0, kMaxRelayThreads));
  }

  if (auto* f = top.find("access")) cfg.access = read_access(*f);
  apply_access_env(cfg.access, top.find("access"));
}

void Loader::read_stun(const Section& top, Config& cfg) {
  cfg.stun.enabled = dev_;
  if (auto* f = top.find("enable_stun")) cfg.stun.enabled = as_bool(*f);
  if (auto* f = top.find("stun_bind_addr")) {
    cfg.stun.bind_addr = as_socket_addr(*f);
  } else {
    cfg.stun.bind_addr = {host_of(cfg.http_bind_addr), 3478};
  }
}

void Loader::read_data_dir(const Section& top, Config& cfg) {
  if (auto* f = top.find("data_dir")) {
    cfg.data_dir = as_string(*f);
  } else if (dev_) {
    const char* env = std::getenv("IROH_RELAY_DATA_DIR");
    cfg.data_dir = env && *env ? fs::path(env) : fs::path("./data");
  }
}

void Loader::read_logging(const Section& top, Config& cfg) {
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

void Loader::fail(int line, const std::string& key, const std::string& reason) const {
  throw ConfigError(file_, line, key, reason);
}

Section Loader::read_map(const Field& at, std::initializer_list<std::string_view> allowed) {
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
      fail(line, path, "duplicate key (first set on line " + std::to_string(previous->line) + ")");
    }
    section.fields().emplace(name, Field{path, line, it->second});
  }
  return section;
}

const std::string& Loader::scalar(const Field& f, const char* expected) {
  if (!f.value.IsScalar()) {
    fail(f.line, f.path, std::string("expected ") + expected + ", found " + node_kind(f.value));
  }
  return f.value.Scalar();
}

void Loader::require_plain(const Field& f, std::string_view typed_tag, const char* expected) {
  const std::string& tag = f.value.Tag();
  if (tag != "?" && tag != typed_tag) {
    fail(f.line, f.path,
         std::string("expected ") + expected + ", found " +
             (tag == "!" ? std::string("a quoted string") : "a value tagged " + tag));
  }
}

bool Loader::as_bool(const Field& f) {
  const char* expected = "a boolean (true or false)";
  const std::string& text = scalar(f, expected);
  require_plain(f, kBoolTag, expected);
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  fail(f.line, f.path, std::string("expected ") + expected + ", found " + in_quotes(text));
}

std::uint64_t Loader::as_uint(const Field& f, std::uint64_t min, std::uint64_t max) {
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

double Loader::as_positive_double(const Field& f) {
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

std::optional<double> Loader::as_rate(const Field& f) {
  if (f.value.IsScalar() && f.value.Tag() == "?" &&
      (f.value.Scalar() == "0" || f.value.Scalar() == "0.0")) {
    return std::nullopt;
  }
  return as_positive_double(f);
}

std::string Loader::as_string(const Field& f, bool allow_empty) {
  const std::string& text = scalar(f, "a string");
  if (text.empty() && !allow_empty) fail(f.line, f.path, "must not be empty");
  return text;
}

SocketAddr Loader::as_socket_addr(const Field& f) {
  const std::string& text = scalar(f, "a socket address (\"host:port\" or \"[v6]:port\")");
  auto addr = SocketAddr::parse(text);
  if (!addr) {
    fail(f.line, f.path,
         "invalid socket address " + in_quotes(text) +
             " (expected \"host:port\", \"[v6]:port\" or \"*:port\")");
  }
  return *addr;
}

std::vector<Field> Loader::list_items(const Field& f, const char* expected) {
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

}  // namespace iroh::config::yaml
