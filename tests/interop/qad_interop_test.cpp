// Real third-party QUIC clients against the QAD server: quic-go 0.29 (Debian) completes a
// handshake with ALPN /iroh-qad/0, ngtcp2's gtlsclient offering h3 is refused with the TLS
// no_application_protocol alert.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "qad/qad_test_server.hpp"

namespace {

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs a shell command (always under `timeout`), capturing stdout and stderr.
CommandResult run(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen(("timeout 20 " + command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) result.output += buffer.data();
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (std::getenv("QAD_TEST_VERBOSE") != nullptr) std::printf("%s\n", result.output.c_str());
  return result;
}

// Waits (bounded) until `predicate` holds.
template <class P>
bool eventually(P predicate) {
  for (int i = 0; i < 200; ++i) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

// A missing client is a failure, not a skip (scripts/setup installs everything the tests run);
// tests/interop/qad.cmake builds the Go client only when its Debian packages are there.
constexpr const char* kMissingGoClient =
    "quic-go client not built: Debian packages golang-go and "
    "golang-github-lucas-clemente-quic-go-dev (scripts/setup installs them; re-run cmake after)";

}  // namespace

TEST(QadInterop, QuicGoCompletesHandshake) {
  ASSERT_TRUE(std::filesystem::exists(QAD_GO_CLIENT)) << kMissingGoClient;
  qad_test::TestCertificate certificate;
  ASSERT_TRUE(certificate.ok());
  qad_test::QadTestServer server(certificate);
  const std::string addr = "127.0.0.1:" + std::to_string(server.port());
  // quic-go reports success once it can send its Finished; holding the connection a moment lets
  // the server complete its side (and send HANDSHAKE_DONE) before the client closes.
  const auto result = run(std::string(QAD_GO_CLIENT) + " -addr " + addr + " -ca " +
                          certificate.cert_path() + " -sni localhost -hold 300ms");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("handshake ok alpn=/iroh-qad/0"), std::string::npos)
      << result.output;
  EXPECT_TRUE(eventually([&] { return server.metrics().connections_closed.Value() == 1; }));
  EXPECT_EQ(server.metrics().incoming.Value(), 1u);
  EXPECT_EQ(server.metrics().connections.Value(), 1u);
  EXPECT_EQ(server.metrics().connections_errored.Value(), 0u);
  EXPECT_EQ(server.connection_count(), 0u);
}

TEST(QadInterop, QuicGoWrongAlpnIsRefused) {
  ASSERT_TRUE(std::filesystem::exists(QAD_GO_CLIENT)) << kMissingGoClient;
  qad_test::TestCertificate certificate;
  ASSERT_TRUE(certificate.ok());
  qad_test::QadTestServer server(certificate);
  const std::string addr = "127.0.0.1:" + std::to_string(server.port());
  const auto result = run(std::string(QAD_GO_CLIENT) + " -addr " + addr + " -ca " +
                          certificate.cert_path() + " -alpn h3");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("CRYPTO_ERROR (0x178)"), std::string::npos) << result.output;
  EXPECT_TRUE(eventually([&] { return server.metrics().incoming_error.Value() == 1; }));
}

TEST(QadInterop, NgtcpGtlsclientWithH3IsRefused) {
  const char* gtlsclient = "/usr/bin/gtlsclient";
  ASSERT_TRUE(std::filesystem::exists(gtlsclient))
      << "gtlsclient is not installed: Debian package ngtcp2-client (scripts/setup installs it)";
  qad_test::TestCertificate certificate;
  ASSERT_TRUE(certificate.ok());
  qad_test::QadTestServer server(certificate);
  // gtlsclient offers ALPN h3 (it is an HTTP/3 client); --exit-on-first-stream-close and a short
  // timeout keep it from lingering.
  const auto result = run(std::string(gtlsclient) +
                          " --timeout=3s --exit-on-all-streams-close "
                          "127.0.0.1 " +
                          std::to_string(server.port()));
  // 0x178 = CRYPTO_ERROR 0x100 + alert 120 (no_application_protocol).
  EXPECT_NE(result.output.find("0x178"), std::string::npos) << result.output;
  EXPECT_TRUE(eventually([&] { return server.metrics().incoming_error.Value() == 1; }));
  EXPECT_EQ(server.metrics().connections.Value(), 0u);
}
