#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "iroh/pkarr.hpp"
#include "pkarr_internal.hpp"

namespace iroh::pkarr {
namespace {

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_port(std::string_view s) {
  if (!is_digits(s) || s.size() > 5) return false;
  return std::stoul(std::string(s)) <= 65535;
}

// Rust SocketAddr syntax: "a.b.c.d:port" or "[v6]:port" / "[v6%scope]:port".
bool is_socket_addr(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || !is_port(s.substr(colon + 1))) return false;
  std::string_view host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (const auto pct = host.find('%'); pct != std::string_view::npos) {
      if (!is_digits(host.substr(pct + 1))) return false;
      host = host.substr(0, pct);
    }
    in6_addr v6;
    return inet_pton(AF_INET6, std::string(host).c_str(), &v6) == 1;
  }
  in_addr v4;
  return inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1;
}

// Custom transport address: "<hex transport id>_<lowercase hex data>".
bool is_custom_addr(std::string_view s) {
  const auto sep = s.find('_');
  if (sep == std::string_view::npos || sep == 0 || sep > 16) return false;
  const std::string_view id = s.substr(0, sep);
  const std::string_view data = s.substr(sep + 1);
  return is_lower_hex(id) && is_lower_hex(data) && data.size() % 2 == 0;
}

// An absolute URL: "scheme:" followed by a non-empty rest without blanks or control characters.
bool is_url(std::string_view s) {
  const auto colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= s.size()) return false;
  if (!std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (std::size_t i = 1; i < colon; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

}  // namespace

std::vector<Record> endpoint_records(const PublicKey& key, const EndpointInfo& info,
                                     std::uint32_t ttl) {
  const std::string name = std::string(kIrohTxtName) + "." + key_to_z32(key) + ".";
  std::vector<Record> out;
  for (const std::string& url : info.relay_urls) {
    out.push_back(Record::make_txt(name, ttl, {"relay=" + url}));
  }
  std::vector<std::string_view> seen;
  for (const std::string& addr : info.addrs) {
    if (std::find(seen.begin(), seen.end(), addr) != seen.end()) continue;
    seen.push_back(addr);
    out.push_back(Record::make_txt(name, ttl, {"addr=" + addr}));
  }
  if (info.user_data) out.push_back(Record::make_txt(name, ttl, {"user-data=" + *info.user_data}));
  return out;
}

Result<SignedPacket> sign_endpoint_info(const relay::SecretKey& key, std::uint64_t timestamp_us,
                                        const EndpointInfo& info, std::uint32_t ttl) {
  if (info.user_data && info.user_data->size() > kMaxUserDataSize) return Error::BadRecord;
  return SignedPacket::sign_records(key, timestamp_us,
                                    endpoint_records(detail::public_key_of(key), info, ttl));
}

Result<EndpointInfo> parse_endpoint_info(const std::vector<Record>& txt_records) {
  EndpointInfo info;
  for (const Record& r : txt_records) {
    if (r.type != kTypeTxt) continue;
    std::string text;
    for (const std::string& s : r.txt) text += s;
    const auto eq = text.find('=');
    if (eq == std::string::npos) return Error::BadEndpointRecord;
    const std::string_view key = std::string_view(text).substr(0, eq);
    std::string_view value = std::string_view(text).substr(eq + 1);
    if (const auto eq2 = value.find('='); eq2 != std::string_view::npos) {
      value = value.substr(0, eq2);
    }
    if (key == "relay") {
      if (is_url(value)) info.relay_urls.emplace_back(value);
    } else if (key == "addr") {
      if (is_socket_addr(value) || is_custom_addr(value)) info.addrs.emplace_back(value);
    } else if (key == "user-data") {
      if (!info.user_data && value.size() <= kMaxUserDataSize) info.user_data.emplace(value);
    } else {
      return Error::BadEndpointRecord;
    }
  }
  return info;
}

Result<EndpointInfo> endpoint_info(const SignedPacket& packet) {
  return parse_endpoint_info(lookup(zone_records(packet), kIrohTxtName, kTypeTxt));
}

}  // namespace iroh::pkarr
