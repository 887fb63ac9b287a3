#include "access_control.hpp"

#include <cctype>
#include <cstdlib>

namespace iroh::server {

AccessControl::AccessControl(const config::AccessConfig& access, const std::string& source)
    : mode_(access.mode) {
  switch (mode_) {
    case config::AccessMode::Everyone:
      break;
    case config::AccessMode::Allowlist:
    case config::AccessMode::Denylist:
      ids_.insert(access.endpoints.begin(), access.endpoints.end());
      break;
    case config::AccessMode::SharedToken:
      if (const char* env = std::getenv("IROH_RELAY_ACCESS_TOKEN"); env && *env) {
        tokens_.insert(env);
      } else {
        for (const auto& t : access.tokens) {
          if (t.empty()) throw config::ConfigError(source, 0, "access.shared_token", "empty token");
          tokens_.insert(t);
        }
      }
      if (tokens_.empty()) {
        throw config::ConfigError(source, 0, "access.shared_token", "the token list is empty");
      }
      break;
    case config::AccessMode::Http:
      throw config::ConfigError(source, 0, "access.http",
                                "HTTP access control is not supported by this build yet; use "
                                "everyone, allowlist, denylist or shared_token");
  }
}

std::optional<std::string> AccessControl::presented_token(const HttpRequest& req) {
  auto [begin, end] = req.equal_range(http::field::authorization);
  for (auto it = begin; it != end; ++it) {
    std::string_view value = it->value();
    auto space = value.find(' ');
    if (space == std::string_view::npos) continue;
    auto scheme = value.substr(0, space);
    std::string lower(scheme);
    for (auto& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "bearer") return std::string(value.substr(space + 1));
  }
  return query_param(req.target(), "token");
}

bool AccessControl::allow(const relay::EndpointId& id, const HttpRequest& req) const {
  switch (mode_) {
    case config::AccessMode::Everyone:
      return true;
    case config::AccessMode::Allowlist:
      return ids_.contains(id);
    case config::AccessMode::Denylist:
      return !ids_.contains(id);
    case config::AccessMode::SharedToken: {
      auto token = presented_token(req);
      return token && !token->empty() && tokens_.contains(*token);
    }
    case config::AccessMode::Http:
      return false;
  }
  return false;
}

}  // namespace iroh::server
