#include "acme/acme_crypto.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "iroh/encoding.hpp"

namespace iroh::server::acme {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct ReqFree {
  void operator()(X509_REQ* r) const { X509_REQ_free(r); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct SigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

[[noreturn]] void fail(const std::string& what) {
  unsigned long code = ERR_get_error();
  std::string reason = what;
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    reason += ": ";
    reason += buf;
  }
  ERR_clear_error();
  throw std::runtime_error(reason);
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? std::size_t(n) : 0);
}

BioPtr memory_bio(std::string_view text) {
  BioPtr bio(BIO_new_mem_buf(text.data(), int(text.size())));
  if (!bio) fail("out of memory");
  return bio;
}

// A big-endian unsigned integer left-padded to `width` bytes.
std::string bn_fixed(const BIGNUM* bn, int width) {
  std::string out(std::size_t(width), '\0');
  if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), width) != width) {
    fail("EC value does not fit in " + std::to_string(width) + " bytes");
  }
  return out;
}

X509Ptr read_leaf(std::string_view chain_pem) {
  BioPtr bio = memory_bio(chain_pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) fail("no PEM certificate found");
  return cert;
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) fail("bad certificate time");
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

void EcKey::Free::operator()(EVP_PKEY* key) const {
  EVP_PKEY_free(key);
}

EcKey EcKey::generate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) fail("cannot generate a P-256 key");
  return EcKey(key);
}

EcKey EcKey::from_pem(std::string_view pem) {
  BioPtr bio = memory_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) fail("not a PEM private key");
  EcKey result(key);
  char group[32] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
      EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) !=
          1 ||
      std::string_view(group) != "prime256v1") {
    ERR_clear_error();
    throw std::runtime_error("not a P-256 (prime256v1) EC key");
  }
  return result;
}

std::string EcKey::to_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("cannot encode the private key");
  }
  return bio_string(bio.get());
}

std::string EcKey::jwk_json() const {
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  if (EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
      EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
    BN_free(x);
    fail("cannot read the EC public key");
  }
  std::unique_ptr<BIGNUM, BnFree> xp(x), yp(y);
  return R"({"crv":"P-256","kty":"EC","x":")" + encoding::base64url_encode(bn_fixed(x, 32)) +
         R"(","y":")" + encoding::base64url_encode(bn_fixed(y, 32)) + R"("})";
}

std::string EcKey::thumbprint() const {
  std::string jwk = jwk_json();
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(jwk.data()), jwk.size(), digest);
  return encoding::base64url_encode(encoding::ByteSpan(digest, sizeof digest));
}

std::string EcKey::sign_es256(std::string_view data) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::size_t der_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    fail("ES256 signing failed");
  }
  std::string der(der_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &der_len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    fail("ES256 signing failed");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, SigFree> sig(d2i_ECDSA_SIG(nullptr, &p, long(der_len)));
  if (!sig) fail("cannot decode the ECDSA signature");
  return bn_fixed(ECDSA_SIG_get0_r(sig.get()), 32) + bn_fixed(ECDSA_SIG_get0_s(sig.get()), 32);
}

std::string jws_es256(const EcKey& key, std::string_view url, std::string_view nonce,
                      std::string_view payload, std::string_view kid) {
  // The URL, nonce and kid come from the ACME server; they are JSON strings without characters
  // that need escaping in practice, but escape the two that would break the header anyway.
  auto quoted = [](std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      if (static_cast<unsigned char>(c) < 0x20)
        throw std::runtime_error("control character in JWS header");
      out += c;
    }
    return out + "\"";
  };
  std::string header = R"({"alg":"ES256",)";
  if (kid.empty()) {
    header += R"("jwk":)" + key.jwk_json();
  } else {
    header += R"("kid":)" + quoted(kid);
  }
  header += R"(,"nonce":)" + quoted(nonce) + R"(,"url":)" + quoted(url) + "}";
  std::string protected_b64 = encoding::base64url_encode(header);
  std::string payload_b64 = encoding::base64url_encode(payload);
  std::string signature = key.sign_es256(protected_b64 + "." + payload_b64);
  return R"({"protected":")" + protected_b64 + R"(","payload":")" + payload_b64 +
         R"(","signature":")" + encoding::base64url_encode(signature) + R"("})";
}

std::string make_csr_der(const EcKey& key, const std::vector<std::string>& names) {
  if (names.empty()) throw std::runtime_error("CSR needs at least one name");
  std::unique_ptr<X509_REQ, ReqFree> req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1) fail("cannot create a CSR");
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  const std::string& cn = names.front();
  if (cn.size() <= 64 && X509_NAME_add_entry_by_txt(
                             subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1) {
    fail("cannot set the CSR subject");
  }
  std::string san;
  for (const std::string& name : names) {
    if (name.find_first_of(",:\n") != std::string::npos) {
      throw std::runtime_error("invalid host name for a certificate: " + name);
    }
    san += (san.empty() ? "DNS:" : ",DNS:") + name;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, nullptr, nullptr, req.get(), nullptr, 0);
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  if (exts == nullptr || ext == nullptr) {
    sk_X509_EXTENSION_free(exts);
    fail("cannot build the subjectAltName extension");
  }
  sk_X509_EXTENSION_push(exts, ext);
  int added = X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (added != 1 || X509_REQ_set_pubkey(req.get(), key.native()) != 1 ||
      X509_REQ_sign(req.get(), key.native(), EVP_sha256()) <= 0) {
    fail("cannot sign the CSR");
  }
  int len = i2d_X509_REQ(req.get(), nullptr);
  if (len <= 0) fail("cannot encode the CSR");
  std::string der(std::size_t(len), '\0');
  unsigned char* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &out);
  return der;
}

