#include "iroh/stun.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

namespace iroh::stun {
namespace {

std::uint16_t load16(ByteSpan b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
std::uint32_t load32(ByteSpan b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}
void store16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void store32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
constexpr std::size_t padded(std::size_t n) {
  return (n + 3) & ~std::size_t{3};
}

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

// Attributes below 0x8000 that a Binding request may carry without earning a 420. We interpret
// only CHANGE-REQUEST; the rest are credentials or ICE data this server has no use for, and
// rejecting them would break ordinary ICE and authenticated clients. RESPONSE-ADDRESS is
// deliberately absent: honouring it would make us a reflector, so it gets a 420.
bool is_known_required(std::uint16_t type) {
  switch (type) {
    case attr::kMappedAddress:
    case attr::kChangeRequest:
    case attr::kUsername:
    case attr::kMessageIntegrity:
    case attr::kErrorCode:
    case attr::kUnknownAttributes:
    case attr::kRealm:
    case attr::kNonce:
    case attr::kMessageIntegritySha256:
    case attr::kPasswordAlgorithm:
    case attr::kUserhash:
    case attr::kXorMappedAddress:
    case attr::kPriority:
    case attr::kUseCandidate:
      return true;
    default:
      return false;
  }
}

// Writes attributes into a caller buffer whose capacity was checked up front.
class Writer {
 public:
  explicit Writer(std::uint8_t* base) : base_(base) {}
  std::size_t size() const { return size_; }
  std::uint8_t* attribute(std::uint16_t type, std::size_t length) {
    std::uint8_t* p = base_ + size_;
    store16(p, type);
    store16(p + 2, static_cast<std::uint16_t>(length));
    std::memset(p + 4 + length, 0, padded(length) - length);
    size_ += 4 + padded(length);
    return p + 4;
  }
  void header(std::uint16_t type, ByteSpan transaction) {
    store16(base_, type);
    store16(base_ + 2, 0);
    std::memcpy(base_ + 4, transaction.data(), 16);
    size_ = kHeaderSize;
  }
  void finish_length() { store16(base_ + 2, static_cast<std::uint16_t>(size_ - kHeaderSize)); }
  void fingerprint() {
    // The length field must already count the FINGERPRINT attribute when the CRC is taken.
    store16(base_ + 2, static_cast<std::uint16_t>(size_ + 8 - kHeaderSize));
    const std::uint32_t crc = crc32(ByteSpan(base_, size_)) ^ kFingerprintXor;
    store32(attribute(attr::kFingerprint, 4), crc);
  }

 private:
  std::uint8_t* base_;
  std::size_t size_ = 0;
};

std::size_t software_attribute_size(std::string_view software) {
  const std::size_t n = std::min(software.size(), kMaxSoftwareLength);
  return n == 0 ? 0 : 4 + padded(n);
}

void write_software(Writer& w, std::string_view software) {
  const std::size_t n = std::min(software.size(), kMaxSoftwareLength);
  std::memcpy(w.attribute(attr::kSoftware, n), software.data(), n);
}

void write_address(Writer& w, const Endpoint& source, bool xored, ByteSpan transaction) {
  const std::size_t n = source.address_size();
  std::uint8_t* v = w.attribute(xored ? attr::kXorMappedAddress : attr::kMappedAddress, 4 + n);
  v[0] = 0;
  v[1] = static_cast<std::uint8_t>(source.family);
  std::uint16_t port = source.port;
  if (xored) port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
  store16(v + 2, port);
  for (std::size_t i = 0; i < n; ++i) {
    v[4 + i] =
        xored ? static_cast<std::uint8_t>(source.address[i] ^ transaction[i]) : source.address[i];
  }
}

}  // namespace

// ---- message type
// --------------------------------------------------------------------------------

std::uint16_t message_type(std::uint16_t method, MessageClass cls) {
  const auto c = static_cast<std::uint16_t>(cls);
  return static_cast<std::uint16_t>((method & 0x000F) | ((method & 0x0070) << 1) |
                                    ((method & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7));
}
std::uint16_t method_of(std::uint16_t type) {
  return static_cast<std::uint16_t>((type & 0x000F) | ((type & 0x00E0) >> 1) |
                                    ((type & 0x3E00) >> 2));
}
MessageClass class_of(std::uint16_t type) {
  return static_cast<MessageClass>(((type >> 4) & 1) | ((type >> 7) & 2));
}

// ---- Endpoint
// ------------------------------------------------------------------------------------

Endpoint Endpoint::v4(std::array<std::uint8_t, 4> addr, std::uint16_t port) {
  Endpoint e;
  e.family = Family::V4;
  std::copy(addr.begin(), addr.end(), e.address.begin());
  e.port = port;
  return e;
}
Endpoint Endpoint::v6(std::array<std::uint8_t, 16> addr, std::uint16_t port) {
  Endpoint e;
  e.family = Family::V6;
  e.address = addr;
  e.port = port;
  return e;
}
Endpoint Endpoint::unmapped() const {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (family != Family::V6 || std::memcmp(address.data(), kPrefix, 12) != 0) return *this;
  return v4({address[12], address[13], address[14], address[15]}, port);
}

std::string_view to_string(Reason reason) {
  switch (reason) {
    case Reason::Ok:
      return "ok";
    case Reason::NotStun:
      return "not STUN";
    case Reason::Indication:
      return "indication";
    case Reason::Response:
      return "response";
    case Reason::LegacyUnknownMethod:
      return "RFC 3489 message that is not a Binding request";
    case Reason::BadFingerprint:
      return "bad FINGERPRINT";
    case Reason::ChangeRequestUnsupported:
      return "CHANGE-REQUEST cannot be honoured";
    case Reason::BufferTooSmall:
      return "reply buffer too small";
    case Reason::BadRequest:
      return "400 Bad Request";
    case Reason::UnknownAttributes:
      return "420 Unknown Attribute";
  }
  return "?";
}

std::size_t address_attribute_size(const Endpoint& source) {
  return 4 + 4 + source.unmapped().address_size();
}

// ---- server
// --------------------------------------------------------------------------------------

namespace {

// The header of a request this server answers.
struct RequestHeader {
  std::uint16_t method = 0;
  bool cookie = false;  // RFC 8489 magic cookie; without it the client speaks RFC 3489
};

// RFC 8489 §6.3 header checks and the message class. nullopt: not a request to answer, with
// result.reason saying why when it is STUN at all (anything failing the checks is not ours).
std::optional<RequestHeader> check_request_header(ByteSpan request, HandleResult& result) {
  if (request.size() < kHeaderSize || (request[0] & 0xC0) != 0) return std::nullopt;
  const std::uint16_t type = load16(request, 0);
  const std::size_t length = load16(request, 2);
  if (length % 4 != 0 || length + kHeaderSize != request.size()) return std::nullopt;
  const bool cookie = load32(request, 4) == kMagicCookie;
  switch (class_of(type)) {
    case MessageClass::Indication:
      result.reason = Reason::Indication;
      return std::nullopt;
    case MessageClass::SuccessResponse:
    case MessageClass::ErrorResponse:
      result.reason = Reason::Response;
      return std::nullopt;
    case MessageClass::Request:
      break;
  }
  const std::uint16_t method = method_of(type);
  if (!cookie && method != kMethodBinding) {
    // Without the cookie the header checks are weak; answer nothing but plain Binding requests.
    result.reason = Reason::LegacyUnknownMethod;
    return std::nullopt;
  }
  return RequestHeader{method, cookie};
}

// What the walk over a request's attributes found (RFC 8489 §14).
struct AttributeScan {
  std::array<std::uint16_t, kMaxUnknownAttributesListed> unknown{};  // comprehension-required
  std::size_t unknown_count = 0;
  bool malformed = false;        // a 400
  bool bad_fingerprint = false;  // dropped: not a STUN message after all (§14.7)
  std::uint32_t change_flags = 0;
};

AttributeScan scan_attributes(ByteSpan request) {
  AttributeScan scan;
  bool fingerprint_seen = false;
  bool after_integrity = false;
  // Bounded: every attribute advances pos by at least 4 bytes.
  for (std::size_t pos = kHeaderSize; pos < request.size();) {
    if (fingerprint_seen) {  // FINGERPRINT must be last
      scan.malformed = true;
      break;
    }
    // pos is a multiple of 4 below a size that is one, so a full attribute header is there.
    const std::uint16_t at = load16(request, pos);
    const std::size_t al = load16(request, pos + 2);
    if (pos + 4 + padded(al) > request.size()) {
      scan.malformed = true;
      break;
    }
    const ByteSpan value = request.subspan(pos + 4, al);
    if (at == attr::kFingerprint) {
      if (al != 4) {
        scan.malformed = true;
        break;
      }
      fingerprint_seen = true;
      if ((crc32(request.first(pos)) ^ kFingerprintXor) != load32(value, 0)) {
        scan.bad_fingerprint = true;
        return scan;
      }
    } else if (after_integrity && at != attr::kMessageIntegritySha256) {
      // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are ignored.
    } else if (at == attr::kMessageIntegrity || at == attr::kMessageIntegritySha256) {
      after_integrity = true;
    } else if (at == attr::kChangeRequest) {
      if (al != 4) {
        scan.malformed = true;
        break;
      }
      scan.change_flags = load32(value, 0) & (kChangeIp | kChangePort);
    } else if (at < 0x8000 && !is_known_required(at) && scan.unknown_count < scan.unknown.size()) {
      scan.unknown[scan.unknown_count++] = at;
    }
    pos += 4 + padded(al);
  }
  return scan;
}

// The optional tail of every response, SOFTWARE (§14.14) then FINGERPRINT (§14.7, last), and
// the result that says to send it.
void finish_reply(Writer& w, bool with_software, bool with_fingerprint,
                  const ResponseOptions& options, Reason reason, HandleResult& result) {
  if (with_software) write_software(w, options.software);
  if (with_fingerprint) {
    w.fingerprint();
  } else {
    w.finish_length();
  }
  result.action = Action::Reply;
  result.reason = reason;
  result.size = w.size();
}

// Binding success response (RFC 8489 §7.3.1): XOR-MAPPED-ADDRESS (MAPPED-ADDRESS for an RFC 3489
// client), then SOFTWARE and FINGERPRINT if they fit within `budget` (no amplification).
void write_binding_success(ByteSpan request, const Endpoint& source, bool cookie,
                           std::size_t budget, std::span<std::uint8_t> out,
                           const ResponseOptions& options, HandleResult& result) {
  const ByteSpan transaction = request.subspan(4, 16);
  const std::size_t mandatory = kHeaderSize + address_attribute_size(source);
  if (out.size() < mandatory) {
    result.action = Action::Drop;
    result.reason = Reason::BufferTooSmall;
    return;
  }
  std::size_t spare = std::min(budget, out.size()) - mandatory;
  const bool with_fingerprint = cookie && options.fingerprint && spare >= 8;
  if (with_fingerprint) spare -= 8;
  const std::size_t software = cookie ? software_attribute_size(options.software) : 0;
  const bool with_software = software != 0 && spare >= software;

  Writer w(out.data());
  w.header(kBindingSuccess, transaction);
  write_address(w, source, cookie, transaction);
  finish_reply(w, with_software, with_fingerprint, options, Reason::Ok, result);
}

// Error response (RFC 8489 §7.3.1.1): ERROR-CODE 400, or 420 with UNKNOWN-ATTRIBUTES (§14.9);
// the reason phrase, SOFTWARE and FINGERPRINT only within `budget`.
void write_error_response(ByteSpan request, const RequestHeader& header, const AttributeScan& scan,
                          std::size_t budget, std::span<std::uint8_t> out,
                          const ResponseOptions& options, HandleResult& result) {
  const ByteSpan transaction = request.subspan(4, 16);
  const bool cookie = header.cookie;
  const bool is_420 = !scan.malformed && header.method == kMethodBinding;
  const int code = is_420 ? 420 : 400;
  const std::string_view phrase = is_420 ? "Unknown Attribute" : "Bad Request";
  // RFC 3489 wants attribute lengths in multiples of 4, so its list repeats the last entry.
  const std::size_t list_length = cookie ? 2 * scan.unknown_count : padded(2 * scan.unknown_count);
  const std::size_t list_size = is_420 ? 4 + padded(list_length) : 0;
  const std::size_t mandatory = kHeaderSize + 8 + list_size;
  if (out.size() < mandatory) {
    result.action = Action::Drop;
    result.reason = Reason::BufferTooSmall;
    return;
  }
  std::size_t spare = std::min(budget, out.size()) - std::min(mandatory, budget);
  const bool with_fingerprint = cookie && options.fingerprint && spare >= 8;
  if (with_fingerprint) spare -= 8;
  const bool with_phrase = spare >= padded(phrase.size());
  if (with_phrase) spare -= padded(phrase.size());
  const std::size_t software = cookie ? software_attribute_size(options.software) : 0;
  const bool with_software = software != 0 && spare >= software;

  Writer w(out.data());
  w.header(message_type(header.method, MessageClass::ErrorResponse), transaction);
  const std::size_t phrase_length = with_phrase ? phrase.size() : 0;
  std::uint8_t* v = w.attribute(attr::kErrorCode, 4 + phrase_length);
  v[0] = 0;
  v[1] = 0;
  v[2] = static_cast<std::uint8_t>(code / 100);
  v[3] = static_cast<std::uint8_t>(code % 100);
  std::memcpy(v + 4, phrase.data(), phrase_length);
  if (is_420) {
    std::uint8_t* list = w.attribute(attr::kUnknownAttributes, list_length);
    for (std::size_t i = 0; i < padded(2 * scan.unknown_count) / 2; ++i) {
      store16(list + 2 * i, scan.unknown[std::min(i, scan.unknown_count - 1)]);
    }
  }
  finish_reply(w, with_software, with_fingerprint, options,
               is_420 ? Reason::UnknownAttributes : Reason::BadRequest, result);
}

}  // namespace

HandleResult handle_datagram(ByteSpan request, const Endpoint& raw_source,
                             std::span<std::uint8_t> out, const ResponseOptions& options) {
  HandleResult result;
  const Endpoint source = raw_source.unmapped();
  result.reported_family = source.family;

  const std::optional<RequestHeader> header = check_request_header(request, result);
  if (!header) return result;
  result.is_request = true;

  AttributeScan scan = scan_attributes(request);
  if (scan.bad_fingerprint) {
    result.action = Action::Drop;
    result.reason = Reason::BadFingerprint;
    return result;
  }
  const bool binding = !scan.malformed && header->method == kMethodBinding;
  if (binding && scan.unknown_count == 0 && scan.change_flags != 0) {
    if (!header->cookie) {
      // An RFC 3489 NAT-type probe reads any answer as "the change worked"; silence is the truth.
      result.action = Action::Drop;
      result.reason = Reason::ChangeRequestUnsupported;
      return result;
    }
    // RFC 5780: a server without an alternate address answers CHANGE-REQUEST with 420.
    scan.unknown[scan.unknown_count++] = attr::kChangeRequest;
  }

  // No amplification: a response is at most the request plus one address attribute.
  const std::size_t budget = request.size() + address_attribute_size(source);
  if (binding && scan.unknown_count == 0) {
    write_binding_success(request, source, header->cookie, budget, out, options, result);
  } else {
    write_error_response(request, *header, scan, budget, out, options, result);
  }
  return result;
}

// ---- decoding
// ------------------------------------------------------------------------------------

const Attribute* Message::find(std::uint16_t type) const {
  for (const auto& a : attributes) {
    if (a.type == type) return &a;
  }
  return nullptr;
}

DecodeResult decode(ByteSpan bytes) {
  DecodeResult result;
  if (bytes.size() < kHeaderSize) {
    result.error = DecodeError::TooShort;
    return result;
  }
  const std::size_t length = load16(bytes, 2);
  if ((bytes[0] & 0xC0) != 0 || length % 4 != 0 || length + kHeaderSize != bytes.size()) {
    result.error = DecodeError::NotStun;
    return result;
  }
  Message m;
  m.type = load16(bytes, 0);
  m.has_magic_cookie = load32(bytes, 4) == kMagicCookie;
  std::copy_n(bytes.begin() + 4, 16, m.transaction.begin());
  for (std::size_t pos = kHeaderSize; pos < bytes.size();) {
    const std::uint16_t at = load16(bytes, pos);
    const std::size_t al = load16(bytes, pos + 2);
    if (pos + 4 + padded(al) > bytes.size()) {
      result.error = DecodeError::AttributeOverrun;
      return result;
    }
    m.attributes.push_back({at, bytes.subspan(pos + 4, al)});
    pos += 4 + padded(al);
  }
  result.message = std::move(m);
  return result;
}

std::optional<Endpoint> decode_address(ByteSpan value) {
  if (value.size() < 4) return std::nullopt;
  const std::uint16_t port = load16(value, 2);
  if (value[1] == 1 && value.size() == 8) {
    return Endpoint::v4({value[4], value[5], value[6], value[7]}, port);
  }
  if (value[1] == 2 && value.size() == 20) {
    std::array<std::uint8_t, 16> a{};
    std::copy_n(value.begin() + 4, 16, a.begin());
    return Endpoint::v6(a, port);
  }
  return std::nullopt;
}

std::optional<Endpoint> decode_xor_address(ByteSpan value,
                                           const std::array<std::uint8_t, 16>& transaction) {
  auto e = decode_address(value);
  if (!e) return e;
  e->port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
  for (std::size_t i = 0; i < e->address_size(); ++i) e->address[i] ^= transaction[i];
  return e;
}

std::optional<ErrorCode> decode_error_code(ByteSpan value) {
  if (value.size() < 4) return std::nullopt;
  const int hundreds = value[2] & 0x07;
  const int rest = value[3];
  if (hundreds < 3 || hundreds > 6 || rest > 99) return std::nullopt;
  return ErrorCode{
      hundreds * 100 + rest,
      std::string_view(reinterpret_cast<const char*>(value.data()) + 4, value.size() - 4)};
}

std::vector<std::uint16_t> decode_unknown_attributes(ByteSpan value) {
  std::vector<std::uint16_t> types;
  for (std::size_t i = 0; i + 1 < value.size(); i += 2) types.push_back(load16(value, i));
  return types;
}

std::uint32_t crc32(ByteSpan bytes) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::uint8_t b : bytes) c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

bool has_valid_fingerprint(ByteSpan message) {
  if (message.size() < kHeaderSize + 8) return false;
  const std::size_t at = message.size() - 8;
  if (load16(message, at) != attr::kFingerprint || load16(message, at + 2) != 4) return false;
  return (crc32(message.first(at)) ^ kFingerprintXor) == load32(message, at + 4);
}

// ---- encoding
// ------------------------------------------------------------------------------------

MessageBuilder::MessageBuilder(std::uint16_t type, const TransactionId& id) : bytes_(kHeaderSize) {
  store16(bytes_.data(), type);
  store32(bytes_.data() + 4, kMagicCookie);
  std::copy(id.begin(), id.end(), bytes_.begin() + 8);
}

MessageBuilder::MessageBuilder(std::uint16_t type, const std::array<std::uint8_t, 16>& legacy_id)
    : bytes_(kHeaderSize) {
  store16(bytes_.data(), type);
  std::copy(legacy_id.begin(), legacy_id.end(), bytes_.begin() + 4);
}

MessageBuilder& MessageBuilder::add(std::uint16_t type, ByteSpan value) {
  const std::size_t at = bytes_.size();
  bytes_.resize(at + 4 + padded(value.size()), 0);
  store16(bytes_.data() + at, type);
  store16(bytes_.data() + at + 2, static_cast<std::uint16_t>(value.size()));
  std::copy(value.begin(), value.end(), bytes_.begin() + at + 4);
  set_length();
  return *this;
}

MessageBuilder& MessageBuilder::add_u32(std::uint16_t type, std::uint32_t value) {
  std::uint8_t v[4];
  store32(v, value);
  return add(type, v);
}

MessageBuilder& MessageBuilder::add_fingerprint() {
  const std::size_t at = bytes_.size();
  bytes_.resize(at + 8, 0);
  set_length();
  store16(bytes_.data() + at, attr::kFingerprint);
  store16(bytes_.data() + at + 2, 4);
  store32(bytes_.data() + at + 4, crc32(ByteSpan(bytes_.data(), at)) ^ kFingerprintXor);
  return *this;
}

void MessageBuilder::set_length() {
  store16(bytes_.data() + 2, static_cast<std::uint16_t>(bytes_.size() - kHeaderSize));
}

Bytes make_binding_request(const TransactionId& id, bool fingerprint, std::string_view software) {
  MessageBuilder b(kBindingRequest, id);
  if (!software.empty()) {
    b.add(attr::kSoftware,
          ByteSpan(reinterpret_cast<const std::uint8_t*>(software.data()), software.size()));
  }
  if (fingerprint) b.add_fingerprint();
  return b.take();
}

}  // namespace iroh::stun
