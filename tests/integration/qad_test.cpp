// QAD server end to end on loopback with the in-tree test client (which negotiates the address
// discovery role): OBSERVED_ADDRESS delivery, re-sending on path change and on loss, closing,
// idle timeout, and hostile input (garbage, truncated Initials, unknown versions, Initial floods)
// against the 3x anti-amplification limit.
#include <gtest/gtest.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

#include "qad/qad_test_client.hpp"
#include "qad/qad_test_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace quic = iroh::quic;

template <class P>
bool eventually(P predicate, std::chrono::milliseconds timeout = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return predicate();
}

class QadTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certificate_.ok()); }
  qad_test::ClientOptions options() const {
    qad_test::ClientOptions o;
    o.ca_file = certificate_.cert_path();
    return o;
  }
  // With a burst of 2 left: two handshakes complete, the third Initial is dropped.
  void expect_two_handshakes_then_a_drop(qad_test::QadTestServer& server) const {
    for (int i = 0; i < 2; ++i) {
      qad_test::QadTestClient client(server.port(), options());
      ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
    }
    qad_test::QadTestClient limited(server.port(), options());
    EXPECT_FALSE(limited.handshake(500ms));
    EXPECT_EQ(server.metrics().incoming.Value(), 2u);
  }
  qad_test::TestCertificate certificate_;
};

TEST_F(QadTest, ObservedAddressIsTheClientSourceAddress) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
  ASSERT_TRUE(client.wait_for_observed(1, 3000ms));
  const auto& frame = client.observed[0];
  EXPECT_EQ(frame.sequence, 0u);
  EXPECT_FALSE(frame.ipv6);
  EXPECT_EQ(frame.ip[0], 127);
  EXPECT_EQ(frame.ip[1], 0);
  EXPECT_EQ(frame.ip[2], 0);
  EXPECT_EQ(frame.ip[3], 1);
  EXPECT_EQ(frame.port, client.local_port());

  ASSERT_TRUE(client.server_parameters);
  EXPECT_EQ(client.server_parameters->address_discovery, quic::AddressDiscoveryRole::SendOnly);
  EXPECT_EQ(client.server_parameters->max_idle_timeout_ms, 30000u);
  EXPECT_EQ(client.server_parameters->initial_max_streams_bidi, 0u);
  EXPECT_EQ(client.server_parameters->initial_max_streams_uni, 0u);

  client.close(1, "finished");
  EXPECT_TRUE(eventually([&] { return server.metrics().connections_closed.Value() == 1; }));
  EXPECT_EQ(server.metrics().incoming.Value(), 1u);
  EXPECT_EQ(server.metrics().connections.Value(), 1u);
  EXPECT_EQ(server.metrics().connections_errored.Value(), 0u);
  EXPECT_EQ(server.metrics().incoming_error.Value(), 0u);
  EXPECT_EQ(server.metrics().observed_address_frames_sent.Value(), 1u);
  EXPECT_EQ(server.metrics().open_connections.Value(), 0);
  EXPECT_EQ(server.connection_count(), 0u);
}

TEST_F(QadTest, Ipv6ClientGetsTheIpv6Frame) {
  qad_test::QadTestServer server(certificate_, {}, "::1");
  auto o = options();
  o.ipv6 = true;
  qad_test::QadTestClient client(server.port(), o);
  ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
  ASSERT_TRUE(client.wait_for_observed(1, 3000ms));
  const auto& frame = client.observed[0];
  EXPECT_TRUE(frame.ipv6);
  const std::array<std::uint8_t, 16> loopback = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ(frame.ip, loopback);
  EXPECT_EQ(frame.port, client.local_port());
}

