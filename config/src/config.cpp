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
#include "yaml_loader.hpp"

namespace iroh::config {

using detail::blank_or_comments;
using yaml::line_of;

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
    return yaml::Loader(name, dev).load(root);
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
