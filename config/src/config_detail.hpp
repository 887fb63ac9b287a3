// Helpers shared by the YAML loader (config.cpp) and the TOML loaders (toml_relay.cpp,
// toml_dns.cpp): one home for each check, so that both formats refuse the same values with the
// same words. Private to the config library.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "iroh/config.hpp"

namespace iroh::config::detail {

// "file:line: key: reason" (line 0 and an empty key are left out).
std::string format_error(const std::string& file, int line, const std::string& key,
                         const std::string& reason);
std::string lowercase(std::string_view text);
// `text` in double quotes, control bytes escaped.
std::string in_quotes(std::string_view text);
// Tells a mistyped id from a well-formed one whose bytes are not a curve point.
bool has_endpoint_id_shape(std::string_view text);
// Why `text` is not an endpoint id (64 hex or 52 base32 characters of an Ed25519 public key), or
// nullopt.
std::optional<std::string> endpoint_id_problem(std::string_view text);
// Why `url` is not usable for access.http (http:// or https:// with a host), or nullopt.
std::optional<std::string> access_url_problem(const std::string& url);
// Why `text` is not a domain name, or nullopt. "." is the root.
std::optional<std::string> domain_name_problem(std::string_view text);
// Why `text` is not "mname rname serial refresh retry expire minimum", or nullopt.
std::optional<std::string> soa_problem(const std::string& text);
// Why `path` cannot be read as a file, or nullopt.
std::optional<std::string> unreadable(const std::filesystem::path& path);
// The same listener address: "::" and "0:0:0:0:0:0:0:0" are one.
bool same_addr(const SocketAddr& a, const SocketAddr& b);
// Why a lookup listener's own letsencrypt certificate (`lookup`, issue 17 item 2) cannot be
// ordered beside the relay's (`relay`, may be absent), or nullopt: a shared cache directory (each
// order would replace the other's acme-cert.pem), or, both with TLS-ALPN-01, a shared domain
// (one validation certificate per name at a time, RFC 8737).
std::optional<std::string> lookup_acme_problem(const std::optional<TlsConfig>& relay,
                                               const TlsConfig& lookup);
// iroh-dns-server's file name for a manual certificate: characters outside [a-zA-Z0-9.-] removed.
std::string escape_hostname(const std::string& name);
// Why `path` cannot serve as mesh.psk_file (unreadable, group/other access, empty or shorter
// than 32 bytes), or nullopt with `psk` set to its trimmed contents.
std::optional<std::string> mesh_psk_problem(const std::filesystem::path& path, std::string& psk);
// The whole file (at most 1 MiB); throws ConfigError naming the file.
std::string read_config_text(const std::filesystem::path& path);
// True if every line of `text` is blank or a '#' comment (YAML and TOML share the syntax).
bool blank_or_comments(std::string_view text);
// IROH_RELAY_ACME_URL (ACME directory) and IROH_RELAY_ACME_CA (PEM bundle trusted for the ACME
// server's HTTPS), iroh-relay's environment overrides; `source` names the file for errors.
void apply_acme_env(TlsConfig& tls, const std::string& source);

}  // namespace iroh::config::detail
