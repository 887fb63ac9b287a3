// The relay's limits, mesh (issue 16) and access (issue 19) sections of the YAML config.
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

Limits Loader::read_limits(const Field& at) {
  Section s = read_map(at, {"accept_conn_limit", "accept_conn_burst", "client", "max_connections",
                            "max_connections_per_ip", "handshake_timeout_ms", "write_timeout_ms",
                            "client_queue_capacity", "client_queue_bytes", "total_queue_bytes",
                            "tcp_notsent_lowat", "qad_new_conn_rate", "qad_new_conn_burst",
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
  if (auto* f = s.find("tcp_notsent_lowat")) {
    limits.tcp_notsent_lowat = as_uint(*f, 0, std::uint64_t{1} << 30);
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

std::optional<ClientRxLimit> Loader::read_client_rx(const Field& at) {
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

MeshConfig Loader::read_mesh(const Field& at) {
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

AccessConfig Loader::read_access(const Field& at) {
  AccessConfig access;
  const char* expected =
      "\"everyone\" or a mapping with one of allowlist, denylist, shared_token, http, "
      "capability_issuers";
  if (at.value.IsScalar()) {
    if (lowercase(at.value.Scalar()) != "everyone") {
      fail(at.line, at.path,
           "unknown access mode " + in_quotes(at.value.Scalar()) + " (expected " + expected + ")");
    }
    return access;
  }
  if (!at.value.IsMap()) {
    fail(at.line, at.path, std::string("expected ") + expected + ", found " + node_kind(at.value));
  }
  Section s = read_map(at, {"allowlist", "denylist", "shared_token", "http", "capability_issuers"});
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

void Loader::read_endpoint_list(const std::string& mode, const Field& field, AccessConfig& access) {
  access.mode = mode == "allowlist" ? AccessMode::Allowlist : AccessMode::Denylist;
  for (const Field& item : list_items(field, "a list of endpoint ids")) {
    const std::string& text = scalar(item, "an endpoint id");
    if (auto problem = detail::endpoint_id_problem(text)) fail(item.line, item.path, *problem);
    access.endpoints.push_back(*relay::EndpointId::parse(text));
  }
}

void Loader::read_shared_tokens(const Field& field, AccessConfig& access) {
  access.mode = AccessMode::SharedToken;
  for (const Field& item : list_items(field, "a list of tokens")) {
    access.tokens.push_back(as_string(item));
  }
  shared_token_field_ = field;
}

void Loader::read_capability_issuers(const Field& field, AccessConfig& access) {
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

void Loader::read_access_http(const Field& field, AccessConfig& access) {
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

void Loader::apply_access_env(AccessConfig& access, const Field* access_field) {
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

}  // namespace iroh::config::yaml
