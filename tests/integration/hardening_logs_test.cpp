// Relay logs (issue 7): the JSON format is one object per line, and no secret (shared token,
// callout bearer, capability token, key seed) ever reaches a log line.
#include <gtest/gtest.h>
#include <sodium.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "integration/hardening_fixture.hpp"
#include "integration/log_capture.hpp"
#include "relay/capability_token.hpp"

namespace iroh::test {
namespace {

using relay::SecretKey;

// ---- logs -----------------------------------------------------------------------------------

TEST(HardeningLogs, JsonFormatIsOneObjectPerLine) {
  LogCapture capture;
  log::set_format(log::Format::Json);
  log::info("quote \" backslash \\ newline \n done");
  auto lines = capture.lines();
  ASSERT_EQ(lines.size(), 1u);
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "quote \" backslash \\ newline \n done");
  EXPECT_EQ(j["ts"].get<std::string>().size(), 24u);
  EXPECT_TRUE(log::set_format("text"));
  EXPECT_FALSE(log::set_format("xml"));
}

// A reload checks the new log_level without touching the running one: other threads keep logging
// at the old level while the new file is checked (issue 14).
TEST(HardeningLogs, ParsingALevelLeavesTheRunningLevelAlone) {
  log::set_level(log::Level::Warn);
  EXPECT_EQ(log::parse_level("DEBUG"), log::Level::Debug);
  EXPECT_EQ(log::parse_level("warning"), log::Level::Warn);
  EXPECT_EQ(log::parse_level("loud"), std::nullopt);
  EXPECT_EQ(log::level(), log::Level::Warn);
  EXPECT_FALSE(log::set_level("loud"));
  EXPECT_EQ(log::level(), log::Level::Warn);
  EXPECT_TRUE(log::set_level("info"));
  EXPECT_EQ(log::level(), log::Level::Info);
}

TEST(HardeningLogs, SecretsNeverLogged) {
  LogCapture capture;
  log::set_level(log::Level::Trace);
  const std::string shared = "shared-token-s3cr3t-value";
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::SharedToken;
  cfg.access.tokens = {shared};
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  connected(ep, SecretKey::generate(), bearer(shared));
  RelayTestClient wrong;
  EXPECT_EQ(try_connect(wrong, ep, SecretKey::generate(), bearer("wrong-token-guess-value")),
            deny("not authorized"));

  CalloutServer server;
  auto callout = callout_config(server.url());
  ASSERT_TRUE(d->reload(callout));
  RelayTestClient c2;
  EXPECT_EQ(try_connect(c2, ep, SecretKey::generate()), deny("not authorized"));

  auto issuer = SecretKey::generate();
  auto cap = test_config();
  cap.access.mode = config::AccessMode::Capability;
  cap.access.capability_issuers = {issuer.public_key()};
  ASSERT_TRUE(d->reload(cap));
  auto alice = SecretKey::generate();
  auto token = server::issue_capability_token(issuer, alice.public_key(), std::time(nullptr) + 60);
  connected(ep, alice, bearer(token));
  d->stop();

  auto lines = capture.lines();
  EXPECT_GT(lines.size(), 5u);  // connection lifecycle lines at debug
  char seed_hex[65];
  sodium_bin2hex(seed_hex, sizeof seed_hex, alice.seed.data(), alice.seed.size());
  for (const auto& line : lines) {
    for (const std::string& secret :
         {shared, std::string("wrong-token-guess-value"), std::string("callout-bearer-secret"),
          token, std::string(seed_hex)}) {
      EXPECT_EQ(line.find(secret), std::string::npos) << line;
    }
  }
}

}  // namespace
}  // namespace iroh::test
