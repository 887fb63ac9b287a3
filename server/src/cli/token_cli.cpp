#include "cli/token_cli.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>

#include "core/tls.hpp"
#include "iroh/encoding.hpp"
#include "relay/capability_token.hpp"

namespace iroh::server {

namespace {

constexpr const char* kTokenUsage =
    "Usage:\n"
    "  iroh-relay token keygen --key FILE\n"
    "  iroh-relay token pubkey --key FILE\n"
    "  iroh-relay token issue --key FILE --endpoint ID --ttl DURATION [--note TEXT]\n"
    "\n"
    "DURATION: 90s, 30m, 24h, 7d or a number of seconds. ID: 64 hex or 52 base32 characters.\n"
    "The key file holds the issuer's 32-byte Ed25519 seed as 64 hex characters; put the public\n"
    "key printed by keygen/pubkey into access.capability_issuers.\n";

std::optional<relay::SecretKey> read_key(const std::string& path) {
  std::string text;
  try {
    text = read_text_file(path);
  } catch (const std::exception& e) {
    std::cerr << "iroh-relay token: " << e.what() << "\n";
    return std::nullopt;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  const auto seed = encoding::hex_decode(text);
  if (!seed || seed->size() != 32) {
    std::cerr << "iroh-relay token: " << path << ": expected 64 hex characters (an Ed25519 seed)\n";
    return std::nullopt;
  }
  relay::SecretKey key;
  std::copy(seed->begin(), seed->end(), key.seed.begin());
  return key;
}

int keygen(const std::string& path) {
  relay::SecretKey key = relay::SecretKey::generate();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    std::cerr << "iroh-relay token: cannot create " << path << " (it must not exist yet)\n";
    return 1;
  }
  std::string line = encoding::hex_encode(key.seed) + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size());
  ok = ::close(fd) == 0 && ok;
  sodium_memzero(line.data(), line.size());  // the seed's text is as secret as the seed
  if (!ok) {
    std::cerr << "iroh-relay token: cannot write " << path << "\n";
    return 1;
  }
  std::cout << key.public_key().to_hex() << "\n";
  return 0;
}

}  // namespace

int run_token_command(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  if (argc < 3) {
    std::cerr << kTokenUsage;
    return 2;
  }
  std::string command = argv[2];
  std::string key_path, endpoint, ttl, note;
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    bool ok = arg == "--key"        ? value(key_path)
              : arg == "--endpoint" ? value(endpoint)
              : arg == "--ttl"      ? value(ttl)
              : arg == "--note"     ? value(note)
                                    : false;
    if (!ok) {
      std::cerr << "iroh-relay token: bad argument '" << arg << "'\n" << kTokenUsage;
      return 2;
    }
  }
  if (command == "--help" || command == "-h") {
    std::cout << kTokenUsage;
    return 0;
  }
  if (key_path.empty()) {
    std::cerr << "iroh-relay token: --key FILE is required\n" << kTokenUsage;
    return 2;
  }
  if (command == "keygen") return keygen(key_path);
  auto key = read_key(key_path);
  if (!key) return 1;
  if (command == "pubkey") {
    std::cout << key->public_key().to_hex() << "\n";
    return 0;
  }
  if (command != "issue") {
    std::cerr << "iroh-relay token: unknown command '" << command << "'\n" << kTokenUsage;
    return 2;
  }
  auto id = relay::EndpointId::parse(endpoint);
  if (!id) {
    std::cerr << "iroh-relay token: --endpoint: not an endpoint id: '" << endpoint << "'\n";
    return 2;
  }
  auto seconds = parse_duration_seconds(ttl);
  if (!seconds) {
    std::cerr << "iroh-relay token: --ttl: expected e.g. 24h, 30m, 90s, 7d: '" << ttl << "'\n";
    return 2;
  }
  if (note.size() > kMaxCapabilityNote) {
    std::cerr << "iroh-relay token: --note: at most 64 bytes\n";
    return 2;
  }
  std::cout << issue_capability_token(*key, *id, std::uint64_t(std::time(nullptr)) + *seconds, note)
            << "\n";
  return 0;
}

}  // namespace iroh::server
