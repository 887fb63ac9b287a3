// A minimal blocking QUIC v1 client for tests of the QAD server, built on the server's own codec
// and on GnuTLS's QUIC interface (client side). Unlike quic-go it negotiates the address
// discovery role, so it can check OBSERVED_ADDRESS frames. Loopback only, no congestion control,
// no retransmission (tests that need loss simulate it by dropping datagrams).
#pragma once

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "iroh/quic/crypto.hpp"
#include "iroh/quic/packet.hpp"
#include "iroh/quic/tls.hpp"

namespace qad_test {

namespace quic = iroh::quic;

struct ClientOptions {
  std::optional<quic::AddressDiscoveryRole> role = quic::AddressDiscoveryRole::ReceiveOnly;
  std::string alpn = std::string(quic::kQadAlpn);
  std::string ca_file;  // empty = do not verify the certificate
  std::string server_name = "localhost";
  int drop_1rtt_datagrams = 0;   // simulated loss of the first N datagrams carrying 1-RTT packets
  int drop_first_datagrams = 0;  // simulated loss of the first N datagrams from the server
  bool ipv6 = false;             // talk to [::1] instead of 127.0.0.1
  std::string priorities =
      "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
      "%DISABLE_TLS13_COMPAT_MODE";
};

class QadTestClient {
 public:
  QadTestClient(std::uint16_t server_port, ClientOptions options)
      : options_(std::move(options)), server_port_(server_port) {
    dcid_.resize(8);
    scid_.resize(8);
    RAND_bytes(dcid_.data(), 8);
    RAND_bytes(scid_.data(), 8);
    original_dcid_ = dcid_;
    const auto keys = quic::derive_initial_keys(dcid_);
    spaces_[0].tx = keys.client;
    spaces_[0].rx = keys.server;
    open_socket();
    init_tls();
  }
  ~QadTestClient() {
    if (session_ != nullptr) gnutls_deinit(session_);
    if (credentials_ != nullptr) gnutls_certificate_free_credentials(credentials_);
    if (fd_ >= 0) ::close(fd_);
  }
  QadTestClient(const QadTestClient&) = delete;
  QadTestClient& operator=(const QadTestClient&) = delete;

  // The first datagram (Initial with the ClientHello, padded to 1200 bytes), without sending it.
  quic::Bytes first_datagram() {
    start_tls();
    return build_datagram();
  }

  // Runs the handshake until HANDSHAKE_DONE, a close from the server, or the timeout.
  bool handshake(std::chrono::milliseconds timeout) {
    start_tls();
    send_pending();
    return run_until([&] { return handshake_done_; }, timeout);
  }

  // Non-blocking use, for driving many clients from one poll loop (loadtest/qad_bench.cpp):
  // start() sends the first flight; when fd() is readable, receive_available() processes what
  // has arrived.
  int fd() const { return fd_; }
  void start() {
    start_tls();
    send_pending();
  }
  void receive_available() {
    std::array<std::uint8_t, 2048> buffer{};
    for (int i = 0; i < 16; ++i) {  // bounded: the rest waits for the next poll
      const auto n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n <= 0) return;
      process_datagram(quic::Bytes(buffer.begin(), buffer.begin() + n));
    }
  }
  bool handshake_done() const { return handshake_done_; }

  // Addresses later 1-RTT packets to `cid` (one the server issued in NEW_CONNECTION_ID).
  void use_connection_id(const quic::Bytes& cid) { dcid_ = cid; }
  const quic::Bytes& connection_id() const { return dcid_; }
  void retire_connection_id(std::uint64_t sequence) {
    quic::Bytes payload;
    quic::encode_retire_connection_id(payload, sequence);
    send_1rtt(payload);
  }
  // Sends a PATH_CHALLENGE on the current path and waits for its PATH_RESPONSE.
  bool challenge(std::chrono::milliseconds timeout) {
    path_responses.clear();
    quic::Bytes payload{0x1a, 1, 2, 3, 4, 5, 6, 7, 8};
    send_1rtt(payload);
    return wait_for_path_response(timeout);
  }
  bool wait_for_new_connection_ids(std::size_t count, std::chrono::milliseconds timeout) {
    return run_until([&] { return new_connection_ids.size() >= count; }, timeout);
  }
  bool wait_for_stateless_reset(std::chrono::milliseconds timeout) {
    return run_until([&] { return stateless_reset; }, timeout);
  }

