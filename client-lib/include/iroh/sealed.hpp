// Sealed datagrams: end-to-end encryption of relay payloads, so the relay sees only ciphertext.
//
// Keys: both sides' Ed25519 identities (the EndpointIds the relay already uses) converted to
// X25519 (libsodium crypto_sign_ed25519_{pk,sk}_to_curve25519), combined with crypto_box
// (X25519 + XSalsa20-Poly1305).
//
// Wire format, version 1 (41 bytes of overhead):
//
//   offset 0   1 byte    version = 0x01
//   offset 1   24 bytes  nonce (random, crypto_box_NONCEBYTES)
//   offset 25  n + 16    crypto_box_easy(plaintext, nonce, recipient_x25519_pk, sender_x25519_sk)
//                        (16-byte Poly1305 tag, then the n ciphertext bytes)
//
// The sender is authenticated by the box: only the holder of the secret key behind the `src`
// EndpointId the relay reports can produce a box that opens with that key. A relay that rewrites
// `src` makes open() fail (Forged). There is no replay protection (like UDP, and like the QUIC
// packets iroh sends through relays, replay is the upper layer's business), no padding (the
// length is visible) and no forward secrecy (static keys). A future version gets a new first
// byte; open() rejects versions it does not know.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "iroh/relay_proto.hpp"

namespace iroh::client {

inline constexpr std::uint8_t kSealedVersion = 1;
inline constexpr std::size_t kSealedNonceSize = 24;
inline constexpr std::size_t kSealedTagSize = 16;
inline constexpr std::size_t kSealedOverhead = 1 + kSealedNonceSize + kSealedTagSize;  // 41
// Largest plaintext whose sealed form still fits one relay datagram (§5.4).
inline constexpr std::size_t kMaxSealedPlaintext = relay::kMaxDatagramContents - kSealedOverhead;

enum class OpenError {
  Truncated,           // shorter than the version byte + nonce + tag
  UnsupportedVersion,  // first byte is not a version this library reads
  BadKey,              // a key does not convert to X25519 (not a valid Ed25519 point)
  Forged,              // authentication failed: wrong sender, wrong recipient, or altered bytes
};
std::string_view to_string(OpenError e);

// nullopt if `recipient` is not a valid key or `plaintext` is larger than kMaxSealedPlaintext.
std::optional<relay::Bytes> seal(const relay::SecretKey& sender, const relay::EndpointId& recipient,
                                 relay::ByteSpan plaintext);
std::variant<relay::Bytes, OpenError> open_sealed(const relay::SecretKey& recipient,
                                                  const relay::EndpointId& sender,
                                                  relay::ByteSpan sealed);

// seal/open for one identity with the per-peer shared keys cached (crypto_box_beforenm), which
// saves two X25519 operations per datagram. The cache holds up to `max_peers` peers and is
// cleared when full. Not thread-safe: one channel per executor.
class SealedChannel {
 public:
  explicit SealedChannel(const relay::SecretKey& identity, std::size_t max_peers = 4096);
  ~SealedChannel();
  SealedChannel(const SealedChannel&) = delete;
  SealedChannel& operator=(const SealedChannel&) = delete;

  const relay::EndpointId& endpoint_id() const { return endpoint_id_; }
  std::optional<relay::Bytes> seal(const relay::EndpointId& recipient, relay::ByteSpan plaintext);
  std::variant<relay::Bytes, OpenError> open(const relay::EndpointId& sender,
                                             relay::ByteSpan sealed);

  // Seals and queues on any client with RelayClient's send() signature (RelayClient,
  // ReconnectingRelayClient). False if sealing failed or the client dropped the datagram.
  template <class Client>
  bool send(Client& client, const relay::EndpointId& recipient, relay::ByteSpan plaintext) {
    auto sealed = seal(recipient, plaintext);
    return sealed && client.send(recipient, *sealed);
  }

 private:
  const std::uint8_t* shared_key(const relay::EndpointId& peer);

  relay::EndpointId endpoint_id_;
  std::array<std::uint8_t, 32> x25519_secret_{};
  std::size_t max_peers_;
  std::unordered_map<relay::EndpointId, std::array<std::uint8_t, 32>, relay::EndpointIdHash>
      shared_keys_;
};

}  // namespace iroh::client