TEST_F(QadTest, DualStackSocketReportsIpv4ClientsAsIpv4) {
  qad_test::QadTestServer server(certificate_, {}, "::");
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
  ASSERT_TRUE(client.wait_for_observed(1, 3000ms));
  const auto& frame = client.observed[0];
  EXPECT_FALSE(frame.ipv6);  // not ::ffff:127.0.0.1 (spec §7.1 prefers the IPv4 frame)
  EXPECT_EQ(frame.ip[0], 127);
  EXPECT_EQ(frame.ip[3], 1);
  EXPECT_EQ(frame.port, client.local_port());
}

TEST_F(QadTest, EveryQuicCipherSuiteWorks) {
  qad_test::QadTestServer server(certificate_);
  const std::pair<const char*, gnutls_cipher_algorithm_t> suites[] = {
      {"+AES-128-GCM", GNUTLS_CIPHER_AES_128_GCM},
      {"+AES-256-GCM", GNUTLS_CIPHER_AES_256_GCM},  // SHA-384 key schedule
      {"+CHACHA20-POLY1305", GNUTLS_CIPHER_CHACHA20_POLY1305},
  };
  for (const auto& [suite, cipher] : suites) {
    auto o = options();
    o.priorities = std::string("NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:") + suite +
                   ":%DISABLE_TLS13_COMPAT_MODE";
    qad_test::QadTestClient client(server.port(), o);
    ASSERT_TRUE(client.handshake(3000ms)) << suite << " " << client.tls_error;
    EXPECT_EQ(client.cipher(), cipher) << suite;
    EXPECT_TRUE(client.wait_for_observed(1, 3000ms)) << suite;
    client.close(1, "finished");
  }
}

TEST_F(QadTest, DevModeSelfSignedCertificate) {
  iroh::server::QadConfig config;
  config.certificate_pem = quic::generate_self_signed_certificate("localhost");
  ASSERT_TRUE(config.certificate_pem);
  qad_test::QadTestServer server(certificate_, config);
  auto o = options();
  o.ca_file.clear();  // the generated certificate is not known to the client
  qad_test::QadTestClient client(server.port(), o);
  ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
  EXPECT_TRUE(client.wait_for_observed(1, 3000ms));
}

TEST_F(QadTest, StartFailsWithAMessage) {
  boost::asio::io_context io;
  iroh::server::QadConfig no_certificate;
  no_certificate.bind_addr = {boost::asio::ip::make_address("127.0.0.1"), 0};
  iroh::server::QadService without(io, no_certificate);
  EXPECT_THROW(without.start(), std::runtime_error);

  iroh::server::QadConfig bad_files = no_certificate;
  bad_files.cert_path = "/nonexistent/cert.pem";
  bad_files.key_path = "/nonexistent/key.pem";
  iroh::server::QadService missing(io, bad_files);
  EXPECT_THROW(missing.start(), std::runtime_error);

  qad_test::QadTestServer server(certificate_);
  iroh::server::QadConfig taken = no_certificate;
  taken.cert_path = certificate_.cert_path();
  taken.key_path = certificate_.key_path();
  taken.bind_addr.port(server.port());
  iroh::server::QadService in_use(io, taken);
  try {
    in_use.start();
    ADD_FAILURE() << "bind to a used port succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot bind"), std::string::npos) << e.what();
  }
}

TEST_F(QadTest, NoObservedAddressWithoutTheReceiveRole) {
  qad_test::QadTestServer server(certificate_);
  auto o = options();
  o.role = quic::AddressDiscoveryRole::SendOnly;
  qad_test::QadTestClient client(server.port(), o);
  ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
  EXPECT_FALSE(client.wait_for_observed(1, 300ms));
  qad_test::QadTestClient no_parameter(server.port(), [&] {
    auto without = options();
    without.role.reset();
    return without;
  }());
  ASSERT_TRUE(no_parameter.handshake(3000ms));
  EXPECT_FALSE(no_parameter.wait_for_observed(1, 300ms));
}

