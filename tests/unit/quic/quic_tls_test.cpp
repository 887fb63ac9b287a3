// QAD TLS glue: certificate loading and the dev-mode self-signed certificate.
#include <gtest/gtest.h>

#include "iroh/quic/tls.hpp"

namespace quic = iroh::quic;

TEST(QuicTls, SelfSignedCertificateLoads) {
  auto pem = quic::generate_self_signed_certificate("relay.example");
  ASSERT_TRUE(pem);
  EXPECT_EQ(pem->certificate.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  EXPECT_NE(pem->private_key.find("PRIVATE KEY-----"), std::string::npos);
  std::string error;
  auto credentials = quic::ServerCredentials::from_pem(*pem, error);
  ASSERT_TRUE(credentials) << error;
  EXPECT_NE(credentials->get(), nullptr);
}

TEST(QuicTls, BadCertificatesAreRejectedWithAMessage) {
  std::string error;
  EXPECT_FALSE(quic::ServerCredentials::from_pem({"not a certificate", "not a key"}, error));
  EXPECT_FALSE(error.empty());
  error.clear();
  auto a = quic::generate_self_signed_certificate("a");
  auto b = quic::generate_self_signed_certificate("b");
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(quic::ServerCredentials::from_pem({a->certificate, b->private_key}, error));
  EXPECT_FALSE(error.empty());
  error.clear();
  EXPECT_FALSE(quic::ServerCredentials::from_files("/nonexistent.pem", "/nonexistent.key", error));
  EXPECT_NE(error.find("/nonexistent.pem"), std::string::npos);
}

TEST(QuicTls, GarbageClientHelloFailsWithAnAlert) {
  auto pem = quic::generate_self_signed_certificate("localhost");
  ASSERT_TRUE(pem);
  std::string error;
  auto credentials = quic::ServerCredentials::from_pem(*pem, error);
  ASSERT_TRUE(credentials);
  int sent = 0;
  quic::TlsServerSession::Callbacks callbacks;
  callbacks.send_crypto = [&](quic::EncryptionLevel, quic::ByteSpan) { ++sent; };
  quic::TlsServerSession session(credentials, {}, callbacks);
  const quic::Bytes garbage = {0x01, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef};
  EXPECT_FALSE(session.provide_data(quic::EncryptionLevel::Initial, garbage));
  EXPECT_FALSE(session.handshake_complete());
  EXPECT_NE(session.alert(), 0);
  EXPECT_EQ(sent, 0);
}