std::pair<std::string, std::string> make_tls_alpn_certificate(std::string_view domain,
                                                              std::string_view key_authorization) {
  if (domain.empty() || domain.find_first_of(",:\n") != std::string_view::npos) {
    throw std::runtime_error("invalid host name for a certificate: " + std::string(domain));
  }
  EcKey key = EcKey::generate();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("cannot create a cert");
  std::array<unsigned char, 16> serial{};
  if (RAND_bytes(serial.data(), int(serial.size())) != 1) fail("RAND_bytes");
  serial[0] &= 0x7f;
  std::unique_ptr<BIGNUM, BnFree> bn(BN_bin2bn(serial.data(), int(serial.size()), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()))) fail("serial");
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string host(domain);
  if (host.size() <= 64) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0);
  }
  X509_set_issuer_name(cert.get(), name);
  if (X509_set_pubkey(cert.get(), key.native()) != 1) fail("cannot set the public key");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::string san = "DNS:" + host;
  X509_EXTENSION* san_ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  if (san_ext == nullptr) fail("cannot build the subjectAltName extension");
  int added = X509_add_ext(cert.get(), san_ext, -1);
  X509_EXTENSION_free(san_ext);
  if (added != 1) fail("cannot add the subjectAltName extension");
  // extnValue = DER of Authorization ::= OCTET STRING (SIZE (32)): 04 20 <SHA-256>.
  std::array<unsigned char, 2 + SHA256_DIGEST_LENGTH> value{0x04, SHA256_DIGEST_LENGTH};
  SHA256(reinterpret_cast<const unsigned char*>(key_authorization.data()), key_authorization.size(),
         value.data() + 2);
  ASN1_OBJECT* oid = OBJ_txt2obj(kAcmeIdentifierOid, 1);
  ASN1_OCTET_STRING* data = ASN1_OCTET_STRING_new();
  X509_EXTENSION* acme_ext = nullptr;
  if (oid && data && ASN1_OCTET_STRING_set(data, value.data(), int(value.size())) == 1) {
    acme_ext = X509_EXTENSION_create_by_OBJ(nullptr, oid, /*crit=*/1, data);
  }
  ASN1_OBJECT_free(oid);
  ASN1_OCTET_STRING_free(data);
  if (acme_ext == nullptr) fail("cannot build the acmeIdentifier extension");
  added = X509_add_ext(cert.get(), acme_ext, -1);
  X509_EXTENSION_free(acme_ext);
  if (added != 1) fail("cannot add the acmeIdentifier extension");
  if (X509_sign(cert.get(), key.native(), EVP_sha256()) <= 0) fail("cannot sign the certificate");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) fail("cannot encode the cert");
  return {bio_string(bio.get()), key.to_pem()};
}

CertificateInfo certificate_info(std::string_view chain_pem) {
  X509Ptr cert = read_leaf(chain_pem);
  CertificateInfo info;
  info.not_before = to_time_point(X509_get0_notBefore(cert.get()));
  info.not_after = to_time_point(X509_get0_notAfter(cert.get()));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      X509_NAME_print_ex(bio.get(), X509_get_issuer_name(cert.get()), 0, XN_FLAG_RFC2253) < 0) {
    fail("cannot print the issuer");
  }
  info.issuer = bio_string(bio.get());
  std::unique_ptr<BIGNUM, BnFree> serial(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (!serial) fail("cannot read the serial number");
  char* hex = BN_bn2hex(serial.get());
  info.serial = hex ? hex : "";
  OPENSSL_free(hex);
  return info;
}

bool certificate_matches(std::string_view chain_pem, std::string_view key_pem,
                         const std::vector<std::string>& names) {
  X509Ptr cert = read_leaf(chain_pem);
  BioPtr bio = memory_bio(key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    ERR_clear_error();
    return false;
  }
  bool ok = X509_check_private_key(cert.get(), key) == 1;
  EVP_PKEY_free(key);
  for (const std::string& name : names) {
    ok = ok && X509_check_host(cert.get(), name.data(), name.size(), 0, nullptr) == 1;
  }
  ERR_clear_error();
  return ok;
}

std::chrono::system_clock::time_point renewal_time(const CertificateInfo& info) {
  auto lifetime = info.not_after - info.not_before;
  std::chrono::system_clock::duration before = lifetime / 3;
  before = std::min<std::chrono::system_clock::duration>(before, std::chrono::days(30));
  return info.not_after - before;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    throw std::runtime_error("cannot create " + tmp.string() + ": " + std::strerror(errno));
  }
  // O_CREAT does not change the mode of a leftover temporary file.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += std::size_t(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) saved = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(saved));
  }
}

std::optional<std::string> read_file_if_exists(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read " + path.string());
  return out.str();
}

}  // namespace iroh::server::acme
