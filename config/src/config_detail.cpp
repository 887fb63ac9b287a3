#include "config_detail.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

namespace iroh::config::detail {

namespace fs = std::filesystem;

namespace {
// Config files are hand-written; anything this big is a mistake (or an attack on the parser).
constexpr std::uintmax_t kMaxFileSize = 1 << 20;
}  // namespace

std::string format_error(const std::string& file, int line, const std::string& key,
                         const std::string& reason) {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += reason;
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  });
  return out;
}

std::string in_quotes(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out + "\"";
}

bool has_endpoint_id_shape(std::string_view text) {
  auto is_hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  auto is_base32 = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
  };
  if (text.size() == 64) return std::all_of(text.begin(), text.end(), is_hex);
  if (text.size() == 52) return std::all_of(text.begin(), text.end(), is_base32);
  return false;
}

std::optional<std::string> endpoint_id_problem(std::string_view text) {
  auto id = relay::EndpointId::parse(text);
  if (!id && !has_endpoint_id_shape(text)) {
    return "invalid endpoint id " + in_quotes(text) +
           " (expected 64 hex characters or 52 base32 characters)";
  }
  if (!id || !id->is_valid_point()) {
    return "invalid endpoint id " + in_quotes(text) + " (not an Ed25519 public key)";
  }
  return std::nullopt;
}

std::optional<std::string> access_url_problem(const std::string& url) {
  std::string scheme = lowercase(url.substr(0, url.find("://")));
  auto rest = url.find("://");
  if ((scheme != "http" && scheme != "https") || rest == std::string::npos ||
      rest + 3 >= url.size()) {
    return "invalid URL " + in_quotes(url) + " (expected http://... or https://...)";
  }
  return std::nullopt;
}

// Letters, digits, '-' and '_' in labels of 1..63 bytes, at most 253 bytes.
std::optional<std::string> domain_name_problem(std::string_view text) {
  if (text == ".") return std::nullopt;
  if (text.ends_with('.')) text.remove_suffix(1);
  if (text.empty()) return "empty name";
  if (text.size() > 253) return "longer than 253 bytes";
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != '.') {
      char c = text[i];
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_';
      if (!ok) return "character " + in_quotes(std::string_view(&text[i], 1)) + " not allowed";
      continue;
    }
    std::size_t length = i - start;
    if (length == 0) return std::string("empty label");
    if (length > 63) return std::string("label longer than 63 bytes");
    start = i + 1;
  }
  return std::nullopt;
}

std::optional<std::string> soa_problem(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > start) parts.push_back(text.substr(start, i - start));
  }
  const char* shape = " (expected \"mname rname serial refresh retry expire minimum\")";
  if (parts.size() != 7) {
    return "expected 7 fields, found " + std::to_string(parts.size()) + shape;
  }
  for (int n = 0; n < 2; ++n) {
    if (auto problem = domain_name_problem(parts[n])) {
      return "invalid domain name " + in_quotes(parts[n]) + " (" + *problem + ")" + shape;
    }
  }
  for (std::size_t n = 2; n < 7; ++n) {
    std::uint32_t value = 0;
    const std::string& p = parts[n];
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (ec != std::errc() || end != p.data() + p.size()) {
      return "field " + std::to_string(n + 1) + " " + in_quotes(p) +
             " is not a 32-bit unsigned number" + shape;
    }
  }
  return std::nullopt;
}

std::optional<std::string> unreadable(const fs::path& path) {
  std::error_code ec;
  auto status = fs::status(path, ec);
  if (ec) return ec.message();
  if (fs::is_directory(status)) return std::string("is a directory");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) return std::string(std::strerror(errno));
  std::fclose(file);
  return std::nullopt;
}

