// The example configs of deploy/examples/ load with the real loader and mean what their comments
// say.
#include <gtest/gtest.h>

#include "iroh/config.hpp"

namespace {

std::filesystem::path example(const char* name) {
  return std::filesystem::path(IROH_SOURCE_DIR) / "deploy" / "examples" / name;
}

TEST(DeployExamples, RelayOnly) {
  auto c = iroh::config::load_file(example("relay-only.yaml"));
  EXPECT_TRUE(c.enable_relay);
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->cert_mode, iroh::config::CertMode::LetsEncrypt);
  EXPECT_TRUE(c.enable_quic_addr_discovery);
  EXPECT_TRUE(c.enable_metrics);
  EXPECT_FALSE(c.pkarr.enabled);
  EXPECT_FALSE(c.dns.enabled);
  EXPECT_FALSE(c.stun.enabled);
}

TEST(DeployExamples, LookupOnly) {
  auto c = iroh::config::load_file(example("lookup-only.yaml"));
  EXPECT_FALSE(c.tls);
  EXPECT_EQ(c.access.mode, iroh::config::AccessMode::Allowlist);
  EXPECT_TRUE(c.access.endpoints.empty());  // nobody may relay
  EXPECT_TRUE(c.pkarr.enabled);
  EXPECT_EQ(c.pkarr.put_rate_limit, iroh::config::PutRateLimitMode::Smart);
  EXPECT_TRUE(c.dns.enabled);
  EXPECT_EQ(c.dns.origins, std::vector<std::string>{"dns.example.com."});
  EXPECT_FALSE(c.enable_quic_addr_discovery);
  EXPECT_EQ(c.metrics_bind_addr.to_string(), "127.0.0.1:9090");
}

TEST(DeployExamples, AllInOne) {
  auto c = iroh::config::load_file(example("all-in-one.yaml"));
  EXPECT_TRUE(c.enable_relay);
  ASSERT_TRUE(c.tls);
  EXPECT_TRUE(c.enable_quic_addr_discovery);
  EXPECT_TRUE(c.stun.enabled);
  EXPECT_TRUE(c.pkarr.enabled);
  EXPECT_TRUE(c.dns.enabled);
  EXPECT_TRUE(c.enable_metrics);
}

TEST(DeployExamples, PackagedDefaultConfigLoads) {
  // config/relay.example.yaml is installed as /etc/iroh-relay/relay.yaml by the .deb.
  auto c = iroh::config::load_file(std::filesystem::path(IROH_SOURCE_DIR) / "config" /
                                   "relay.example.yaml");
  EXPECT_TRUE(c.enable_relay);
}

TEST(DeployExamples, ComposePostgresNodesShareOneDatabase) {
  // docker/compose.postgres.yaml (issue 15): two lookup nodes that differ only in their ports and
  // application_name, on the same database, without relaying.
  const auto dir = std::filesystem::path(IROH_SOURCE_DIR) / "docker";
  auto a = iroh::config::load_file(dir / "lookup-a.yaml");
  auto b = iroh::config::load_file(dir / "lookup-b.yaml");
  for (const auto* c : {&a, &b}) {
    EXPECT_EQ(c->zone_store.backend, iroh::config::ZoneStoreBackend::Postgres);
    EXPECT_TRUE(c->pkarr.enabled);
    EXPECT_TRUE(c->dns.enabled);
    EXPECT_EQ(c->access.mode, iroh::config::AccessMode::Allowlist);
    EXPECT_TRUE(c->access.endpoints.empty());
    EXPECT_TRUE(c->zone_store.postgres_password_file.empty());  // PGPASSWORD from compose
  }
  EXPECT_EQ(a.zone_store.postgres_url,
            "postgresql://iroh@127.0.0.1:5432/iroh?application_name=iroh-relay-a");
  EXPECT_EQ(b.zone_store.postgres_url,
            "postgresql://iroh@127.0.0.1:5432/iroh?application_name=iroh-relay-b");
  EXPECT_NE(a.http_bind_addr.to_string(), b.http_bind_addr.to_string());
  EXPECT_NE(a.dns.bind_addr.to_string(), b.dns.bind_addr.to_string());
  EXPECT_EQ(a.dns.origins, b.dns.origins);
}

}  // namespace
