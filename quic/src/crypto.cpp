#include "iroh/quic/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <memory>
#include <string>

namespace iroh::quic {
namespace {

// RFC 9001 §5.2
constexpr std::array<std::uint8_t, 20> kInitialSaltV1 = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34,
                                                         0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8,
                                                         0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};

struct KdfCtxDeleter {
  void operator()(EVP_KDF_CTX* ctx) const { EVP_KDF_CTX_free(ctx); }
};
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

const char* digest_name(Hash hash) {
  return hash == Hash::Sha384 ? "SHA384" : "SHA256";
}

std::optional<Bytes> hkdf(Hash hash, int mode, ByteSpan key, ByteSpan salt, ByteSpan info,
                          std::size_t length) {
  // Fetching once is thread-safe in OpenSSL 3 and avoids a provider lookup per packet.
  static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return std::nullopt;
  std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter> ctx(EVP_KDF_CTX_new(kdf));
  if (!ctx) return std::nullopt;
  // OSSL_PARAM wants non-const pointers even for inputs.
  auto* key_ptr = const_cast<std::uint8_t*>(key.data());
  auto* salt_ptr = const_cast<std::uint8_t*>(salt.data());
  auto* info_ptr = const_cast<std::uint8_t*>(info.data());
  OSSL_PARAM params[6];
  std::size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 const_cast<char*>(digest_name(hash)), 0);
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key_ptr, key.size());
  if (mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt_ptr, salt.size());
  } else {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info_ptr, info.size());
  }
  params[n++] = OSSL_PARAM_construct_end();
  Bytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) return std::nullopt;
  return out;
}

const EVP_CIPHER* aead_cipher(Aead aead) {
  switch (aead) {
    case Aead::Aes128Gcm:
      return EVP_aes_128_gcm();
    case Aead::Aes256Gcm:
      return EVP_aes_256_gcm();
    case Aead::ChaCha20Poly1305:
      return EVP_chacha20_poly1305();
  }
  return nullptr;
}

std::array<std::uint8_t, 12> make_nonce(const PacketKeys& keys, std::uint64_t packet_number) {
  std::array<std::uint8_t, 12> nonce{};
  for (std::size_t i = 0; i < nonce.size() && i < keys.iv.size(); ++i) nonce[i] = keys.iv[i];
  for (std::size_t i = 0; i < 8; ++i) {
    nonce[11 - i] ^= static_cast<std::uint8_t>(packet_number >> (8 * i));
  }
  return nonce;
}

bool keys_valid(const PacketKeys& keys) {
  return keys.key.size() == aead_key_size(keys.aead) && keys.iv.size() == 12 &&
         keys.hp.size() == aead_key_size(keys.aead);
}

}  // namespace

std::size_t aead_key_size(Aead aead) {
  return aead == Aead::Aes128Gcm ? 16 : 32;
}
std::size_t hash_size(Hash hash) {
  return hash == Hash::Sha384 ? 48 : 32;
}

std::optional<Bytes> hkdf_extract(Hash hash, ByteSpan salt, ByteSpan ikm) {
  return hkdf(hash, EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, salt, {}, hash_size(hash));
}

std::optional<Bytes> hkdf_expand_label(Hash hash, ByteSpan secret, std::string_view label,
                                       ByteSpan context, std::size_t length) {
  const std::string full_label = "tls13 " + std::string(label);
  if (full_label.size() > 255 || context.size() > 255 || length > 0xffff) return std::nullopt;
  Bytes info;
  info.reserve(4 + full_label.size() + context.size());
  info.push_back(static_cast<std::uint8_t>(length >> 8));
  info.push_back(static_cast<std::uint8_t>(length));
  info.push_back(static_cast<std::uint8_t>(full_label.size()));
  info.insert(info.end(), full_label.begin(), full_label.end());
  info.push_back(static_cast<std::uint8_t>(context.size()));
  info.insert(info.end(), context.begin(), context.end());
  return hkdf(hash, EVP_KDF_HKDF_MODE_EXPAND_ONLY, secret, {}, info, length);
}

std::optional<PacketKeys> derive_packet_keys(Aead aead, Hash hash, ByteSpan secret) {
  PacketKeys keys;
  keys.aead = aead;
  auto key = hkdf_expand_label(hash, secret, "quic key", {}, aead_key_size(aead));
  auto iv = hkdf_expand_label(hash, secret, "quic iv", {}, 12);
  auto hp = hkdf_expand_label(hash, secret, "quic hp", {}, aead_key_size(aead));
  if (!key || !iv || !hp) return std::nullopt;
  keys.key = std::move(*key);
  keys.iv = std::move(*iv);
  keys.hp = std::move(*hp);
  return keys;
}

InitialSecrets derive_initial_secrets(ByteSpan client_dcid) {
  InitialSecrets secrets;
  auto initial = hkdf_extract(Hash::Sha256, kInitialSaltV1, client_dcid);
  if (!initial) return secrets;
  secrets.client = hkdf_expand_label(Hash::Sha256, *initial, "client in", {}, 32).value_or(Bytes{});
  secrets.server = hkdf_expand_label(Hash::Sha256, *initial, "server in", {}, 32).value_or(Bytes{});
  return secrets;
}

