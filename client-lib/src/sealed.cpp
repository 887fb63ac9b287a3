#include "iroh/sealed.hpp"

#include <sodium.h>

#include <stdexcept>

namespace iroh::client {

namespace {

void ensure_sodium() {
  static const int ready = sodium_init();
  if (ready < 0) throw std::runtime_error("libsodium initialisation failed");
}

bool x25519_secret(const relay::SecretKey& key, std::uint8_t out[32]) {
  std::uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  std::uint8_t sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, key.seed.data());
  bool ok = crypto_sign_ed25519_sk_to_curve25519(out, sk) == 0;
  sodium_memzero(sk, sizeof sk);
  return ok;
}

bool x25519_public(const relay::EndpointId& id, std::uint8_t out[32]) {
  return crypto_sign_ed25519_pk_to_curve25519(out, id.bytes.data()) == 0;
}

relay::Bytes seal_with(const std::uint8_t* shared, relay::ByteSpan plaintext) {
  relay::Bytes out(kSealedOverhead + plaintext.size());
  out[0] = kSealedVersion;
  randombytes_buf(out.data() + 1, kSealedNonceSize);
  crypto_box_easy_afternm(out.data() + 1 + kSealedNonceSize, plaintext.data(), plaintext.size(),
                          out.data() + 1, shared);
  return out;
}

std::variant<relay::Bytes, OpenError> open_with(const std::uint8_t* shared,
                                                relay::ByteSpan sealed) {
  relay::Bytes out(sealed.size() - kSealedOverhead);
  if (crypto_box_open_easy_afternm(out.data(), sealed.data() + 1 + kSealedNonceSize,
                                   sealed.size() - 1 - kSealedNonceSize, sealed.data() + 1,
                                   shared) != 0) {
    return OpenError::Forged;
  }
  return out;
}

std::optional<OpenError> check_header(relay::ByteSpan sealed) {
  if (sealed.size() < kSealedOverhead) return OpenError::Truncated;
  if (sealed[0] != kSealedVersion) return OpenError::UnsupportedVersion;
  return std::nullopt;
}

// crypto_box_beforenm of our X25519 secret and the peer's converted public key.
bool precompute(const std::uint8_t* our_secret, const relay::EndpointId& peer,
                std::uint8_t out[32]) {
  std::uint8_t peer_public[32];
  if (!x25519_public(peer, peer_public)) return false;
  return crypto_box_beforenm(out, peer_public, our_secret) == 0;
}

}  // namespace

std::string_view to_string(OpenError e) {
  switch (e) {
    case OpenError::Truncated:
      return "sealed datagram truncated";
    case OpenError::UnsupportedVersion:
      return "unsupported sealed datagram version";
    case OpenError::BadKey:
      return "key does not convert to X25519";
    case OpenError::Forged:
      return "sealed datagram failed authentication";
  }
  return "unknown";
}

std::optional<relay::Bytes> seal(const relay::SecretKey& sender, const relay::EndpointId& recipient,
                                 relay::ByteSpan plaintext) {
  ensure_sodium();
  if (plaintext.size() > kMaxSealedPlaintext) return std::nullopt;
  std::uint8_t secret[32];
  std::uint8_t shared[32];
  bool ok = x25519_secret(sender, secret) && precompute(secret, recipient, shared);
  sodium_memzero(secret, sizeof secret);
  if (!ok) return std::nullopt;
  auto out = seal_with(shared, plaintext);
  sodium_memzero(shared, sizeof shared);
  return out;
}

std::variant<relay::Bytes, OpenError> open_sealed(const relay::SecretKey& recipient,
                                                  const relay::EndpointId& sender,
                                                  relay::ByteSpan sealed) {
  ensure_sodium();
  if (auto bad = check_header(sealed)) return *bad;
  std::uint8_t secret[32];
  std::uint8_t shared[32];
  bool ok = x25519_secret(recipient, secret) && precompute(secret, sender, shared);
  sodium_memzero(secret, sizeof secret);
  if (!ok) return OpenError::BadKey;
  auto out = open_with(shared, sealed);
  sodium_memzero(shared, sizeof shared);
  return out;
}

SealedChannel::SealedChannel(const relay::SecretKey& identity, std::size_t max_peers)
    : endpoint_id_(identity.public_key()), max_peers_(max_peers == 0 ? 1 : max_peers) {
  ensure_sodium();
  if (!x25519_secret(identity, x25519_secret_.data())) {
    throw std::invalid_argument("secret key does not convert to X25519");
  }
}

SealedChannel::~SealedChannel() {
  sodium_memzero(x25519_secret_.data(), x25519_secret_.size());
  for (auto& [peer, key] : shared_keys_) sodium_memzero(key.data(), key.size());
}

const std::uint8_t* SealedChannel::shared_key(const relay::EndpointId& peer) {
  if (auto it = shared_keys_.find(peer); it != shared_keys_.end()) return it->second.data();
  std::array<std::uint8_t, 32> key{};
  if (!precompute(x25519_secret_.data(), peer, key.data())) return nullptr;
  if (shared_keys_.size() >= max_peers_) {
    for (auto& [p, k] : shared_keys_) sodium_memzero(k.data(), k.size());
    shared_keys_.clear();
  }
  return shared_keys_.emplace(peer, key).first->second.data();
}

std::optional<relay::Bytes> SealedChannel::seal(const relay::EndpointId& recipient,
                                                relay::ByteSpan plaintext) {
  if (plaintext.size() > kMaxSealedPlaintext) return std::nullopt;
  const std::uint8_t* shared = shared_key(recipient);
  if (!shared) return std::nullopt;
  return seal_with(shared, plaintext);
}

std::variant<relay::Bytes, OpenError> SealedChannel::open(const relay::EndpointId& sender,
                                                          relay::ByteSpan sealed) {
  if (auto bad = check_header(sealed)) return *bad;
  const std::uint8_t* shared = shared_key(sender);
  if (!shared) return OpenError::BadKey;
  return open_with(shared, sealed);
}

}  // namespace iroh::client