TEST_F(QadTest, BothRoleGetsObservedAddress) {
  qad_test::QadTestServer server(certificate_);
  auto o = options();
  o.role = quic::AddressDiscoveryRole::Both;
  qad_test::QadTestClient client(server.port(), o);
  ASSERT_TRUE(client.handshake(3000ms));
  EXPECT_TRUE(client.wait_for_observed(1, 3000ms));
}

TEST_F(QadTest, RebindingIsReportedWithANewSequenceNumber) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms));
  ASSERT_TRUE(client.wait_for_observed(1, 3000ms));
  const auto first_port = client.observed[0].port;
  client.rebind();
  client.ping();
  ASSERT_TRUE(client.wait_for_observed(2, 3000ms));
  EXPECT_EQ(client.observed[1].sequence, 1u);
  EXPECT_EQ(client.observed[1].port, client.local_port());
  EXPECT_NE(client.observed[1].port, first_port);
}

TEST_F(QadTest, LostObservedAddressIsResentAsAFreshFrame) {
  qad_test::QadTestServer server(certificate_);
  auto o = options();
  o.drop_1rtt_datagrams = 1;  // HANDSHAKE_DONE + OBSERVED_ADDRESS lost once
  qad_test::QadTestClient client(server.port(), o);
  ASSERT_TRUE(client.handshake(5000ms));
  ASSERT_TRUE(client.wait_for_observed(1, 3000ms));
  EXPECT_GE(client.observed[0].sequence, 1u);
  EXPECT_EQ(client.observed[0].port, client.local_port());
}

TEST_F(QadTest, LostHandshakeFlightIsRetransmitted) {
  qad_test::QadTestServer server(certificate_);
  auto o = options();
  o.drop_first_datagrams = 1;  // the server's Initial + Handshake flight
  qad_test::QadTestClient client(server.port(), o);
  ASSERT_TRUE(client.handshake(5000ms)) << client.tls_error;
  EXPECT_TRUE(client.wait_for_observed(1, 3000ms));
}

TEST_F(QadTest, PathChallengeIsAnswered) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms));
  const std::array<std::uint8_t, 8> challenge = {1, 2, 3, 4, 5, 6, 7, 8};
  quic::Bytes payload = {0x1a};
  payload.insert(payload.end(), challenge.begin(), challenge.end());
  client.send_1rtt(payload);
  ASSERT_TRUE(client.wait_for_path_response(3000ms));
  EXPECT_EQ(client.path_responses[0], challenge);
}

// Frames a QAD client must not send close the connection with the right transport error.
TEST_F(QadTest, ForbiddenFramesCloseTheConnection) {
  qad_test::QadTestServer server(certificate_);
  const std::pair<quic::Bytes, std::uint64_t> cases[] = {
      {{0x08, 0x00, 0x01}, 0x04},                                        // STREAM
      {{0x1e}, 0x0a},                                                    // HANDSHAKE_DONE
      {{0x80, 0x9f, 0x81, 0xa6, 0x00, 127, 0, 0, 1, 0x10, 0x92}, 0x0a},  // OBSERVED_ADDRESS
      {{0x21}, 0x07},                                                    // unknown frame
      {{0x02, 0x50, 0x00, 0x00, 0x00, 0x00}, 0x0a},  // ACK of packet 4096, never sent
  };
  for (const auto& [payload, code] : cases) {
    SCOPED_TRACE("frame type " + std::to_string(payload[0]));
    qad_test::QadTestClient client(server.port(), options());
    ASSERT_TRUE(client.handshake(3000ms));
    client.send_1rtt(payload);
    ASSERT_TRUE(client.wait_for_close(3000ms)) << "code " << code;
    EXPECT_FALSE(client.server_close->application);
    EXPECT_EQ(client.server_close->error_code, code);
  }
  EXPECT_TRUE(eventually([&] { return server.metrics().connections_errored.Value() == 5; }));
  EXPECT_EQ(server.connection_count(), 0u);
}

