// Reading TOML (toml++) with the YAML loader's error style: every value keeps the line it was
// written on, and every refusal is "<file>:<line>: <key>: <reason>". Used by the loaders of
// iroh-relay's and iroh-dns-server's own config files (toml_relay.cpp, toml_dns.cpp). Private to
// the config library.
#pragma once

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "iroh/config.hpp"

namespace iroh::config::detail {

class TomlReader {
 public:
  // A value together with the place it was written.
  struct Item {
    std::string path;  // "limits.client.rx.bytes_per_second", "access.allowlist[2]"
    int line = 0;      // 1-based; 0 = not in the file
    const toml::node* node = nullptr;
  };
  using Section = std::map<std::string, Item, std::less<>>;

  // `hint` ends the unknown-key error (e.g. where the other settings live).
  TomlReader(std::string file, std::string hint);

  // Parses `text` (a syntax error -> ConfigError with the parser's line) and returns the root.
  Item parse(std::string_view text);

  [[noreturn]] void fail(int line, const std::string& key, const std::string& reason) const;

  // The keys of a table, each one checked against `allowed`.
  Section read_table(const Item& at, std::initializer_list<std::string_view> allowed) const;
  bool is_table(const Item& item) const;
  bool is_string(const Item& item) const;
  bool is_array(const Item& item) const;
  bool as_bool(const Item& item) const;
  std::uint64_t as_uint(const Item& item, std::uint64_t min, std::uint64_t max) const;
  double as_number(const Item& item) const;  // an integer or a float
  std::string as_string(const Item& item, bool allow_empty = false) const;
  std::vector<Item> as_array(const Item& item, const char* expected) const;
  std::vector<std::string> as_string_list(const Item& item, const char* expected) const;
  // "host:port" / "[v6]:port", as Rust's SocketAddr (an IP address, not a host name).
  SocketAddr as_socket_addr(const Item& item) const;
  // An IPv4 or IPv6 address (Rust's IpAddr); `family` 0 = either, else AF_INET / AF_INET6.
  std::string as_ip(const Item& item, int family = 0) const;
  // A humantime duration ("1s", "7days", "1h 30m", "250ms"), as serde's humantime_serde reads it.
  std::chrono::milliseconds as_duration(const Item& item) const;

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::string hint_;
  toml::table root_;
};

}  // namespace iroh::config::detail
