// RelayClientError and the names of its kinds (relay_client.hpp): what every failure of the
// relay client carries, apart from the client itself (relay_client.cpp).
#include <string>

#include "iroh/relay_client.hpp"

namespace iroh::client {

using boost::system::error_code;

std::string_view to_string(Errc e) {
  switch (e) {
    case Errc::InvalidUrl:
      return "invalid relay URL";
    case Errc::Io:
      return "I/O error";
    case Errc::Tls:
      return "TLS error";
    case Errc::Timeout:
      return "connect timed out";
    case Errc::Upgrade:
      return "WebSocket upgrade failed";
    case Errc::AuthDenied:
      return "relay denied authentication";
    case Errc::Protocol:
      return "relay protocol error";
    case Errc::PingTimeout:
      return "ping timed out";
    case Errc::Closed:
      return "connection closed";
    case Errc::NotConnected:
      return "not connected";
  }
  return "unknown error";
}

namespace {

std::string describe(Errc kind, const std::string& reason) {
  std::string text(to_string(kind));
  if (!reason.empty()) {
    text += ": ";
    text += reason;
  }
  return text;
}

}  // namespace

RelayClientError::RelayClientError(Errc kind, std::string reason, error_code cause)
    : std::runtime_error(describe(kind, reason)),
      kind_(kind),
      reason_(std::move(reason)),
      cause_(cause) {}

}  // namespace iroh::client