InitialKeys derive_initial_keys(ByteSpan client_dcid) {
  const InitialSecrets secrets = derive_initial_secrets(client_dcid);
  InitialKeys keys;
  keys.client =
      derive_packet_keys(Aead::Aes128Gcm, Hash::Sha256, secrets.client).value_or(PacketKeys{});
  keys.server =
      derive_packet_keys(Aead::Aes128Gcm, Hash::Sha256, secrets.server).value_or(PacketKeys{});
  return keys;
}

std::optional<Bytes> aead_seal(const PacketKeys& keys, std::uint64_t packet_number, ByteSpan aad,
                               ByteSpan plaintext) {
  if (!keys_valid(keys)) return std::nullopt;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  const auto nonce = make_nonce(keys, packet_number);
  if (EVP_EncryptInit_ex(ctx.get(), aead_cipher(keys.aead), nullptr, keys.key.data(),
                         nonce.data()) != 1) {
    return std::nullopt;
  }
  Bytes out(plaintext.size() + kAeadTagSize);
  int len = 0;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return std::nullopt;
  }
  int written = 0;
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(),
                          static_cast<int>(plaintext.size())) != 1) {
      return std::nullopt;
    }
    written = len;
  }
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + written, &len) != 1) return std::nullopt;
  written += len;
  if (static_cast<std::size_t>(written) != plaintext.size()) return std::nullopt;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kAeadTagSize,
                          out.data() + plaintext.size()) != 1) {
    return std::nullopt;
  }
  return out;
}

std::optional<Bytes> aead_open(const PacketKeys& keys, std::uint64_t packet_number, ByteSpan aad,
                               ByteSpan ciphertext_and_tag) {
  if (!keys_valid(keys) || ciphertext_and_tag.size() < kAeadTagSize) return std::nullopt;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  const auto nonce = make_nonce(keys, packet_number);
  if (EVP_DecryptInit_ex(ctx.get(), aead_cipher(keys.aead), nullptr, keys.key.data(),
                         nonce.data()) != 1) {
    return std::nullopt;
  }
  const std::size_t ciphertext_size = ciphertext_and_tag.size() - kAeadTagSize;
  Bytes tag(ciphertext_and_tag.begin() + static_cast<std::ptrdiff_t>(ciphertext_size),
            ciphertext_and_tag.end());
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kAeadTagSize, tag.data()) != 1) {
    return std::nullopt;
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return std::nullopt;
  }
  Bytes out(ciphertext_size);
  int written = 0;
  if (ciphertext_size > 0) {
    if (EVP_DecryptUpdate(ctx.get(), out.data(), &len, ciphertext_and_tag.data(),
                          static_cast<int>(ciphertext_size)) != 1) {
      return std::nullopt;
    }
    written = len;
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + written, &len) != 1) return std::nullopt;
  return out;
}

std::optional<std::array<std::uint8_t, 5>> header_protection_mask(const PacketKeys& keys,
                                                                  ByteSpan sample) {
  if (sample.size() < kHeaderProtectionSampleSize || keys.hp.size() != aead_key_size(keys.aead)) {
    return std::nullopt;
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  std::array<std::uint8_t, 16> block{};
  int len = 0;
  if (keys.aead == Aead::ChaCha20Poly1305) {
    // OpenSSL's ChaCha20 IV is counter (LE) || nonce, which is exactly the 16-byte sample.
    if (EVP_EncryptInit_ex(ctx.get(), EVP_chacha20(), nullptr, keys.hp.data(), sample.data()) !=
        1) {
      return std::nullopt;
    }
    const std::array<std::uint8_t, 5> zeros{};
    if (EVP_EncryptUpdate(ctx.get(), block.data(), &len, zeros.data(), 5) != 1) {
      return std::nullopt;
    }
  } else {
    const EVP_CIPHER* ecb = keys.aead == Aead::Aes128Gcm ? EVP_aes_128_ecb() : EVP_aes_256_ecb();
    if (EVP_EncryptInit_ex(ctx.get(), ecb, nullptr, keys.hp.data(), nullptr) != 1) {
      return std::nullopt;
    }
    EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
    if (EVP_EncryptUpdate(ctx.get(), block.data(), &len, sample.data(), 16) != 1) {
      return std::nullopt;
    }
  }
  std::array<std::uint8_t, 5> mask{};
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = block[i];
  return mask;
}

std::array<std::uint8_t, 16> stateless_reset_token(const StatelessResetKey& key, ByteSpan cid) {
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> mac{};
  unsigned size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), cid.data(), cid.size(), mac.data(),
       &size);
  std::array<std::uint8_t, 16> token{};
  std::copy_n(mac.begin(), token.size(), token.begin());
  return token;
}

}  // namespace iroh::quic
