// Endpoint identity on disk: an Ed25519 secret key (the 32-byte seed) in a small text file.
//
// File format (version 1), UTF-8 text:
//
//   iroh-secret-key-v1
//   <64 lowercase hex chars: the Ed25519 seed>
//
// Lines starting with '#' and blank lines are ignored; nothing else may follow. The file is
// written with mode 0600 (atomically: a temporary file in the same folder, then rename), and
// load_secret_key() refuses a file that group or others may read, as ssh does for its keys.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "iroh/relay_proto.hpp"

namespace iroh::client {

inline constexpr std::string_view kSecretKeyFileTag = "iroh-secret-key-v1";

class IdentityError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The file content for `key` (the format above, ending with a newline).
std::string encode_secret_key(const relay::SecretKey& key);
// Parses the file content; nullopt if it is not the format above.
std::optional<relay::SecretKey> decode_secret_key(std::string_view text);

// Throws IdentityError naming the path: missing/unreadable file, permissions wider than 0600,
// or content that is not the format above.
relay::SecretKey load_secret_key(const std::filesystem::path& path);
// Writes `key` with mode 0600. Refuses to replace an existing file unless `overwrite`.
// Throws IdentityError naming the path.
void save_secret_key(const std::filesystem::path& path, const relay::SecretKey& key,
                     bool overwrite = false);

}  // namespace iroh::client
