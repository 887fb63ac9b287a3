// Endpoint keys: text forms, Ed25519 point validation, signing, and the two handshake
// authentication schemes (§4.3, §4.4).
#include <blake3.h>
#include <sodium.h>

#include <cstring>

#include "iroh/encoding.hpp"
#include "iroh/relay_proto.hpp"

namespace iroh::relay {
namespace {

void ensure_sodium() {
  // sodium_init is thread-safe and idempotent; the static only avoids repeated calls.
  static const int once = sodium_init();
  (void)once;
}

// ---- GF(2^255 - 19) arithmetic, radix 2^51 ------------------------------------------------------
// Only used to decide whether a compressed point decompresses. libsodium does not expose plain
// decompression: crypto_core_ed25519_is_valid_point additionally rejects small-order points,
// non-canonical y and every point outside the prime-order subgroup (7/8 of all curve points),
// and costs a full scalar multiplication.
using u128 = unsigned __int128;
constexpr std::uint64_t kMask51 = (std::uint64_t{1} << 51) - 1;

struct Fe {
  std::uint64_t v[5];
};

std::uint64_t load_le64(const std::uint8_t* s) {
  std::uint64_t r = 0;
  for (int i = 7; i >= 0; --i) r = (r << 8) | s[i];
  return r;
}

// Ignores bit 255 (the x sign bit) and accepts y >= p, reducing it, as curve25519-dalek does.
Fe fe_from_bytes(const std::uint8_t* s) {
  return Fe{{load_le64(s) & kMask51, (load_le64(s + 6) >> 3) & kMask51,
             (load_le64(s + 12) >> 6) & kMask51, (load_le64(s + 19) >> 1) & kMask51,
             (load_le64(s + 24) >> 12) & kMask51}};
}

void fe_carry(Fe& h) {
  std::uint64_t c;
  c = h.v[0] >> 51, h.v[0] &= kMask51, h.v[1] += c;
  c = h.v[1] >> 51, h.v[1] &= kMask51, h.v[2] += c;
  c = h.v[2] >> 51, h.v[2] &= kMask51, h.v[3] += c;
  c = h.v[3] >> 51, h.v[3] &= kMask51, h.v[4] += c;
  c = h.v[4] >> 51, h.v[4] &= kMask51, h.v[0] += c * 19;
  c = h.v[0] >> 51, h.v[0] &= kMask51, h.v[1] += c;
}

Fe fe_add(const Fe& f, const Fe& g) {
  Fe h;
  for (int i = 0; i < 5; ++i) h.v[i] = f.v[i] + g.v[i];
  fe_carry(h);
  return h;
}

// f - g + 2p keeps every limb non-negative for carried inputs (limbs < 2^52).
Fe fe_sub(const Fe& f, const Fe& g) {
  Fe h;
  h.v[0] = f.v[0] + ((std::uint64_t{1} << 52) - 38) - g.v[0];
  for (int i = 1; i < 5; ++i) h.v[i] = f.v[i] + ((std::uint64_t{1} << 52) - 2) - g.v[i];
  fe_carry(h);
  return h;
}

Fe fe_carry_wide(u128 r0, u128 r1, u128 r2, u128 r3, u128 r4) {
  r1 += r0 >> 51;
  r2 += r1 >> 51;
  r3 += r2 >> 51;
  r4 += r3 >> 51;
  Fe h{{std::uint64_t(r0) & kMask51, std::uint64_t(r1) & kMask51, std::uint64_t(r2) & kMask51,
        std::uint64_t(r3) & kMask51, std::uint64_t(r4) & kMask51}};
  h.v[0] += std::uint64_t(r4 >> 51) * 19;
  fe_carry(h);
  return h;
}

Fe fe_mul(const Fe& f, const Fe& g) {
  const std::uint64_t f0 = f.v[0], f1 = f.v[1], f2 = f.v[2], f3 = f.v[3], f4 = f.v[4];
  const std::uint64_t g0 = g.v[0], g1 = g.v[1], g2 = g.v[2], g3 = g.v[3], g4 = g.v[4];
  const std::uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
  return fe_carry_wide(
      u128(f0) * g0 + u128(f1) * g4_19 + u128(f2) * g3_19 + u128(f3) * g2_19 + u128(f4) * g1_19,
      u128(f0) * g1 + u128(f1) * g0 + u128(f2) * g4_19 + u128(f3) * g3_19 + u128(f4) * g2_19,
      u128(f0) * g2 + u128(f1) * g1 + u128(f2) * g0 + u128(f3) * g4_19 + u128(f4) * g3_19,
      u128(f0) * g3 + u128(f1) * g2 + u128(f2) * g1 + u128(f3) * g0 + u128(f4) * g4_19,
      u128(f0) * g4 + u128(f1) * g3 + u128(f2) * g2 + u128(f3) * g1 + u128(f4) * g0);
}

// Squaring shares the symmetric cross products: 15 multiplications instead of 25.
Fe fe_sq(const Fe& f) {
  const std::uint64_t f0 = f.v[0], f1 = f.v[1], f2 = f.v[2], f3 = f.v[3], f4 = f.v[4];
  const std::uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1, f2_38 = 38 * f2, f3_19 = 19 * f3,
                      f4_19 = 19 * f4, f4_38 = 38 * f4;
  return fe_carry_wide(u128(f0) * f0 + u128(f4_38) * f1 + u128(f2_38) * f3,
                       u128(f0_2) * f1 + u128(f4_38) * f2 + u128(f3_19) * f3,
                       u128(f0_2) * f2 + u128(f1) * f1 + u128(f4_38) * f3,
                       u128(f0_2) * f3 + u128(f1_2) * f2 + u128(f4_19) * f4,
                       u128(f0_2) * f4 + u128(f1_2) * f3 + u128(f2) * f2);
}

Fe fe_sq_n(Fe f, int n) {
  for (int i = 0; i < n; ++i) f = fe_sq(f);
  return f;
}

// z^((p-1)/2) = z^(2^254 - 10): the Legendre symbol, via the ref10 inversion chain.
Fe fe_legendre(const Fe& z) {
  const Fe z2 = fe_sq(z);
  const Fe z9 = fe_mul(z, fe_sq_n(z2, 2));
  const Fe z11 = fe_mul(z2, z9);
  const Fe z_5_0 = fe_mul(z9, fe_sq(z11));
  const Fe z_10_0 = fe_mul(fe_sq_n(z_5_0, 5), z_5_0);
  const Fe z_20_0 = fe_mul(fe_sq_n(z_10_0, 10), z_10_0);
  const Fe z_40_0 = fe_mul(fe_sq_n(z_20_0, 20), z_20_0);
  const Fe z_50_0 = fe_mul(fe_sq_n(z_40_0, 10), z_10_0);
  const Fe z_100_0 = fe_mul(fe_sq_n(z_50_0, 50), z_50_0);
  const Fe z_200_0 = fe_mul(fe_sq_n(z_100_0, 100), z_100_0);
  const Fe z_250_0 = fe_mul(fe_sq_n(z_200_0, 50), z_50_0);
  const Fe z6 = fe_mul(z2, fe_sq(z2));
  return fe_mul(fe_sq_n(z_250_0, 4), z6);
}

// Canonical representative in [0, p).
Fe fe_reduce(Fe h) {
  fe_carry(h);
  fe_carry(h);
  std::uint64_t q = (h.v[0] + 19) >> 51;
  q = (h.v[1] + q) >> 51;
  q = (h.v[2] + q) >> 51;
  q = (h.v[3] + q) >> 51;
  q = (h.v[4] + q) >> 51;
  h.v[0] += 19 * q;
  std::uint64_t c;
  c = h.v[0] >> 51, h.v[0] &= kMask51, h.v[1] += c;
  c = h.v[1] >> 51, h.v[1] &= kMask51, h.v[2] += c;
  c = h.v[2] >> 51, h.v[2] &= kMask51, h.v[3] += c;
  c = h.v[3] >> 51, h.v[3] &= kMask51, h.v[4] += c;
  h.v[4] &= kMask51;
  return h;
}

bool fe_equals_small(const Fe& f, std::uint64_t small) {
  const Fe r = fe_reduce(f);
  return r.v[0] == small && r.v[1] == 0 && r.v[2] == 0 && r.v[3] == 0 && r.v[4] == 0;
}

// Edwards d = -121665/121666, little endian.
constexpr std::uint8_t kEdwardsD[32] = {
    0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75, 0xab, 0xd8, 0x41, 0x41, 0x4d, 0x0a, 0x70, 0x00,
    0x98, 0xe8, 0x79, 0x77, 0x79, 0x40, 0xc7, 0x8c, 0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52};

// ---- keying-material authentication header (§4.3) -----------------------------------------------
// Text encodings (hex, base32, base64url) live in iroh/encoding.hpp.
constexpr std::size_t kAuthHeaderBytes = 32 + 1 + 64 + 16;

}  // namespace

// ---- EndpointId ---------------------------------------------------------------------------------
std::string EndpointId::to_hex() const {
  return encoding::hex_encode(bytes);
}

std::optional<EndpointId> EndpointId::parse(std::string_view text) {
  EndpointId id;
  if (text.size() == 64) {
    auto decoded = encoding::hex_decode(text);
    if (!decoded) return std::nullopt;
    std::memcpy(id.bytes.data(), decoded->data(), 32);
  } else if (text.size() == 52) {
    auto decoded = encoding::base32_decode(text);
    if (!decoded || decoded->size() != 32) return std::nullopt;
    std::memcpy(id.bytes.data(), decoded->data(), 32);
  } else {
    return std::nullopt;
  }
  if (!id.is_valid_point()) return std::nullopt;
  return id;
}

bool EndpointId::is_valid_point() const {
  static const Fe d = fe_from_bytes(kEdwardsD);
  static const Fe one{{1, 0, 0, 0, 0}};
  const Fe y = fe_from_bytes(bytes.data());
  const Fe yy = fe_sq(y);
  const Fe u = fe_sub(yy, one);
  const Fe v = fe_add(fe_mul(d, yy), one);
  // x^2 = u/v has a solution iff u*v is a square or zero (v is never zero since d is not a
  // square), which is exactly curve25519-dalek's decompression criterion.
  const Fe chi = fe_legendre(fe_mul(u, v));
  return fe_equals_small(chi, 1) || fe_equals_small(chi, 0);
}

std::size_t EndpointIdHash::operator()(const EndpointId& id) const noexcept {
  // Keys are uniformly random, so any 8 bytes are a good hash.
  std::size_t h;
  std::memcpy(&h, id.bytes.data(), sizeof h);
  return h;
}

// ---- SecretKey ----------------------------------------------------------------------------------
EndpointId SecretKey::public_key() const {
  ensure_sodium();
  EndpointId id;
  std::array<std::uint8_t, crypto_sign_SECRETKEYBYTES> sk;
  crypto_sign_seed_keypair(id.bytes.data(), sk.data(), seed.data());
  sodium_memzero(sk.data(), sk.size());
  return id;
}

SecretKey SecretKey::generate() {
  ensure_sodium();
  SecretKey key;
  randombytes_buf(key.seed.data(), key.seed.size());
  return key;
}

SecretKey SecretKey::from_seed(std::span<const std::uint8_t, 32> seed) {
  SecretKey key;
  std::memcpy(key.seed.data(), seed.data(), 32);
  return key;
}

std::array<std::uint8_t, 64> SecretKey::sign(ByteSpan message) const {
  ensure_sodium();
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> pk;
  std::array<std::uint8_t, crypto_sign_SECRETKEYBYTES> sk;
  crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
  std::array<std::uint8_t, 64> signature{};
  crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(), sk.data());
  sodium_memzero(sk.data(), sk.size());
  return signature;
}

