// A one-shot HTTP/1.1 client for the small requests of this library (pkarr PUT/GET, DoH, the
// probe's /ping and /generate_204): one connection per request, http:// or https:// with the
// same TLS rules as RelayClient, a deadline for the whole exchange, bounded response bodies.
// Redirects are not followed (as iroh does not).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iroh::client {

struct HttpOptions {
  // https: trust this PEM bundle instead of the system roots; verification is on by default.
  std::optional<std::filesystem::path> ca_file;
  bool verify_tls = true;
  // DNS + TCP + TLS + request + response.
  std::chrono::milliseconds timeout{10000};
  // Longer bodies fail the request (Errc::Io).
  std::size_t max_body = 64 * 1024;
};

struct HttpResponse {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::uint8_t> body;

  // First header with that name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
  std::string body_text() const { return std::string(body.begin(), body.end()); }
};

// Any status is a result; transport failures throw RelayClientError (InvalidUrl, Io, Tls,
// Timeout). `url` is absolute (path and query are sent as given).
boost::asio::awaitable<HttpResponse> http_request(
    std::string_view method, std::string_view url, std::vector<std::uint8_t> body = {},
    std::vector<std::pair<std::string, std::string>> headers = {}, HttpOptions options = {});

}  // namespace iroh::client
