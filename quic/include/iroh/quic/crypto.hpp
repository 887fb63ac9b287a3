// QUIC-TLS packet protection (RFC 9001 §5): HKDF key schedule, AEAD payload protection and header
// protection. Pure functions over byte spans built on OpenSSL EVP; errors are empty optionals,
// never exceptions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace iroh::quic {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

enum class Aead { Aes128Gcm, Aes256Gcm, ChaCha20Poly1305 };
enum class Hash { Sha256, Sha384 };

inline constexpr std::size_t kAeadTagSize = 16;
inline constexpr std::size_t kHeaderProtectionSampleSize = 16;

std::size_t aead_key_size(Aead aead);
std::size_t hash_size(Hash hash);

std::optional<Bytes> hkdf_extract(Hash hash, ByteSpan salt, ByteSpan ikm);
// TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1), label without the "tls13 " prefix.
std::optional<Bytes> hkdf_expand_label(Hash hash, ByteSpan secret, std::string_view label,
                                       ByteSpan context, std::size_t length);

// Keys of one direction of one packet number space.
struct PacketKeys {
  Aead aead = Aead::Aes128Gcm;
  Bytes key;
  Bytes iv;  // 12 bytes
  Bytes hp;  // header protection key
};

std::optional<PacketKeys> derive_packet_keys(Aead aead, Hash hash, ByteSpan secret);

// Stateless reset tokens (RFC 9000 §10.3.2): HMAC-SHA256 of the connection ID under a key the
// server keeps for its lifetime, so a token can be recomputed for a packet whose connection is
// gone.
using StatelessResetKey = std::array<std::uint8_t, 32>;
std::array<std::uint8_t, 16> stateless_reset_token(const StatelessResetKey& key, ByteSpan cid);

struct InitialSecrets {
  Bytes client;
  Bytes server;
};
// Initial secrets of QUIC v1 from the Destination Connection ID of the client's first Initial.
InitialSecrets derive_initial_secrets(ByteSpan client_dcid);
// Initial keys are always AES-128-GCM / SHA-256.
struct InitialKeys {
  PacketKeys client;
  PacketKeys server;
};
InitialKeys derive_initial_keys(ByteSpan client_dcid);

// Ciphertext || tag. nullopt only if OpenSSL fails (bad key sizes).
std::optional<Bytes> aead_seal(const PacketKeys& keys, std::uint64_t packet_number, ByteSpan aad,
                               ByteSpan plaintext);
// nullopt if authentication fails.
std::optional<Bytes> aead_open(const PacketKeys& keys, std::uint64_t packet_number, ByteSpan aad,
                               ByteSpan ciphertext_and_tag);

// First 5 bytes of the header protection mask for a 16-byte sample.
std::optional<std::array<std::uint8_t, 5>> header_protection_mask(const PacketKeys& keys,
                                                                  ByteSpan sample);

}  // namespace iroh::quic