bool verify_signature(const EndpointId& key, ByteSpan message,
                      std::span<const std::uint8_t, 64> signature) {
  ensure_sodium();
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     key.bytes.data()) == 0;
}

// ---- challenge authentication (§4.4) ------------------------------------------------------------
std::array<std::uint8_t, 32> challenge_message(std::span<const std::uint8_t, 16> challenge) {
  blake3_hasher hasher;
  blake3_hasher_init_derive_key_raw(&hasher, kChallengeContext.data(), kChallengeContext.size());
  blake3_hasher_update(&hasher, challenge.data(), challenge.size());
  std::array<std::uint8_t, 32> out;
  blake3_hasher_finalize(&hasher, out.data(), out.size());
  return out;
}

ClientAuth sign_challenge(const SecretKey& key, std::span<const std::uint8_t, 16> challenge) {
  const auto message = challenge_message(challenge);
  return ClientAuth{key.public_key(), key.sign(message)};
}

bool verify_client_auth(const ClientAuth& auth, std::span<const std::uint8_t, 16> challenge) {
  const auto message = challenge_message(challenge);
  return verify_signature(auth.public_key, message, auth.signature);
}

// ---- keying-material authentication (§4.3) ------------------------------------------------------
std::string encode_auth_header(const KeyMaterialAuth& auth) {
  std::array<std::uint8_t, kAuthHeaderBytes> raw;
  std::memcpy(raw.data(), auth.public_key.bytes.data(), 32);
  raw[32] = 64;  // postcard length prefix of the signature
  std::memcpy(raw.data() + 33, auth.signature.data(), 64);
  std::memcpy(raw.data() + 97, auth.suffix.data(), 16);

  return encoding::base64url_encode(raw);
}

