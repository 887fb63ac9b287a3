#include "iroh/identity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "iroh/encoding.hpp"

namespace iroh::client {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

std::string encode_secret_key(const relay::SecretKey& key) {
  std::string out(kSecretKeyFileTag);
  out += '\n';
  out += encoding::hex_encode(key.seed);
  out += '\n';
  return out;
}

std::optional<relay::SecretKey> decode_secret_key(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = trim(text.substr(0, nl));
    if (!line.empty() && line.front() != '#') lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  if (lines.size() != 2 || lines[0] != kSecretKeyFileTag || lines[1].size() != 64) {
    return std::nullopt;
  }
  auto decoded = encoding::hex_decode(lines[1]);
  if (!decoded) return std::nullopt;
  std::array<std::uint8_t, 32> seed{};
  std::copy(decoded->begin(), decoded->end(), seed.begin());
  return relay::SecretKey::from_seed(seed);
}

relay::SecretKey load_secret_key(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw IdentityError(path.string() + ": " + errno_text());
  }
  if ((st.st_mode & 077) != 0) {
    std::ostringstream mode;
    mode << std::oct << (st.st_mode & 0777);
    throw IdentityError(path.string() + ": permissions 0" + mode.str() +
                        " are too open (the secret key must be readable by its owner only; "
                        "chmod 600)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IdentityError(path.string() + ": cannot open");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > 4096)
    throw IdentityError(path.string() + ": not a secret key file (too large)");
  auto key = decode_secret_key(text);
  if (!key) {
    throw IdentityError(path.string() + ": not a secret key file (expected a line '" +
                        std::string(kSecretKeyFileTag) + "' and a line of 64 hex chars)");
  }
  return *key;
}

void save_secret_key(const std::filesystem::path& path, const relay::SecretKey& key,
                     bool overwrite) {
  if (!overwrite && std::filesystem::exists(path)) {
    throw IdentityError(path.string() + ": exists (refusing to overwrite a key)");
  }
  auto tmp = path;
  tmp += ".tmp" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw IdentityError(tmp.string() + ": " + errno_text());
  auto text = encode_secret_key(key);
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  std::string error = ok ? std::string() : errno_text();
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    error = errno_text();
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    throw IdentityError(path.string() + ": " + error);
  }
}

}  // namespace iroh::client