  bool wait_for_observed(std::size_t count, std::chrono::milliseconds timeout) {
    return run_until([&] { return observed.size() >= count; }, timeout);
  }
  bool wait_for_path_response(std::chrono::milliseconds timeout) {
    return run_until([&] { return !path_responses.empty(); }, timeout);
  }
  bool wait_for_close(std::chrono::milliseconds timeout) {
    return run_until([&] { return server_close.has_value(); }, timeout);
  }

  // Sends a PING in a 1-RTT packet (keeps the connection alive, or shows a new path).
  void ping() {
    ping_pending_ = true;
    send_pending();
  }

  // A new socket, i.e. a new source port: what a NAT rebinding looks like to the server.
  void rebind() {
    ::close(fd_);
    open_socket();
  }

  // Sends `payload` (frames) in a 1-RTT packet.
  void send_1rtt(const quic::Bytes& payload) { send_raw(seal(2, payload)); }

  void close(std::uint64_t code, const std::string& reason) {
    quic::Bytes payload;
    quic::encode_connection_close(payload, {true, code, 0, reason});
    send_raw(seal(2, payload));
  }

  std::uint16_t local_port() const {
    sockaddr_storage address{};
    socklen_t size = sizeof address;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    if (address.ss_family == AF_INET6) {
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
    }
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  }
  void send_raw(const quic::Bytes& datagram) {
    if (options_.ipv6) {
      sockaddr_in6 to{};
      to.sin6_family = AF_INET6;
      to.sin6_port = htons(server_port_);
      to.sin6_addr = in6addr_loopback;
      ::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to),
               sizeof to);
      return;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(server_port_);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  // Receives for up to `timeout`, returning the bytes of every datagram without processing them.
  std::size_t drain(std::chrono::milliseconds timeout) {
    std::size_t total = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::uint8_t> buffer(65536);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) continue;
      const auto n = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (n > 0) total += static_cast<std::size_t>(n);
    }
    return total;
  }

  std::vector<quic::ObservedAddressFrame> observed;
  std::optional<quic::ConnectionCloseFrame> server_close;
  std::vector<std::array<std::uint8_t, 8>> path_responses;
  std::vector<quic::NewConnectionIdFrame> new_connection_ids;
  bool stateless_reset = false;  // a datagram that ended with a reset token the server gave us
  std::optional<quic::TransportParameters> server_parameters;
  std::string tls_error;
  std::size_t bytes_received = 0;
  // The TLS cipher negotiated, once the handshake is complete.
  gnutls_cipher_algorithm_t cipher() const { return gnutls_cipher_get(session_); }

 private:
  struct Space {
    std::optional<quic::PacketKeys> rx, tx;
    std::uint64_t next_pn = 0;
    std::optional<std::uint64_t> largest;
    std::vector<std::uint64_t> received;
    bool ack_pending = false;
    std::uint64_t crypto_rx_offset = 0;
    std::map<std::uint64_t, quic::Bytes> crypto_rx;
    quic::Bytes crypto_tx_pending;
    std::uint64_t crypto_tx_offset = 0;
  };

  void open_socket() {
    if (options_.ipv6) {
      fd_ = ::socket(AF_INET6, SOCK_DGRAM, 0);
      sockaddr_in6 local{};
      local.sin6_family = AF_INET6;
      local.sin6_addr = in6addr_loopback;
      ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local);
    } else {
      fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local);
    }
  }

  static QadTestClient* self(gnutls_session_t session) {
    return static_cast<QadTestClient*>(gnutls_session_get_ptr(session));
  }

  void init_tls() {
    gnutls_certificate_allocate_credentials(&credentials_);
    if (!options_.ca_file.empty()) {
      gnutls_certificate_set_x509_trust_file(credentials_, options_.ca_file.c_str(),
                                             GNUTLS_X509_FMT_PEM);
    }
    gnutls_init(&session_, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA);
    gnutls_session_set_ptr(session_, this);
    gnutls_priority_set_direct(session_, options_.priorities.c_str(), nullptr);
    gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, credentials_);
    gnutls_server_name_set(session_, GNUTLS_NAME_DNS, options_.server_name.data(),
                           options_.server_name.size());
    if (!options_.ca_file.empty())
      gnutls_session_set_verify_cert(session_, options_.server_name.c_str(), 0);
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(options_.alpn.data()),
                        static_cast<unsigned>(options_.alpn.size())};
    gnutls_alpn_set_protocols(session_, &alpn, 1, 0);
    gnutls_handshake_set_secret_function(
        session_,
        [](gnutls_session_t s, gnutls_record_encryption_level_t level, const void* rx,
           const void* tx, size_t size) -> int {
          const int index = level == GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE     ? 1
                            : level == GNUTLS_ENCRYPTION_LEVEL_APPLICATION ? 2
                                                                           : -1;
          if (index < 0) return 0;
          quic::Aead aead = quic::Aead::Aes128Gcm;
          if (gnutls_cipher_get(s) == GNUTLS_CIPHER_AES_256_GCM) aead = quic::Aead::Aes256Gcm;
          if (gnutls_cipher_get(s) == GNUTLS_CIPHER_CHACHA20_POLY1305) {
            aead = quic::Aead::ChaCha20Poly1305;
          }
          const auto hash =
              gnutls_prf_hash_get(s) == GNUTLS_DIG_SHA384 ? quic::Hash::Sha384 : quic::Hash::Sha256;
          auto& space = self(s)->spaces_[index];
          if (rx)
            space.rx =
                quic::derive_packet_keys(aead, hash, {static_cast<const std::uint8_t*>(rx), size});
          if (tx)
            space.tx =
                quic::derive_packet_keys(aead, hash, {static_cast<const std::uint8_t*>(tx), size});
          return 0;
        });
    gnutls_handshake_set_read_function(
        session_,
        [](gnutls_session_t s, gnutls_record_encryption_level_t level,
           gnutls_handshake_description_t type, const void* data, size_t size) -> int {
          if (type == GNUTLS_HANDSHAKE_CHANGE_CIPHER_SPEC) return 0;
          const int index = level == GNUTLS_ENCRYPTION_LEVEL_INITIAL     ? 0
                            : level == GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE ? 1
                                                                         : 2;
          auto& pending = self(s)->spaces_[index].crypto_tx_pending;
          const auto* bytes = static_cast<const std::uint8_t*>(data);
          pending.insert(pending.end(), bytes, bytes + size);
          return 0;
        });
    gnutls_alert_set_read_function(
        session_,
        [](gnutls_session_t, gnutls_record_encryption_level_t, gnutls_alert_level_t,
           gnutls_alert_description_t) -> int { return 0; });
    gnutls_session_ext_register(
        session_, "QUIC Transport Parameters", 0x39, GNUTLS_EXT_TLS,
        [](gnutls_session_t s, const unsigned char* data, size_t size) -> int {
          self(s)->server_parameters = quic::decode_transport_parameters({data, size});
          return 0;
        },
        [](gnutls_session_t s, gnutls_buffer_t out) -> int {
          quic::TransportParameters params;
          params.initial_source_connection_id = self(s)->scid_;
          params.max_idle_timeout_ms = 35000;
          params.address_discovery = self(s)->options_.role;
          const auto bytes = quic::encode_transport_parameters(params);
          gnutls_buffer_append_data(out, bytes.data(), bytes.size());
          return static_cast<int>(bytes.size());
        },
        nullptr, nullptr, nullptr,
        GNUTLS_EXT_FLAG_TLS | GNUTLS_EXT_FLAG_CLIENT_HELLO | GNUTLS_EXT_FLAG_EE);
  }

  void start_tls() {
    if (tls_started_) return;
    tls_started_ = true;
    gnutls_handshake(session_);  // writes the ClientHello, then wants data
  }

  void feed_crypto(int index, std::uint64_t offset, const quic::Bytes& data) {
    Space& s = spaces_[index];
    if (offset + data.size() <= s.crypto_rx_offset) return;
    s.crypto_rx[offset] = data;
    while (!s.crypto_rx.empty() && s.crypto_rx.begin()->first <= s.crypto_rx_offset) {
      auto node = s.crypto_rx.extract(s.crypto_rx.begin());
      const std::uint64_t end = node.key() + node.mapped().size();
      if (end <= s.crypto_rx_offset) continue;
      const std::size_t skip = s.crypto_rx_offset - node.key();
      const auto level = index == 0   ? GNUTLS_ENCRYPTION_LEVEL_INITIAL
                         : index == 1 ? GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE
                                      : GNUTLS_ENCRYPTION_LEVEL_APPLICATION;
      gnutls_handshake_write(session_, level, node.mapped().data() + skip,
                             node.mapped().size() - skip);
      s.crypto_rx_offset = end;
    }
    if (!tls_complete_) {
      const int rv = gnutls_handshake(session_);
      if (rv == 0) {
        tls_complete_ = true;
      } else if (gnutls_error_is_fatal(rv)) {
        tls_error = gnutls_strerror(rv);
      }
    }
  }

  void process_datagram(const quic::Bytes& datagram) {
    bytes_received += datagram.size();
    quic::ByteSpan rest(datagram);
    bool one_rtt = false;
    for (int i = 0; i < 8 && !rest.empty(); ++i) {
      auto header = quic::parse_packet_header(rest, scid_.size());
      if (!header || header->packet_size == 0 || header->packet_size > rest.size()) break;
      one_rtt |= header->type == quic::PacketType::OneRtt;
      rest = rest.subspan(header->packet_size);
    }
    if (options_.drop_first_datagrams > 0) {
      --options_.drop_first_datagrams;
      return;
    }
    if (one_rtt && options_.drop_1rtt_datagrams > 0) {
      --options_.drop_1rtt_datagrams;
      return;
    }
    if (is_stateless_reset(datagram)) {
      stateless_reset = true;
      return;
    }
    rest = quic::ByteSpan(datagram);
    for (int i = 0; i < 8 && !rest.empty(); ++i) {
      auto header = quic::parse_packet_header(rest, scid_.size());
      if (!header || header->version != quic::kVersion1 || header->packet_size == 0 ||
          header->packet_size > rest.size()) {
        break;
      }
      const auto packet = rest.first(header->packet_size);
      rest = rest.subspan(header->packet_size);
      const int index = header->type == quic::PacketType::Initial     ? 0
                        : header->type == quic::PacketType::Handshake ? 1
                        : header->type == quic::PacketType::OneRtt    ? 2
                                                                      : -1;
      if (index < 0) continue;
      Space& s = spaces_[index];
      if (!s.rx) continue;
      auto opened = quic::open_packet(packet, *header, *s.rx, s.largest.value_or(0));
      if (!opened) continue;
      if (index < 2 && dcid_ == original_dcid_) dcid_ = header->scid;
      s.received.push_back(opened->packet_number);
      if (!s.largest || opened->packet_number > *s.largest) s.largest = opened->packet_number;
      auto frames = quic::parse_frames(opened->payload);
      if (!std::holds_alternative<std::vector<quic::Frame>>(frames)) continue;
      for (const auto& frame : std::get<std::vector<quic::Frame>>(frames)) {
        if (quic::is_ack_eliciting(frame)) s.ack_pending = true;
        if (const auto* crypto = std::get_if<quic::CryptoFrame>(&frame)) {
          feed_crypto(index, crypto->offset, crypto->data);
        } else if (std::holds_alternative<quic::HandshakeDoneFrame>(frame)) {
          handshake_done_ = true;
        } else if (const auto* address = std::get_if<quic::ObservedAddressFrame>(&frame)) {
          observed.push_back(*address);
        } else if (const auto* close = std::get_if<quic::ConnectionCloseFrame>(&frame)) {
          server_close = *close;
        } else if (const auto* issued = std::get_if<quic::NewConnectionIdFrame>(&frame)) {
          new_connection_ids.push_back(*issued);
        } else if (const auto* response = std::get_if<quic::PathResponseFrame>(&frame)) {
          path_responses.push_back(response->data);
        }
      }
    }
    send_pending();
  }

  // RFC 9000 §10.3.1: a short-header-looking datagram that does not open and ends with a token.
  bool is_stateless_reset(const quic::Bytes& datagram) const {
    if (datagram.size() < 21 || (datagram[0] & 0x80) != 0) return false;
    std::vector<std::array<std::uint8_t, 16>> tokens;
    if (server_parameters && server_parameters->stateless_reset_token) {
      tokens.push_back(*server_parameters->stateless_reset_token);
    }
    for (const auto& issued : new_connection_ids) tokens.push_back(issued.reset_token);
    for (const auto& token : tokens) {
      if (std::equal(token.begin(), token.end(), datagram.end() - 16)) return true;
    }
    return false;
  }

  quic::Bytes seal(int index, const quic::Bytes& payload_in) {
    Space& s = spaces_[index];
    if (!s.tx) return {};
    quic::Bytes payload = payload_in;
    const std::uint64_t pn = s.next_pn++;
    quic::Bytes header =
        index == 2 ? quic::build_short_header(dcid_, pn, 4, false)
                   : quic::build_long_header(
                         index == 0 ? quic::PacketType::Initial : quic::PacketType::Handshake,
                         quic::kVersion1, dcid_, scid_, {}, pn, 4, payload.size());
    return quic::protect_packet(header, 4, pn, payload, *s.tx).value_or(quic::Bytes{});
  }

  quic::Bytes build_datagram() {
    quic::Bytes datagram;
    bool has_initial = false;
    std::vector<std::pair<int, quic::Bytes>> payloads;
    for (int index = 0; index < 3; ++index) {
      Space& s = spaces_[index];
      if (!s.tx) continue;
      quic::Bytes payload;
      if (s.ack_pending && s.largest) {
        quic::AckFrame ack;
        ack.ranges.push_back({*s.largest, *s.largest});  // enough on loopback
        quic::encode_ack(payload, ack);
        s.ack_pending = false;
      }
      if (!s.crypto_tx_pending.empty()) {
        quic::encode_crypto(payload, s.crypto_tx_offset, s.crypto_tx_pending);
        s.crypto_tx_offset += s.crypto_tx_pending.size();
        s.crypto_tx_pending.clear();
      }
      if (index == 2 && ping_pending_) {
        quic::encode_ping(payload);
        ping_pending_ = false;
      }
      if (payload.empty()) continue;
      has_initial |= index == 0;
      payloads.emplace_back(index, std::move(payload));
    }
    if (payloads.empty()) return datagram;
    std::vector<quic::Bytes> packets;
    for (const auto& [index, payload] : payloads) {
      packets.push_back(seal(index, payload));
      datagram.insert(datagram.end(), packets.back().begin(), packets.back().end());
    }
    if (has_initial && datagram.size() < 1200) {
      // Clients pad every datagram with an Initial to 1200 bytes (RFC 9000 §14.1).
      quic::encode_padding(payloads.back().second, 1200 - datagram.size());
      datagram.resize(datagram.size() - packets.back().size());
      const auto packet = seal(payloads.back().first, payloads.back().second);
      datagram.insert(datagram.end(), packet.begin(), packet.end());
    }
    return datagram;
  }

  void send_pending() {
    auto datagram = build_datagram();
    if (!datagram.empty()) send_raw(datagram);
  }

  template <class P>
  bool run_until(P done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::uint8_t> buffer(65536);
    while (!done() && !server_close && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const auto n = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (n <= 0) continue;
      process_datagram(quic::Bytes(buffer.begin(), buffer.begin() + n));
    }
    return done();
  }

  ClientOptions options_;
  std::uint16_t server_port_;
  int fd_ = -1;
  quic::Bytes dcid_, scid_, original_dcid_;
  Space spaces_[3];
  gnutls_certificate_credentials_t credentials_ = nullptr;
  gnutls_session_t session_ = nullptr;
  bool tls_started_ = false;
  bool tls_complete_ = false;
  bool handshake_done_ = false;
  bool ping_pending_ = false;
};

}  // namespace qad_test