std::optional<KeyMaterialAuth> decode_auth_header(std::string_view header_value) {
  if (header_value.size() != (kAuthHeaderBytes * 8 + 5) / 6) return std::nullopt;
  const auto raw = encoding::base64url_decode(header_value);
  if (!raw || raw->size() != kAuthHeaderBytes || (*raw)[32] != 64) return std::nullopt;
  KeyMaterialAuth auth;
  std::memcpy(auth.public_key.bytes.data(), raw->data(), 32);
  std::memcpy(auth.signature.data(), raw->data() + 33, 64);
  std::memcpy(auth.suffix.data(), raw->data() + 97, 16);
  if (!auth.public_key.is_valid_point()) return std::nullopt;
  return auth;
}

KeyMaterialAuth sign_key_material(const SecretKey& key, std::span<const std::uint8_t, 32> ekm) {
  KeyMaterialAuth auth;
  auth.public_key = key.public_key();
  auth.signature = key.sign(ekm.first<16>());
  std::memcpy(auth.suffix.data(), ekm.data() + 16, 16);
  return auth;
}

bool verify_key_material(const KeyMaterialAuth& auth, std::span<const std::uint8_t, 32> ekm) {
  ensure_sodium();
  if (sodium_memcmp(auth.suffix.data(), ekm.data() + 16, 16) != 0) return false;
  return verify_signature(auth.public_key, ekm.first<16>(), auth.signature);
}

}  // namespace iroh::relay