TEST_F(QadTest, ShutdownClosesWithFinished) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms));
  server.stop();
  ASSERT_TRUE(client.wait_for_close(3000ms));
  EXPECT_TRUE(client.server_close->application);
  EXPECT_EQ(client.server_close->error_code, 1u);
  EXPECT_EQ(client.server_close->reason, "finished");
  EXPECT_EQ(server.metrics().connections_closed.Value(), 1u);
  EXPECT_EQ(server.metrics().connections_errored.Value(), 0u);
}

TEST_F(QadTest, CloseWithAnotherCodeCountsAsErrored) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms));
  client.close(7, "oops");
  EXPECT_TRUE(eventually([&] { return server.metrics().connections_errored.Value() == 1; }));
  EXPECT_EQ(server.metrics().connections_closed.Value(), 1u);
}

TEST_F(QadTest, IdleConnectionsTimeOut) {
  iroh::server::QadConfig config;
  config.idle_timeout = 300ms;
  qad_test::QadTestServer server(certificate_, config);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms));
  ASSERT_TRUE(client.server_parameters);
  EXPECT_EQ(client.server_parameters->max_idle_timeout_ms, 300u);
  EXPECT_TRUE(eventually([&] { return server.connection_count() == 0; }, 5000ms));
  EXPECT_EQ(server.metrics().connections_errored.Value(), 1u);
}

TEST_F(QadTest, SilentClientGetsAtMostThreeTimesWhatItSent) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  const auto initial = client.first_datagram();
  ASSERT_EQ(initial.size(), 1200u);
  client.send_raw(initial);
  // Long enough for several probe timeouts; the client never acknowledges anything.
  const std::size_t received = client.drain(2500ms);
  std::printf("silent client: sent %zu bytes, received %zu bytes\n", initial.size(), received);
  EXPECT_GT(received, 0u);
  EXPECT_LE(received, 3 * initial.size());
}

TEST_F(QadTest, UnknownVersionGetsVersionNegotiation) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient sender(server.port(), options());
  quic::Bytes datagram = {0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 4, 1, 2, 3, 4, 2, 5, 6};
  datagram.resize(1200, 0);
  sender.send_raw(datagram);
  EXPECT_GT(sender.drain(300ms), 0u);
  EXPECT_EQ(server.metrics().version_negotiations_sent.Value(), 1u);
  // Too small to be a first flight: no answer (an answer would amplify).
  datagram.resize(100);
  sender.send_raw(datagram);
  EXPECT_EQ(sender.drain(300ms), 0u);
  EXPECT_EQ(server.metrics().version_negotiations_sent.Value(), 1u);
}

TEST_F(QadTest, GarbageAndTruncatedInitialsAreDropped) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient attacker(server.port(), options());
  const auto initial = attacker.first_datagram();
  std::size_t sent = 0;
  auto send = [&](const quic::Bytes& datagram) {
    attacker.send_raw(datagram);
    sent += datagram.size();
  };
  for (std::size_t size = 1; size < initial.size(); size += 37) {
    send(quic::Bytes(initial.begin(), initial.begin() + static_cast<std::ptrdiff_t>(size)));
  }
  for (int i = 0; i < 300; ++i) {
    quic::Bytes garbage(1 + static_cast<std::size_t>(i * 7 % 1500));
    RAND_bytes(garbage.data(), static_cast<int>(garbage.size()));
    if (i % 3 == 0) garbage[0] = 0xc0;  // long header Initial, version 1, random rest
    if (i % 3 == 0 && garbage.size() > 5) {
      garbage[1] = garbage[2] = garbage[3] = 0;
      garbage[4] = 1;
    }
    send(garbage);
  }
  quic::Bytes corrupted = initial;
  corrupted[600] ^= 0xff;  // authentication fails
  send(corrupted);
  const std::size_t received = attacker.drain(1000ms);
  std::printf("garbage: sent %zu bytes, received %zu bytes\n", sent, received);
  EXPECT_LE(received, 3 * sent);
  EXPECT_EQ(server.connection_count(), 0u);
  EXPECT_EQ(server.metrics().incoming.Value(), 0u);
  EXPECT_GT(server.metrics().dropped_total(), 0u);

  qad_test::QadTestClient client(server.port(), options());
  EXPECT_TRUE(client.handshake(3000ms));
  EXPECT_TRUE(client.wait_for_observed(1, 3000ms));
}

