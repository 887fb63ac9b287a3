// The mesh section's checks (issue 16, docs/mesh.md §2): peer URLs and the pre-shared key file.
#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config_detail.hpp"
#include "iroh/config.hpp"

namespace iroh::config {

std::optional<MeshPeer> parse_mesh_peer(std::string_view text, std::string& error) {
  MeshPeer peer;
  peer.url = std::string(text);
  std::string_view rest;
  if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    rest = text.substr(8);
    peer.tls = true;
    peer.port = 443;
  } else {
    error = "expected an http:// or https:// URL, found " + detail::in_quotes(text);
    return std::nullopt;
  }
  // The link always goes to /relay/mesh (docs/mesh.md §3); a path in the URL is ignored.
  rest = rest.substr(0, rest.find_first_of("/?#"));
  std::string_view host = rest, port;
  if (rest.starts_with("[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 address in " + detail::in_quotes(text);
      return std::nullopt;
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        error = "unexpected text after the IPv6 address in " + detail::in_quotes(text);
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || host.find('@') != std::string_view::npos) {
    error = "no host in " + detail::in_quotes(text);
    return std::nullopt;
  }
  if (!port.empty() || rest.ends_with(":")) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535) {
      error = "invalid port in " + detail::in_quotes(text);
      return std::nullopt;
    }
    peer.port = static_cast<std::uint16_t>(value);
  }
  peer.host = std::string(host);
  return peer;
}

namespace detail {

// Why the key file cannot serve as mesh.psk_file, or nullopt with `psk` set. The key proves a
// node's membership (docs/mesh.md §4), so a file others can read is refused like ssh refuses a
// readable private key.
std::optional<std::string> mesh_psk_problem(const std::filesystem::path& path, std::string& psk) {
  if (auto reason = unreadable(path)) return "cannot read " + path.string() + ": " + *reason;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return "cannot read " + path.string() + ": " + std::strerror(errno);
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    return path.string() + " is accessible to group or others (mode " + mode + "); chmod 600 it";
  }
  if (st.st_size > 4096) return path.string() + " is larger than 4096 bytes";
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  auto first = text.find_first_not_of(" \t\r\n");
  auto last = text.find_last_not_of(" \t\r\n");
  text = first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
  if (text.empty()) return path.string() + " is empty";
  if (text.size() < 32) {
    return path.string() + " holds " + std::to_string(text.size()) +
           " bytes; at least 32 are needed (e.g. `openssl rand -hex 32`)";
  }
  psk = std::move(text);
  return std::nullopt;
}

}  // namespace detail
}  // namespace iroh::config
