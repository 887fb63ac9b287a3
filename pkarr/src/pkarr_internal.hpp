// Helpers shared by the pkarr sources; not part of the public API.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "iroh/pkarr.hpp"

namespace iroh::pkarr::detail {

// TXT RDATA <-> character-strings (each <= 255 bytes).
std::optional<Bytes> encode_txt(const std::vector<std::string>& strings);
std::optional<std::vector<std::string>> decode_txt(ByteSpan rdata);
std::string to_lower_ascii(std::string_view s);
PublicKey public_key_of(const relay::SecretKey& key);

}  // namespace iroh::pkarr::detail