TEST_F(QadTest, InitialFloodIsCappedAndNeverAmplifiedBeyondThreeTimes) {
  iroh::server::QadConfig config;
  config.max_connections = 20;
  qad_test::QadTestServer server(certificate_, config);
  qad_test::QadTestClient attacker(server.port(), options());
  std::size_t sent = 0;
  std::size_t received = 0;
  for (int i = 0; i < 60; ++i) {
    qad_test::QadTestClient forged(server.port(), options());
    const auto datagram = forged.first_datagram();
    attacker.send_raw(datagram);
    sent += datagram.size();
    received += attacker.drain(5ms);
  }
  received += attacker.drain(2000ms);
  std::printf("Initial flood: sent %zu bytes, received %zu bytes\n", sent, received);
  EXPECT_LE(received, 3 * sent);
  EXPECT_GT(received, 0u);
  EXPECT_LE(server.connection_count(), 20u);
  EXPECT_EQ(server.metrics().incoming.Value(), 20u);
  // Still serving once the flood stops (new connections are refused while the table is full).
  server.stop();
}

TEST_F(QadTest, NewConnectionIdsAreIssuedRetiredAndResetStatelessly) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
  ASSERT_TRUE(client.wait_for_observed(1, 3000ms));
  // The client's active_connection_id_limit is the default 2: one more ID besides the first.
  ASSERT_TRUE(client.wait_for_new_connection_ids(1, 3000ms));
  const auto issued = client.new_connection_ids[0];
  EXPECT_EQ(issued.sequence, 1u);
  EXPECT_EQ(issued.retire_prior_to, 0u);
  EXPECT_EQ(issued.connection_id.size(), 8u);
  ASSERT_TRUE(client.server_parameters && client.server_parameters->stateless_reset_token);
  EXPECT_NE(issued.reset_token, *client.server_parameters->stateless_reset_token);

  const quic::Bytes first_id = client.connection_id();
  client.use_connection_id(issued.connection_id);
  ASSERT_TRUE(client.challenge(3000ms)) << "the new ID is routed to the connection";

  client.retire_connection_id(0);
  ASSERT_TRUE(client.wait_for_new_connection_ids(2, 3000ms)) << "a replacement is issued";
  EXPECT_EQ(client.new_connection_ids[1].sequence, 2u);
  ASSERT_TRUE(client.challenge(3000ms));

  // The retired ID no longer reaches the connection: the server answers with a Stateless Reset
  // carrying the token of that ID.
  client.use_connection_id(first_id);
  client.ping();
  ASSERT_TRUE(client.wait_for_stateless_reset(3000ms));
  EXPECT_TRUE(eventually([&] { return server.metrics().stateless_resets_sent.Value() >= 1; }));
  EXPECT_EQ(server.connection_count(), 1u);
}

TEST_F(QadTest, RetiringAnIdNeverIssuedIsAProtocolViolation) {
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient client(server.port(), options());
  ASSERT_TRUE(client.handshake(3000ms)) << client.tls_error;
  client.retire_connection_id(9);
  ASSERT_TRUE(client.wait_for_close(3000ms));
  EXPECT_FALSE(client.server_close->application);
  EXPECT_EQ(client.server_close->error_code, 0x0au);
  EXPECT_EQ(client.server_close->frame_type, 0x19u);
}