std::string read_config_text(const fs::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    throw ConfigError(
        name, 0, "",
        "cannot read config file: " + (ec ? ec.message() : std::string("no such file")));
  }
  if (!fs::is_regular_file(status)) {
    throw ConfigError(name, 0, "", "cannot read config file: not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(name, 0, "", std::string("cannot read config file: ") + std::strerror(errno));
  }
  std::string text;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxFileSize) {
      throw ConfigError(name, 0, "",
                        "config file is larger than " + std::to_string(kMaxFileSize) + " bytes");
    }
  }
  if (in.bad()) throw ConfigError(name, 0, "", "cannot read config file: read error");
  return text;
}

bool blank_or_comments(std::string_view text) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    const std::size_t first = line.find_first_not_of(" \t\r\f\v");
    if (first != std::string_view::npos && line[first] != '#') return false;
    start = end + 1;
  }
  return true;
}

// The same address: "::" and "0:0:0:0:0:0:0:0" are one.
bool same_addr(const SocketAddr& a, const SocketAddr& b) {
  if (a.port != b.port) return false;
  in6_addr a6{}, b6{};
  in_addr a4{}, b4{};
  if (inet_pton(AF_INET6, a.host.c_str(), &a6) == 1 &&
      inet_pton(AF_INET6, b.host.c_str(), &b6) == 1) {
    return std::memcmp(&a6, &b6, sizeof a6) == 0;
  }
  if (inet_pton(AF_INET, a.host.c_str(), &a4) == 1 &&
      inet_pton(AF_INET, b.host.c_str(), &b4) == 1) {
    return a4.s_addr == b4.s_addr;
  }
  return a.host == b.host;
}

namespace {

// The same directory (compared as absolute, normalised paths; neither needs to exist).
bool same_directory(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  fs::path abs_a = fs::weakly_canonical(fs::absolute(a, ec), ec);
  fs::path abs_b = fs::weakly_canonical(fs::absolute(b, ec), ec);
  return (abs_a / "").lexically_normal() == (abs_b / "").lexically_normal();
}

}  // namespace

std::optional<std::string> lookup_acme_problem(const std::optional<TlsConfig>& relay,
                                               const TlsConfig& lookup) {
  if (lookup.cert_mode != CertMode::LetsEncrypt || !relay ||
      relay->cert_mode != CertMode::LetsEncrypt) {
    return std::nullopt;
  }
  if (same_directory(lookup.cert_dir, relay->cert_dir)) {
    return "its ACME cache " + in_quotes(lookup.cert_dir.string()) +
           " is the relay's tls.cert_dir; the two certificates need cache directories of their own";
  }
  if (lookup.acme_challenge == AcmeChallenge::TlsAlpn01 &&
      relay->acme_challenge == AcmeChallenge::TlsAlpn01) {
    for (const auto& name : lookup.hostname) {
      for (const auto& other : relay->hostname) {
        if (lowercase(name) == lowercase(other)) {
          return "domain " + in_quotes(name) +
                 " is also ordered by the relay's tls section, and two TLS-ALPN-01 validations "
                 "of one name cannot run at once; use other domains, or the relay's listener";
        }
      }
    }
  }
  return std::nullopt;
}

std::string escape_hostname(const std::string& name) {
  std::string out;
  for (char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.') {
      out += c;
    }
  }
  return out;
}

void apply_acme_env(TlsConfig& tls, const std::string& source) {
  // iroh-relay reads both only for cert_mode LetsEncrypt; they are checked here like the keys.
  if (const char* url = std::getenv("IROH_RELAY_ACME_URL")) {
    std::string text = url;
    if (!text.starts_with("https://")) {
      throw ConfigError(source, 0, "IROH_RELAY_ACME_URL",
                        "must be an https:// URL, found " + in_quotes(text));
    }
    tls.acme_directory_url = text;
  }
  if (const char* ca = std::getenv("IROH_RELAY_ACME_CA")) {
    fs::path path = ca;
    std::error_code ec;
    if (path.empty() || !fs::is_regular_file(path, ec)) {
      throw ConfigError(source, 0, "IROH_RELAY_ACME_CA", "not a readable file: " + path.string());
    }
    tls.acme_ca_file = path;
  }
}

}  // namespace iroh::config::detail
