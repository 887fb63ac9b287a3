// The daemon's configuration: YAML file -> plain structs, validated at load time.
// Keys mirror iroh-relay's TOML keys (spec relay.md §9) with the same defaults; sections for the
// other services (STUN, address lookup) follow the same style. Every error names file, line, key
// and reason.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "iroh/relay_proto.hpp"

namespace iroh::config {

// "host:port", "[v6]:port" or "*:port". host is kept as text ("::", "127.0.0.1", "localhost").
struct SocketAddr {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;  // "[::]:3340", "127.0.0.1:80"
  static std::optional<SocketAddr> parse(std::string_view text);
  friend bool operator==(const SocketAddr&, const SocketAddr&) = default;
};

// The QUIC address discovery port of iroh-relay (spec relay.md §9 quic_bind_addr default), the one
// definition: the TLS defaults below, the TOML readers and --dev without a tls section use it.
inline constexpr std::uint16_t kDefaultQuicPort = 7842;

// SelfSigned: a certificate generated at start for hostname[0] (and localhost, 127.0.0.1, ::1);
// iroh-dns-server's [https] cert_mode = "self_signed" (--dns-config), not a YAML value.
enum class CertMode { Manual, Reloading, LetsEncrypt, SelfSigned };
// tls.acme_challenge: HTTP-01 on http_bind_addr (port 80), or TLS-ALPN-01 (RFC 8737) on the
// HTTPS listener itself (port 443 only; what the reference iroh-relay uses).
enum class AcmeChallenge { Http01, TlsAlpn01 };

struct TlsConfig {
  CertMode cert_mode = CertMode::Manual;
  SocketAddr https_bind_addr{"::", 443};     // default: host of http_bind_addr : 443
  SocketAddr quic_bind_addr{"::", kDefaultQuicPort};  // default: host of https_bind_addr
  std::vector<std::string> hostname;         // ACME domains
  std::filesystem::path cert_dir = ".";
  std::filesystem::path manual_cert_path = "./default.crt";  // default <cert_dir>/default.crt
  std::filesystem::path manual_key_path = "./default.key";   // default <cert_dir>/default.key
  bool prod_tls = true;
  std::string contact;
  bool dangerous_http_only = false;          // set by --dev
  // ACME (cert_mode LetsEncrypt). Default: Let's Encrypt's production or staging directory, by
  // prod_tls. acme_ca_file: PEM bundle trusted for the ACME server's HTTPS (empty = system store).
  std::string acme_directory_url = "https://acme-v02.api.letsencrypt.org/directory";
  std::filesystem::path acme_ca_file;
  AcmeChallenge acme_challenge = AcmeChallenge::Http01;
};

struct ClientRxLimit {
  std::uint32_t bytes_per_second = 0;
  std::uint32_t max_burst_bytes = 0;         // default bytes_per_second / 10
};

inline constexpr double kDefaultQadNewConnRate = 500;
inline constexpr double kDefaultQadPerSourceRate = 10;

struct Limits {
  std::optional<double> accept_conn_limit;   // new connections per second
  std::optional<std::size_t> accept_conn_burst;
  std::optional<ClientRxLimit> client_rx;    // limits.client.rx (§6.8)
  std::size_t max_connections = 65536;       // concurrent TCP connections on the relay listeners
  std::optional<std::size_t> max_connections_per_ip;  // concurrent relay-listener connections per IP
  std::chrono::milliseconds handshake_timeout{30000};  // TLS + HTTP + relay handshake
  std::chrono::milliseconds write_timeout{2000};       // per frame write (SERVER_WRITE_TIMEOUT)
  std::size_t client_queue_capacity = 512;   // per-client datagram queue, in frames
  // Per-client datagram queue, in bytes. 256 KiB: about 210 datagrams of 1,200 bytes (iroh's
  // relay queues up to 512 frames, derper 32 packets). A flood keeps a queue between half and
  // three quarters of it (the throttle mark, relay/send_queue.hpp). With 1 MiB, four flooded
  // receivers held ~3 MiB of datagrams, each written and read back out of cache: 256 KiB cost
  // 8 % less CPU per datagram over TLS, 5 % (batches) and 16 % (single datagrams) less in plain
  // TCP (issue 13, relay_openloop --client-queue-bytes, medians of 6 alternations, measured
  // before the throttle mark). Also less delay ahead of a slow client: 1 MiB is 130 ms at 8 MB/s.
  std::size_t client_queue_bytes = 256 * 1024;
  std::size_t total_queue_bytes = 64 << 20;  // datagram bytes queued over all clients
  // TCP_NOTSENT_LOWAT on each relay client's socket (issue 13): how many bytes the kernel keeps
  // queued beyond what is in flight. Without it Linux autotunes the send buffer to megabytes, and
  // a slow client's datagrams wait there, out of reach of the relay's queue (its byte cap, its
  // drop counting, the priority lane that puts Pong/Health/Restarting ahead of datagrams).
  // 128 KiB by default: a flooded client reading 2 / 8 / 32 MB/s got the relay's Pong to its
  // Ping after 1,675 / 440 / 125 ms (p50) with the kernel's default and after 103 / 26 / 8 ms
  // with 128 KiB, at the same delivered rate (loadtest/relay_openloop --phases=slow); a client
  // whose Pongs wait seconds takes the relay for dead. 0 = the kernel's default (no limit).
  std::size_t tcp_notsent_lowat = 128 * 1024;
  // Not YAML keys (issue 19): fixed defaults documented in the README; tests lower them.
  // Concurrent connections from one IP that have not authenticated yet (TLS, HTTP, relay
  // handshake); more are closed at accept.
  std::size_t max_unauthenticated_per_ip = 128;
  // A client whose socket took nothing for this long is not draining (issue 13): it no longer
  // throttles the senders whose datagrams fill its queue, so a client that never reads cannot
  // slow the senders that also talk to others; their datagrams to it are dropped. Tests raise it.
  std::chrono::milliseconds stalled_write_after{50};
  // Bytes reserved for every connection in its handshake, out of pre_auth_bytes: the HTTP header
  // limit (16 KiB), the 1 KiB handshake message cap and read slack.
  static constexpr std::size_t kPreAuthReserveBytes = 32 * 1024;
  // Daemon-wide budget of pre-auth buffers; connections over it are closed at accept.
  std::size_t pre_auth_bytes = std::size_t{64} << 20;
  // New QAD connections per second, all sources together (nullopt = unlimited, written as 0).
  // The default keeps handshake CPU near half a core (issue 19 item 9, measured in
  // relay.example.yaml).
  std::optional<double> qad_new_conn_rate = kDefaultQadNewConnRate;
  std::optional<std::size_t> qad_new_conn_burst;  // default: max(1, qad_new_conn_rate)
  // New QAD connections per second from one source (IPv4 address, IPv6 /64); nullopt = unlimited.
  std::optional<double> qad_per_source_rate = kDefaultQadPerSourceRate;
  std::optional<std::size_t> qad_per_source_burst;  // default: max(1, 2 * qad_per_source_rate)
};

enum class AccessMode { Everyone, Allowlist, Denylist, SharedToken, Http, Capability };

struct AccessConfig {
  AccessMode mode = AccessMode::Everyone;
  std::vector<relay::EndpointId> endpoints;  // allowlist / denylist
  std::vector<std::string> tokens;           // shared_token
  std::string http_url;                      // http
  std::string http_bearer_token;             // http (optional)
  std::chrono::milliseconds http_timeout{5000};       // http: whole callout (connect .. body)
  std::chrono::seconds http_cache_ttl{60};            // http: decision cache TTL (0 = no cache)
  std::size_t http_cache_capacity = 10000;            // http: cached decisions (0 = no cache)
  bool http_fail_open = false;                        // http: admit when the callout fails
  std::vector<relay::EndpointId> capability_issuers;  // capability: Ed25519 issuer public keys
};

struct StunConfig {
  bool enabled = false;
  SocketAddr bind_addr{"::", 3478};          // default: host of http_bind_addr : 3478
};

// ---- address lookup (spec address-lookup.md §4, §5, §7, §8) -------------------------------------

// pkarr_put_rate_limit: disabled | simple (key = TCP peer IP) | smart (behind a proxy in
// trusted_proxies: the right-most X-Forwarded-For address that is not a trusted proxy, then
// X-Real-IP, then Forwarded; the peer IP when the peer is not a trusted proxy).
enum class PutRateLimitMode { Disabled, Simple, Smart };

// An address prefix of trusted_proxies: "10.0.0.0/8", "2001:db8::/32", or one address. IPv4 is
// held as IPv4-mapped IPv6 (prefix + 96) so that one comparison covers both families.
struct IpNetwork {
  std::array<std::uint8_t, 16> address{};  // host bits cleared
  unsigned prefix_len = 128;               // 0..128, in IPv6 terms
  std::string text;                        // as written in the config
  static std::optional<IpNetwork> parse(std::string_view text);
  // `bytes`: an IPv6 address (IPv4 as IPv4-mapped).
  bool contains(const std::array<std::uint8_t, 16>& bytes) const;
};

// zone_store.backend (issue 15): one SQLite file, or a PostgreSQL database shared by N daemons.
enum class ZoneStoreBackend { Sqlite, Postgres };

// zone_store: the one store shared by the pkarr HTTP API and the DNS server.
struct ZoneStoreConfig {
  // Always set after loading: zone_store.path, or <data_dir>/pkarr.sqlite3 when empty/absent.
  std::filesystem::path path;
  std::chrono::seconds eviction{604800};       // packets whose signed timestamp is older go
  std::chrono::seconds eviction_interval{10};  // how often the eviction task runs
  std::size_t cache_capacity = 65536;          // LRU entries in front of SQLite (0 = no cache)
  // At this many packets PUTs of new keys get 507; updates of stored keys still work. 0 = none.
  std::size_t max_records = 1'000'000;
  ZoneStoreBackend backend = ZoneStoreBackend::Sqlite;
  // backend postgres: a libpq URI or conninfo (required); the password comes from
  // postgres_password_file (read at connect, never logged), else PGPASSWORD / PGPASSFILE.
  std::string postgres_url{};
  std::filesystem::path postgres_password_file{};  // empty = none
};

// enable_pkarr + the pkarr_put_* keys: PUT/GET /pkarr/{z32} on the relay's HTTP(S) listeners.
struct PkarrConfig {
  bool enabled = false;                                         // true with --dev
  PutRateLimitMode put_rate_limit = PutRateLimitMode::Simple;  // Disabled with --dev
  std::uint32_t put_burst = 2;                                  // GCRA burst per client IP
  double put_refill_secs = 4.0;                                 // one token per this many seconds
  // Issue 19 item 4. trusted_proxies: peers whose forwarding headers `smart` believes.
  std::vector<IpNetwork> trusted_proxies{*IpNetwork::parse("127.0.0.0/8"),
                                         *IpNetwork::parse("::1")};
  unsigned put_rate_limit_ipv6_prefix = 64;  // IPv6 clients share a bucket per this prefix
  // PUTs of packets dated more than this ahead of the server's clock get 400.
  std::chrono::seconds max_future_skew{3600};
};

// enable_dns + the dns section: authoritative DNS over UDP and TCP, DoH at /dns-query.
struct DnsConfig {
  bool enabled = false;  // true with --dev
  // Default: host of http_bind_addr, port 53 (5300 with --dev), i.e. [::]:53 / [::]:5300.
  SocketAddr bind_addr{"::", 53};
  // Zone apexes, lower-case FQDNs with a trailing dot (added when missing), tried in order.
  // --dev: ["irohdns.example.", "."]
  std::vector<std::string> origins{"."};
  // Zone-file syntax "mname rname serial refresh retry expire minimum" (checked at load time).
  std::string default_soa = "ns1.example. hostmaster.example. 0 10800 3600 604800 3600";
  std::optional<std::string> rr_a;     // dotted IPv4, checked; --dev: 127.0.0.1
  std::optional<std::string> rr_aaaa;  // IPv6 text, checked
  std::optional<std::string> rr_ns;    // FQDN with trailing dot; --dev: ns1.irohdns.example.
  std::chrono::milliseconds tcp_idle_timeout{1000};
  std::size_t max_tcp_connections = 1024;
  // Largest UDP response (bigger ones are cut at a whole record with TC=1), whatever EDNS size the
  // query asks for: 1232, like knotd (DNS flag day 2020), keeps answers unfragmented and caps
  // amplification.
  std::size_t udp_max_payload = 1232;
  // Response-rate limiting of UDP answers per source prefix (knotd's RRL): `rrl_rate` answers per
  // second per prefix (0 = off); of the answers over the rate every `rrl_slip`-th is sent as a
  // truncated reply (TC=1, so a real client retries over TCP) and the others are dropped
  // (0 = drop all). `rrl_table_size` buckets at most (prefixes hashing to one bucket share it).
  std::uint32_t rrl_rate = 50;
  std::uint32_t rrl_slip = 2;
  unsigned rrl_ipv4_prefix = 24;
  unsigned rrl_ipv6_prefix = 56;
  std::size_t rrl_table_size = 65536;
};

// lookup_listeners (issue 17, iroh-dns-server's [http] / [https]): address lookup (pkarr, DoH,
// /healthz) on listeners of its own beside the relay's, the HTTPS one with its own certificate.
struct LookupListeners {
  std::optional<SocketAddr> http_bind_addr;  // plain HTTP
  // https_bind_addr, hostname (the domains), cert_mode Manual (manual_cert_path / key_path),
  // SelfSigned or LetsEncrypt (ACME fields as in the relay's tls section); quic_bind_addr unused.
  std::optional<TlsConfig> https;
  bool any() const { return http_bind_addr.has_value() || https.has_value(); }
};

// Relay mesh (issue 16, docs/mesh.md): one relay URL served by several nodes.
struct MeshPeer {
  std::string url;  // as written: http(s)://host[:port][/...]
  bool tls = false;
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 80;
};

struct MeshConfig {
  std::vector<MeshPeer> peers;  // empty = no mesh (exactly the single-node relay)
  std::filesystem::path psk_file;
  // The key itself, read at load time (surrounding whitespace trimmed); at least 32 bytes.
  std::string psk;
  // How many endpoints one peer may announce (docs/mesh.md §5.2): a peer is trusted with ids,
  // not with this node's memory. Present for a further id is dropped and counted.
  std::uint64_t max_remote_endpoints = 1'000'000;
};

// `text` as a mesh peer URL, or nullopt with `error` set.
std::optional<MeshPeer> parse_mesh_peer(std::string_view text, std::string& error);

struct Config {
  std::filesystem::path source;              // file the config came from ("<dev default>" if none)
  bool dev = false;
  bool enable_relay = true;
  SocketAddr http_bind_addr{"::", 80};       // [::]:3340 with --dev
  std::optional<TlsConfig> tls;
  bool enable_quic_addr_discovery = false;  // true with --dev (self-signed cert without tls)
  Limits limits;
  bool enable_metrics = true;
  SocketAddr metrics_bind_addr{"::", 9090};  // default: host of http_bind_addr : 9090
  std::size_t key_cache_capacity = 1048576;
  // Relay data-plane workers, each an event loop on its own thread (issue 13); 0 = one per CPU
  // this process may run on. Not reloadable.
  unsigned relay_threads = 0;
  AccessConfig access;
  StunConfig stun;
  PkarrConfig pkarr;                         // enable_pkarr, pkarr_put_*
  ZoneStoreConfig zone_store{"/var/lib/iroh-relay/pkarr.sqlite3"};
  DnsConfig dns;                             // enable_dns, dns
  // With tls: serve address lookup (pkarr, DoH) on the plain HTTP listener as well, which
  // otherwise has only the captive portal and ACME. Set by iroh-dns-server's [http] beside its
  // [https] (--dns-config, docs/migrating.md); not a YAML key.
  bool lookup_on_http_listener = false;
  LookupListeners lookup_listeners;
  std::filesystem::path data_dir = "/var/lib/iroh-relay";
  std::string log_level = "info";            // trace, debug, info, warn, error
  std::string log_format = "text";           // text, json
  std::chrono::seconds shutdown_grace{10};   // shutdown_grace_secs: SIGTERM drain budget
  MeshConfig mesh;                           // mesh.peers, mesh.psk_file (issue 16)
};

// How `next` admits clients `current` refused, for the WARN on reload ("allowlist (2 ids) ->
// everyone"); nullopt when `next` admits no one `current` refused (the same or narrower).
std::optional<std::string> access_widening(const AccessConfig& current, const AccessConfig& next);
// "everyone", "allowlist (3 ids)", "shared_token (1 token)", "http (https://...)", ...
std::string describe_access(const AccessConfig& access);

// Thrown by load_file / parse_yaml. what() = "<file>:<line>: <key>: <reason>".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, std::string key, std::string reason);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
  std::string reason_;
};