TEST_F(QadTest, NewConnectionRateLimitDropsInitialsOverTheBurst) {
  iroh::server::QadConfig config;
  config.new_connection_rate = 0.001;  // one token per 1000 s: nothing refills during the test
  config.new_connection_burst = 2;
  qad_test::QadTestServer server(certificate_, config);
  expect_two_handshakes_then_a_drop(server);
  EXPECT_EQ(server.metrics().dropped.rate_limited.Value(), 1u);
}

// Issue 19 item 9: one source beyond its burst is dropped and counted under its own reason, and
// does not spend the global tokens (checked first).
TEST_F(QadTest, PerSourceRateLimitDropsInitialsOverTheBurst) {
  iroh::server::QadConfig config;
  config.per_source_rate = 0.001;  // nothing refills during the test
  config.per_source_burst = 2;
  config.new_connection_rate = 0.001;
  config.new_connection_burst = 3;
  qad_test::QadTestServer server(certificate_, config);
  expect_two_handshakes_then_a_drop(server);
  EXPECT_GE(server.metrics().dropped.source_rate_limited.Value(), 1u);
  EXPECT_EQ(server.metrics().dropped.rate_limited.Value(), 0u);
  // Lifting the per-source limit (a reload): the third global token is still there.
  server.set_per_source_limit(0, 0);
  qad_test::QadTestClient third(server.port(), options());
  EXPECT_TRUE(third.handshake(3000ms)) << third.tls_error;
  qad_test::QadTestClient fourth(server.port(), options());
  EXPECT_FALSE(fourth.handshake(500ms));
  EXPECT_GE(server.metrics().dropped.rate_limited.Value(), 1u);
}

TEST_F(QadTest, NewConnectionRateLimitCanBeChangedWhileRunning) {
  qad_test::QadTestServer server(certificate_);  // unlimited
  server.set_new_connection_limit(0.001, 1);     // what a SIGHUP reload does
  qad_test::QadTestClient first(server.port(), options());
  ASSERT_TRUE(first.handshake(3000ms)) << first.tls_error;
  qad_test::QadTestClient limited(server.port(), options());
  EXPECT_FALSE(limited.handshake(500ms));
  server.set_new_connection_limit(0, 0);  // unlimited again
  qad_test::QadTestClient after(server.port(), options());
  EXPECT_TRUE(after.handshake(3000ms)) << after.tls_error;
  EXPECT_EQ(server.metrics().dropped.rate_limited.Value(), 1u);
}

TEST_F(QadTest, CertificateReloadAppliesToNewConnectionsOnly) {
  qad_test::TestCertificate second;
  ASSERT_TRUE(second.ok());
  qad_test::QadTestServer server(certificate_);
  qad_test::QadTestClient before(server.port(), options());
  ASSERT_TRUE(before.handshake(3000ms)) << before.tls_error;

  ASSERT_EQ(server.reload_certificate(qad_test::read_file(second.cert_path()),
                                      qad_test::read_file(second.key_path())),
            "");
  qad_test::QadTestClient trusts_old(server.port(), options());
  EXPECT_FALSE(trusts_old.handshake(1000ms)) << "the old certificate is no longer offered";
  auto o = options();
  o.ca_file = second.cert_path();
  qad_test::QadTestClient trusts_new(server.port(), o);
  EXPECT_TRUE(trusts_new.handshake(3000ms)) << trusts_new.tls_error;
  EXPECT_TRUE(before.challenge(3000ms)) << "open connections are unaffected";

  // Bad PEM, or a key that does not belong to the certificate: an error, the new one stays.
  EXPECT_NE(server.reload_certificate("garbage", "garbage"), "");
  EXPECT_NE(server.reload_certificate(qad_test::read_file(second.cert_path()),
                                      qad_test::read_file(certificate_.key_path())),
            "");
  qad_test::QadTestClient after_error(server.port(), o);
  EXPECT_TRUE(after_error.handshake(3000ms)) << after_error.tls_error;
}

}  // namespace
