// Authorization after the relay handshake (spec relay.md §6.9).
#pragma once

#include <string>
#include <unordered_set>

#include "iroh/config.hpp"
#include "iroh/relay_proto.hpp"
#include "iroh/server/http_router.hpp"

namespace iroh::server {

class AccessControl {
 public:
  // Throws config::ConfigError for modes this build does not implement (access.http) and for
  // an empty shared_token list.
  AccessControl(const config::AccessConfig& access, const std::string& config_source);

  bool allow(const relay::EndpointId& id, const HttpRequest& upgrade_request) const;

  // The token a client presented: first "Authorization: Bearer <t>", else ?token=<t>.
  static std::optional<std::string> presented_token(const HttpRequest& req);

 private:
  config::AccessMode mode_;
  std::unordered_set<relay::EndpointId, relay::EndpointIdHash> ids_;
  std::unordered_set<std::string> tokens_;
};

}  // namespace iroh::server
