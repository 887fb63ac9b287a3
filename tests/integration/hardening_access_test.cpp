// Relay access control (issue 7, spec relay.md §4.4): capability tokens (format, expiry,
// issuers) and the HTTP callout (decisions, cache, timeout, fail closed or open).
#include <gtest/gtest.h>
#include <sodium.h>

#include <ctime>

#include "integration/hardening_fixture.hpp"
#include "relay/access_control.hpp"
#include "relay/capability_token.hpp"

namespace iroh::test {
namespace {

using relay::EndpointId;
using relay::SecretKey;

TEST(CapabilityToken, RoundTripAndRejections) {
  ASSERT_GE(sodium_init(), 0);
  auto issuer = SecretKey::generate(), stranger = SecretKey::generate();
  auto ep = SecretKey::generate().public_key(), other = SecretKey::generate().public_key();
  std::vector<EndpointId> issuers{SecretKey::generate().public_key(), issuer.public_key()};
  auto token = server::issue_capability_token(issuer, ep, 2000, "alice's laptop");
  auto ok = server::verify_capability_token(token, issuers, ep, 1999);
  ASSERT_TRUE(std::holds_alternative<server::CapabilityToken>(ok));
  EXPECT_EQ(std::get<server::CapabilityToken>(ok).note, "alice's laptop");
  EXPECT_EQ(std::get<server::CapabilityToken>(ok).expires_unix, 2000u);
  using E = server::CapabilityError;
  auto err = [&](std::string_view t, const EndpointId& who, std::uint64_t now) {
    auto r = server::verify_capability_token(t, issuers, who, now);
    return std::holds_alternative<E>(r) ? std::get<E>(r) : E(-1);
  };
  EXPECT_EQ(err(token, ep, 2000), E::Expired);
  EXPECT_EQ(err(token, other, 10), E::WrongEndpoint);
  EXPECT_EQ(err(server::issue_capability_token(stranger, ep, 2000), ep, 10), E::UnknownIssuer);
  std::string flipped = token;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(err(flipped, ep, 10), E::UnknownIssuer);
  EXPECT_EQ(err("", ep, 10), E::Malformed);
  EXPECT_EQ(err("not base64!", ep, 10), E::Malformed);
  EXPECT_EQ(err(token.substr(0, 40), ep, 10), E::Malformed);
  EXPECT_EQ(err(std::string(4000, 'A'), ep, 10), E::Malformed);
  EXPECT_THROW(server::issue_capability_token(issuer, ep, 1, std::string(65, 'x')),
               std::invalid_argument);
}

TEST(CapabilityToken, Durations) {
  EXPECT_EQ(server::parse_duration_seconds("24h"), 86400u);
  EXPECT_EQ(server::parse_duration_seconds("30m"), 1800u);
  EXPECT_EQ(server::parse_duration_seconds("90s"), 90u);
  EXPECT_EQ(server::parse_duration_seconds("7d"), 7u * 86400);
  EXPECT_EQ(server::parse_duration_seconds("3600"), 3600u);
  for (const char* bad : {"", "h", "0h", "-1h", "1.5h", "1w", "99999999999999d"})
    EXPECT_FALSE(server::parse_duration_seconds(bad)) << bad;
}

TEST(HardeningAccess, CapabilityTokensAdmitAndDenyWithReasons) {
  auto issuer = SecretKey::generate();
  auto cfg = test_config();
  cfg.access.mode = config::AccessMode::Capability;
  cfg.access.capability_issuers = {issuer.public_key()};
  auto d = start_daemon(cfg);
  auto ep = *d->http_endpoint();
  auto alice = SecretKey::generate(), bob = SecretKey::generate();
  auto now = std::uint64_t(std::time(nullptr));
  auto alice_token = server::issue_capability_token(issuer, alice.public_key(), now + 3600);
  auto a = connected(ep, alice, bearer(alice_token));
  // ?token= works like for shared tokens.
  connected(ep, alice, UpgradeOptions{}.with_target("/relay?token=" + alice_token));
  struct Case {
    UpgradeOptions opts;
    std::string reason;
  };
  std::vector<Case> cases{
      {UpgradeOptions{}, "capability token missing"},
      {bearer(alice_token), "capability token issued for another endpoint"},
      {bearer(server::issue_capability_token(issuer, bob.public_key(), now - 1)),
       "capability token expired"},
      {bearer(server::issue_capability_token(SecretKey::generate(), bob.public_key(), now + 60)),
       "capability token not signed by a trusted issuer"},
      {bearer("garbage"), "malformed capability token"},
  };
  for (const auto& c : cases) {
    RelayTestClient client;
    EXPECT_EQ(try_connect(client, ep, bob, c.opts), deny(c.reason)) << c.reason;
  }
  EXPECT_EQ(d->metrics().denied.load(), cases.size());
  EXPECT_TRUE(a->ping_barrier());
}

// The callout URL is parsed once (http/http_client.hpp) when the access control is built; what
// the config's shallow check lets through fails there, naming the key and the reason.
TEST(HardeningAccess, MalformedCalloutUrlIsAConfigError) {
  config::AccessConfig access;
  access.mode = config::AccessMode::Http;
  const std::pair<const char*, const char*> cases[] = {
      {"http://[::1/auth", "unterminated IPv6 address"},
      {"https://auth.test:99999/", "bad port"},
      {"http://:8080/", "missing host"},
      {"https://user@auth.test/", "user info is not supported"},
  };
  for (const auto& [url, reason] : cases) {
    access.http_url = url;
    try {
      server::AccessControl control(access, "relay.yaml");
      ADD_FAILURE() << url << " accepted";
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(e.key(), "access.http.url") << url;
      EXPECT_EQ(e.reason(), reason) << url;
    }
  }
  access.http_url = "HTTPS://auth.test:8443/check?x=1";
  EXPECT_NO_THROW(server::AccessControl(access, "relay.yaml"));
}

TEST(HardeningAccess, HttpCalloutDecidesAndCaches) {
  CalloutServer server;
  auto alice = SecretKey::generate(), bob = SecretKey::generate();
  server.allow(alice.public_key());
  auto d = start_daemon(callout_config(server.url()));
  auto ep = *d->http_endpoint();
  auto a = connected(ep, alice);
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(server.last_authorization(), "Bearer callout-bearer-secret");
  RelayTestClient b;
  EXPECT_EQ(try_connect(b, ep, bob), deny("not authorized"));
  EXPECT_EQ(server.requests(), 2);
  // Both decisions are cached: no further callouts.
  connected(ep, alice);
  RelayTestClient b2;
  EXPECT_EQ(try_connect(b2, ep, bob), deny("not authorized"));
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(d->metrics().denied.load(), 2u);
  EXPECT_TRUE(a->ping_barrier());
}

TEST(HardeningAccess, HttpCalloutFailureIsFailClosedOrOpen) {
  CalloutServer server;
  server.set_mode(CalloutServer::Mode::Hang);
  auto cfg = callout_config(server.url());
  cfg.access.http_cache_ttl = 0s;
  auto d = start_daemon(cfg);
  RelayTestClient c;
  // The timeout (500 ms) fires long before the handshake timeout (30 s).
  EXPECT_EQ(try_connect(c, *d->http_endpoint(), SecretKey::generate()),
            deny("access check unavailable"));
  server.set_mode(CalloutServer::Mode::Error500);
  RelayTestClient c2;
  EXPECT_EQ(try_connect(c2, *d->http_endpoint(), SecretKey::generate()),
            deny("access check unavailable"));

  // fail_open via reload: unreachable callout (nothing listens on port 1) admits.
  auto open = callout_config("http://127.0.0.1:1/auth");
  open.access.http_fail_open = true;
  ASSERT_TRUE(d->reload(open));
  connected(*d->http_endpoint(), SecretKey::generate());
}

}  // namespace
}  // namespace iroh::test