// The embedded dev default (`iroh-relay --dev`): plain HTTP on [::]:3340, every landed service on,
// state under ./data (or $IROH_RELAY_DATA_DIR).
Config dev_default();

// Loads and validates a YAML file. `dev` applies --dev on top (plain HTTP on http_bind_addr,
// default [::]:3340). Unknown keys, wrong types, unreadable cert files -> ConfigError. A file with
// no document (empty, whitespace, comments only, or a bare null) is an error "<file>: empty
// document": a truncated file must not turn into the defaults (access: everyone) on reload.
Config load_file(const std::filesystem::path& path, bool dev = false);
// Same from text (for tests); `name` is used as the file name in errors. Empty text gives the
// defaults here (dev_default() and the tests rely on it); load_file refuses it.
Config parse_yaml(std::string_view text, const std::string& name, bool dev = false);

// ---- the reference programs' own TOML files (docs/migrating.md) --------------------------------

// iroh-relay's TOML config (its binary's keys and defaults, env overrides IROH_RELAY_ACME_URL,
// IROH_RELAY_ACME_CA, IROH_RELAY_ACCESS_TOKEN, IROH_RELAY_HTTP_BEARER_TOKEN). Keys iroh-relay does
// not have -> ConfigError (this daemon's other settings are YAML). load_file() calls this for a
// file whose name ends in .toml.
Config parse_relay_toml(std::string_view text, const std::string& name, bool dev = false);

// iroh-dns-server's TOML config applied to `cfg`: address lookup on (pkarr, DNS, DoH), with
// [dns], [zone_store], pkarr_put_rate_limit, data_dir (else $IROH_DNS_DATA_DIR, else
// ~/.local/share/iroh-dns). `relay_file`: cfg came from a --config file, whose listeners stay;
// an [http]/[https]/[metrics] listener that is not one of them is refused (lookup runs on the
// relay's listeners). Without a relay file the DNS server's listeners become the daemon's.
void apply_dns_toml(std::string_view text, const std::string& name, Config& cfg, bool relay_file);

// The daemon's config from `--config relay` (YAML, or TOML by the .toml extension) and/or
// `--dns-config dns` (iroh-dns-server's TOML); an empty path = not given. Neither: the built-in
// defaults (dev_default() with `dev`). Only --dns-config: a lookup server like iroh-dns-server,
// whose relay endpoint admits no one (access: an empty allowlist).
Config load_files(const std::filesystem::path& relay, const std::filesystem::path& dns,
                  bool dev = false);

}  // namespace iroh::config
