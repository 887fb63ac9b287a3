#include "toml_reader.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "config_detail.hpp"

namespace iroh::config::detail {

namespace {

int line_of(const toml::node& node) {
  return static_cast<int>(node.source().begin.line);
}

const char* kind(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string child(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

}  // namespace

TomlReader::TomlReader(std::string file, std::string hint)
    : file_(std::move(file)), hint_(std::move(hint)) {}

void TomlReader::fail(int line, const std::string& key, const std::string& reason) const {
  throw ConfigError(file_, line, key, reason);
}

TomlReader::Item TomlReader::parse(std::string_view text) {
  try {
    root_ = toml::parse(text, file_);
  } catch (const toml::parse_error& e) {
    fail(static_cast<int>(e.source().begin.line), "",
         "TOML syntax error: " + std::string(e.description()));
  }
  return Item{"", 1, &root_};
}

bool TomlReader::is_table(const Item& item) const {
  return item.node->is_table();
}
bool TomlReader::is_string(const Item& item) const {
  return item.node->is_string();
}
bool TomlReader::is_array(const Item& item) const {
  return item.node->is_array();
}

TomlReader::Section TomlReader::read_table(const Item& at,
                                           std::initializer_list<std::string_view> allowed) const {
  const toml::table* table = at.node->as_table();
  if (!table) fail(at.line, at.path, std::string("expected a table, found ") + kind(*at.node));
  Section section;
  for (auto&& [key, value] : *table) {
    std::string name(key.str());
    std::string path = child(at.path, name);
    int line = static_cast<int>(key.source().begin.line);
    if (line <= 0) line = line_of(value);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string known;
      for (auto k : allowed) known += (known.empty() ? "" : ", ") + std::string(k);
      fail(line, path, "unknown key (known keys here: " + known + ")" + hint_);
    }
    section.emplace(name, Item{path, line, &value});
  }
  return section;
}

bool TomlReader::as_bool(const Item& item) const {
  if (auto v = item.node->value<bool>(); v && item.node->is_boolean()) return *v;
  fail(item.line, item.path,
       std::string("expected a boolean (true or false), found ") + kind(*item.node));
}

std::uint64_t TomlReader::as_uint(const Item& item, std::uint64_t min, std::uint64_t max) const {
  if (!item.node->is_integer()) {
    fail(item.line, item.path,
         std::string("expected a non-negative integer, found ") + kind(*item.node));
  }
  std::int64_t value = item.node->as_integer()->get();
  if (value < 0 || static_cast<std::uint64_t>(value) < min ||
      static_cast<std::uint64_t>(value) > max) {
    fail(item.line, item.path,
         "out of range: " + std::to_string(value) + " (allowed " + std::to_string(min) + " to " +
             std::to_string(max) + ")");
  }
  return static_cast<std::uint64_t>(value);
}

double TomlReader::as_number(const Item& item) const {
  if (item.node->is_integer()) return static_cast<double>(item.node->as_integer()->get());
  if (item.node->is_floating_point()) return item.node->as_floating_point()->get();
  fail(item.line, item.path, std::string("expected a number, found ") + kind(*item.node));
}

std::string TomlReader::as_string(const Item& item, bool allow_empty) const {
  if (!item.node->is_string()) {
    fail(item.line, item.path, std::string("expected a string, found ") + kind(*item.node));
  }
  std::string text = item.node->as_string()->get();
  if (text.empty() && !allow_empty) fail(item.line, item.path, "must not be empty");
  return text;
}

std::vector<TomlReader::Item> TomlReader::as_array(const Item& item, const char* expected) const {
  const toml::array* array = item.node->as_array();
  if (!array) {
    fail(item.line, item.path, std::string("expected ") + expected + ", found " + kind(*item.node));
  }
  std::vector<Item> items;
  std::size_t index = 0;
  for (const toml::node& element : *array) {
    int line = line_of(element);
    items.push_back(
        Item{item.path + "[" + std::to_string(index++) + "]", line ? line : item.line, &element});
  }
  return items;
}

std::vector<std::string> TomlReader::as_string_list(const Item& item, const char* expected) const {
  std::vector<std::string> out;
  for (const Item& element : as_array(item, expected)) out.push_back(as_string(element));
  return out;
}

SocketAddr TomlReader::as_socket_addr(const Item& item) const {
  std::string text = as_string(item);
  auto addr = SocketAddr::parse(text);
  // Rust's SocketAddr takes an IP address only ("localhost:80" does not parse).
  in6_addr v6{};
  in_addr v4{};
  bool ip = addr && (inet_pton(AF_INET, addr->host.c_str(), &v4) == 1 ||
                     inet_pton(AF_INET6, addr->host.c_str(), &v6) == 1);
  if (!addr || !ip) {
    fail(
        item.line, item.path,
        "invalid socket address " + in_quotes(text) + " (expected \"ip:port\" or \"[ipv6]:port\")");
  }
  return *addr;
}

std::string TomlReader::as_ip(const Item& item, int family) const {
  std::string text = as_string(item);
  in6_addr v6{};
  in_addr v4{};
  bool is_v4 = inet_pton(AF_INET, text.c_str(), &v4) == 1;
  bool is_v6 = inet_pton(AF_INET6, text.c_str(), &v6) == 1;
  if (family == AF_INET && !is_v4)
    fail(item.line, item.path, "invalid IPv4 address " + in_quotes(text));
  if (family == AF_INET6 && !is_v6)
    fail(item.line, item.path, "invalid IPv6 address " + in_quotes(text));
  if (!is_v4 && !is_v6) fail(item.line, item.path, "invalid IP address " + in_quotes(text));
  return text;
}

std::chrono::milliseconds TomlReader::as_duration(const Item& item) const {
  std::string text = as_string(item);
  const std::string shape =
      " (expected a duration such as \"1s\", \"250ms\", \"10min\", \"7days\" or \"1h 30m\")";
  struct Unit {
    std::string_view name;
    double ms;
  };
  // humantime's units (months and years as it counts them: 30.44 and 365.25 days).
  static constexpr Unit kUnits[] = {
      {"nsec", 1e-6},       {"ns", 1e-6},        {"usec", 1e-3},    {"us", 1e-3},
      {"msec", 1},          {"millis", 1},       {"ms", 1},         {"seconds", 1e3},
      {"second", 1e3},      {"secs", 1e3},       {"sec", 1e3},      {"s", 1e3},
      {"minutes", 6e4},     {"minute", 6e4},     {"mins", 6e4},     {"min", 6e4},
      {"m", 6e4},           {"hours", 3.6e6},    {"hour", 3.6e6},   {"hrs", 3.6e6},
      {"hr", 3.6e6},        {"h", 3.6e6},        {"days", 8.64e7},  {"day", 8.64e7},
      {"d", 8.64e7},        {"weeks", 6.048e8},  {"week", 6.048e8}, {"w", 6.048e8},
      {"months", 2.6298e9}, {"month", 2.6298e9}, {"M", 2.6298e9},   {"years", 3.15576e10},
      {"year", 3.15576e10}, {"y", 3.15576e10}};
  double total = 0;
  std::size_t i = 0, parts = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == start || i - start > 15)
      fail(item.line, item.path, "invalid duration " + in_quotes(text) + shape);
    double number = std::stod(text.substr(start, i - start));
    std::size_t unit_start = i;
    while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || text[i] == 'M')) ++i;
    std::string_view unit(text.data() + unit_start, i - unit_start);
    const Unit* found = nullptr;
    for (const Unit& u : kUnits) {
      if (u.name == unit) found = &u;
    }
    if (!found) fail(item.line, item.path, "invalid duration " + in_quotes(text) + shape);
    total += number * found->ms;
    ++parts;
  }
  if (parts == 0) fail(item.line, item.path, "invalid duration " + in_quotes(text) + shape);
  // A century is beyond any setting here; it also keeps the conversion in range.
  if (!std::isfinite(total) || total > 3.15576e12) {
    fail(item.line, item.path, "out of range: " + in_quotes(text) + " (at most 100 years)");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

}  // namespace iroh::config::detail
