// The address lookup keys of the YAML config (spec address-lookup.md §8): pkarr, zone_store,
// dns.
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

#include "yaml_loader.hpp"

namespace iroh::config::yaml {

void Loader::read_lookup(const Section& top, Config& cfg) {
  read_pkarr(top, cfg);
  read_zone_store(top, cfg);
  read_dns_service(top, cfg);
}

void Loader::read_pkarr(const Section& top, Config& cfg) {
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

void Loader::read_zone_store(const Section& top, Config& cfg) {
  cfg.zone_store.path = cfg.data_dir / "pkarr.sqlite3";
  if (auto* f = top.find("zone_store")) {
    Section s = read_map(*f, {"path", "eviction_secs", "eviction_interval_secs", "cache_capacity",
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
    if (auto* c = s.find("cache_capacity")) cfg.zone_store.cache_capacity = as_uint(*c, 0, 1 << 26);
    if (auto* m = s.find("max_records")) {
      cfg.zone_store.max_records = as_uint(*m, 0, std::uint64_t{1} << 40);
    }
    read_zone_store_backend(s, *f, cfg.zone_store);
  }
}

void Loader::read_dns_service(const Section& top, Config& cfg) {
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

void Loader::read_zone_store_backend(const Section& s, const Field& at, ZoneStoreConfig& store) {
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

void Loader::read_dns(const Field& at, DnsConfig& dns) {
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

std::string Loader::as_fqdn(const Field& f) {
  std::string text = as_string(f);
  if (auto problem = domain_name_problem(text)) {
    fail(f.line, f.path, "invalid domain name " + in_quotes(text) + " (" + *problem + ")");
  }
  text = lowercase(text);
  if (!text.ends_with('.')) text += '.';
  return text;
}

void Loader::check_soa(const Field& f, const std::string& text) {
  if (auto problem = detail::soa_problem(text)) fail(f.line, f.path, *problem);
}

}  // namespace iroh::config::yaml
