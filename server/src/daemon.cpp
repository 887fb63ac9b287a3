#include "iroh/server/daemon.hpp"

#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "certificate.hpp"
#include "core/cpus.hpp"
#include "core/log.hpp"
#include "core/tls.hpp"
#include "http/status_page.hpp"
#include "relay/relay_service.hpp"

namespace iroh::server {

namespace asio = boost::asio;

namespace {

// How often the certificate files are stat()ed: two syscalls, bounded work.
constexpr auto kCertPollInterval = std::chrono::seconds(2);
// Restarting (relay.md §6.7) sent on SIGTERM: reconnect after 1 s, keep trying for 30 s.
constexpr auto kRestartReconnectIn = std::chrono::milliseconds(1000);
constexpr auto kRestartTryFor = std::chrono::milliseconds(30000);

// What identifies a version of a file for the poll: a rename-over changes the inode, an in-place
// write changes mtime or size.
struct FileStamp {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {true, st.st_dev, st.st_ino, st.st_size,
          std::int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

// Keys whose change needs a restart: the old value stays in force.
std::vector<std::string> restart_only_changes(const config::Config& a, const config::Config& b) {
  std::vector<std::string> out;
  if (a.enable_relay != b.enable_relay) out.push_back("enable_relay");
  if (!(a.http_bind_addr == b.http_bind_addr)) out.push_back("http_bind_addr");
  if (a.relay_threads != b.relay_threads) out.push_back("relay_threads");
  if (a.tls.has_value() != b.tls.has_value()) {
    out.push_back("tls");
  } else if (a.tls) {
    if (!(a.tls->https_bind_addr == b.tls->https_bind_addr)) out.push_back("tls.https_bind_addr");
    if (!(a.tls->quic_bind_addr == b.tls->quic_bind_addr)) out.push_back("tls.quic_bind_addr");
    if (a.tls->cert_mode != b.tls->cert_mode) out.push_back("tls.cert_mode");
  }
  if (a.enable_quic_addr_discovery != b.enable_quic_addr_discovery)
    out.push_back("enable_quic_addr_discovery");
  if (a.enable_metrics != b.enable_metrics) out.push_back("enable_metrics");
  if (!(a.metrics_bind_addr == b.metrics_bind_addr)) out.push_back("metrics_bind_addr");
  if (a.key_cache_capacity != b.key_cache_capacity) out.push_back("key_cache_capacity");
  if (a.stun.enabled != b.stun.enabled) out.push_back("enable_stun");
  if (!(a.stun.bind_addr == b.stun.bind_addr)) out.push_back("stun_bind_addr");
  if (a.data_dir != b.data_dir) out.push_back("data_dir");
  // Lookup listeners (issue 17): like the relay's, their sockets are bound once at start (and
  // shared by the relay workers' SO_REUSEPORT acceptors), so an address change waits for a
  // restart, as knotd's and derper's listen addresses do; their certificate reloads.
  const auto& la = a.lookup_listeners;
  const auto& lb = b.lookup_listeners;
  if (!(la.http_bind_addr == lb.http_bind_addr)) out.push_back("lookup_listeners.http_bind_addr");
  if (la.https.has_value() != lb.https.has_value()) {
    out.push_back("lookup_listeners.https");
  } else if (la.https) {
    if (!(la.https->https_bind_addr == lb.https->https_bind_addr))
      out.push_back("lookup_listeners.https.https_bind_addr");
    if (la.https->cert_mode != lb.https->cert_mode)
      out.push_back("lookup_listeners.https.cert_mode");
  }
  return out;
}

// A lookup listener certificate checked by a reload, to install once everything is applied.
struct LookupCertificate;

}  // namespace

struct Daemon::Impl {
  // Declared before io_context: handlers still queued when the io_context is destroyed refer to
  // them.
  config::Config config;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  RelayMetrics metrics;
  unsigned thread_count;
  asio::io_context ioc;
  // The certificate picked at construction (certificate.hpp), if a TLS service needs one.
  std::optional<PemPair> certificate;
  std::unique_ptr<RelayService> relay;
  // What the status routes show; the lookup store's part is filled in before start().
  std::shared_ptr<StatusPageSources> status = std::make_shared<StatusPageSources>();
  std::vector<std::unique_ptr<Service>> services;
  std::vector<std::thread> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;

  // Serialises reload(), reload_certificate() and the certificate poll.
  std::mutex reload_mutex;
  config::Config current;  // guarded by reload_mutex
  FileStamp cert_stamp;
  FileStamp key_stamp;
  FileStamp lookup_cert_stamp;  // lookup_listeners.https manual files
  FileStamp lookup_key_stamp;
  std::optional<asio::steady_timer> cert_poll;

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  bool started = false;
  bool stopped = false;

  Impl(config::Config c, unsigned threads)
      : config(std::move(c)),
        thread_count(threads ? threads : usable_cpus()),
        ioc(int(thread_count)),
        current(config) {}

  // Certificate files of the running config, if it has any to watch.
  std::optional<std::pair<std::string, std::string>> cert_files() const {
    if (!current.tls || current.tls->cert_mode == config::CertMode::LetsEncrypt ||
        current.tls->cert_mode == config::CertMode::SelfSigned) {
      return {};
    }
    return std::pair{current.tls->manual_cert_path.string(), current.tls->manual_key_path.string()};
  }
  // The same for the lookup HTTPS listener's own certificate (manual only).
  std::optional<std::pair<std::string, std::string>> lookup_cert_files() const {
    const auto& https = current.lookup_listeners.https;
    if (!https || https->cert_mode != config::CertMode::Manual) return {};
    return std::pair{https->manual_cert_path.string(), https->manual_key_path.string()};
  }

  // Steps of Daemon::reload (with reload_mutex held). reload_services: the relay and every
  // service take `next`, or, if one refuses, all go back to `old` (false).
  bool reload_services(const config::Config& old, const config::Config& next);
  void install_lookup_certificate(LookupCertificate lookup);
};

Daemon::Daemon(config::Config config, unsigned threads)
    : impl_(std::make_unique<Impl>(std::move(config), threads)) {
  auto& d = *impl_;
  const config::Config& c = d.config;
  const bool relay_tls = c.tls && !c.dev && !c.tls->dangerous_http_only && c.enable_relay;
  // Picked once here and shared: the relay's HTTPS listener now, QAD through certificate()
  // (wiring.cpp), ACME replaces it through reload_certificate().
  std::shared_ptr<asio::ssl::context> tls_context;
  if (c.tls && (relay_tls || c.enable_quic_addr_discovery)) {
    d.certificate = pick_certificate(*c.tls, c.source.string(), "tls");
    if (relay_tls) tls_context = make_https_context(*d.certificate);
  }
  std::shared_ptr<asio::ssl::context> lookup_tls_context;
  if (c.lookup_listeners.https) {
    lookup_tls_context = make_https_context(
        pick_certificate(*c.lookup_listeners.https, c.source.string(), "lookup_listeners.https"));
  }
  d.relay = std::make_unique<RelayService>(c, d.metrics, std::move(tls_context),
                                           std::move(lookup_tls_context));
  // The status routes, registered once: the relay listener and, when configured, the
  // lookup_listeners (issue 17: they answer /healthz like the relay listener).
  d.status->config = &d.config;
  d.status->relay = &d.metrics;
  d.status->registry = d.registry;
  add_status_routes(d.relay->router(), d.status);
  if (c.lookup_listeners.any()) add_status_routes(d.relay->lookup_router(), d.status);
}

void Daemon::set_lookup_status(std::function<std::optional<std::size_t>()> store_size,
                               std::function<std::string_view()> store_health) {
  impl_->status->lookup_store_size = std::move(store_size);
  impl_->status->lookup_store_health = std::move(store_health);
}

const std::optional<PemPair>& Daemon::certificate() const {
  return impl_->certificate;
}

Daemon::~Daemon() {
  stop();
  impl_->relay.reset();
  impl_->services.clear();
}

HttpRouter& Daemon::router() {
  return impl_->relay->router();
}

HttpRouter& Daemon::plain_router() {
  return impl_->relay->plain_router();
}

HttpRouter& Daemon::lookup_router() {
  return impl_->relay->lookup_router();
}

void Daemon::add_service(std::unique_ptr<Service> service) {
  impl_->services.push_back(std::move(service));
}

void Daemon::start() {
  auto& d = *impl_;
  if (d.started) return;
  d.started = true;
  d.work.emplace(d.ioc.get_executor());
  d.relay->start();
  for (auto& s : d.services) {
    log::info("starting ", s->name());
    s->start();
  }
  auto files = d.cert_files();
  auto lookup_files = d.lookup_cert_files();
  if (files) {
    d.cert_stamp = stamp_of(files->first);
    d.key_stamp = stamp_of(files->second);
  }
  if (lookup_files) {
    d.lookup_cert_stamp = stamp_of(lookup_files->first);
    d.lookup_key_stamp = stamp_of(lookup_files->second);
  }
  if (files || lookup_files) {
    d.cert_poll.emplace(d.ioc);
    asio::co_spawn(
        d.ioc,
        [this]() -> asio::awaitable<void> {
          auto& timer = *impl_->cert_poll;
          for (;;) {
            timer.expires_after(kCertPollInterval);
            boost::system::error_code ec;
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            poll_certificate_files();
          }
        },
        asio::detached);
  }
  for (unsigned i = 0; i < d.thread_count; ++i) {
    d.threads.emplace_back([&d] {
      for (;;) {
        try {
          d.ioc.run();
          return;
        } catch (const std::exception& e) {
          log::error("unhandled exception in event loop: ", e.what());
        }
      }
    });
  }
}

void Daemon::wait() {
  std::unique_lock lock(impl_->stop_mutex);
  impl_->stop_cv.wait(lock, [&] { return impl_->stop_requested; });
}

void Daemon::request_stop() {
  {
    std::lock_guard lock(impl_->stop_mutex);
    impl_->stop_requested = true;
  }
  impl_->stop_cv.notify_all();
}

void Daemon::stop() {
  auto& d = *impl_;
  if (!d.started || d.stopped) return;
  d.stopped = true;
  request_stop();
  if (d.cert_poll) asio::post(d.ioc, [&d] { d.cert_poll->cancel(); });
  for (auto it = d.services.rbegin(); it != d.services.rend(); ++it) (*it)->stop();
  d.relay->stop();
  // Let connections close on their own strands before the loop stops (bounded).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (d.relay->open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  d.relay->join();
  d.work.reset();
  d.ioc.stop();
  for (auto& t : d.threads) t.join();
  d.threads.clear();
}

std::optional<asio::ip::tcp::endpoint> Daemon::http_endpoint() const {
  return impl_->relay->http_endpoint();
}
std::optional<asio::ip::tcp::endpoint> Daemon::https_endpoint() const {
  return impl_->relay->https_endpoint();
}
std::optional<asio::ip::tcp::endpoint> Daemon::lookup_http_endpoint() const {
  return impl_->relay->lookup_http_endpoint();
}
std::optional<asio::ip::tcp::endpoint> Daemon::lookup_https_endpoint() const {
  return impl_->relay->lookup_https_endpoint();
}
const config::Config& Daemon::config() const {
  return impl_->config;
}
config::Config Daemon::current_config() const {
  std::lock_guard lock(impl_->reload_mutex);
  return impl_->current;
}

void Daemon::drain_and_stop(std::optional<std::chrono::milliseconds> grace) {
  auto& d = *impl_;
  if (!d.started || d.stopped) return;
  auto budget = grace ? *grace : std::chrono::milliseconds(current_config().shutdown_grace);
  auto deadline = std::chrono::steady_clock::now() + budget;
  log::info("draining: ", d.relay->client_count(), " relay clients get Restarting");
  d.relay->drain(kRestartReconnectIn, kRestartTryFor);
  while (d.relay->open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (auto left = d.relay->open_connections(); left > 0) {
    log::warn("grace period over: closing ", left, " connections");
  }
  stop();
}

// ---- reload steps (Daemon::reload runs them in this order) -----------------------------------

namespace {

void warn_restart_only_changes(const config::Config& old, const config::Config& next) {
  for (const auto& key : restart_only_changes(old, next)) {
    log::warn("reload: ", next.source.string(), ": ", key,
              " changed; it takes effect after a restart (keeping the running value)");
  }
}

// Parsed only: flipping the global level to test it would change what other threads log.
void validate_log_level(const config::Config& next) {
  if (!log::parse_level(next.log_level)) {
    throw config::ConfigError(next.source.string(), 0, "log_level", "unknown level");
  }
}

// The relay's manual certificate files, read and checked (a generated self-signed certificate
// and ACME have none to reread). Throws ConfigError naming tls.manual_cert_path.
std::optional<std::pair<std::string, std::string>> read_relay_certificate(
    const config::Config& old, const config::Config& next) {
  if (!next.tls || !old.tls || next.tls->cert_mode == config::CertMode::LetsEncrypt ||
      next.tls->cert_mode == config::CertMode::SelfSigned ||
      old.tls->cert_mode == config::CertMode::SelfSigned) {
    return std::nullopt;
  }
  try {
    std::pair<std::string, std::string> pem{read_text_file(next.tls->manual_cert_path.string()),
                                            read_text_file(next.tls->manual_key_path.string())};
    (void)make_server_tls_context(pem.first, pem.second);
    return pem;
  } catch (const std::exception& e) {
    throw config::ConfigError(next.source.string(), 0, "tls.manual_cert_path", e.what());
  }
}

// True when the lookup HTTPS listener exists before and after with the same cert_mode: a changed
// cert_mode waits for a restart (restart_only_changes).
bool lookup_listener_kept(const config::Config& old, const config::Config& next) {
  const auto& o = old.lookup_listeners.https;
  const auto& n = next.lookup_listeners.https;
  return o && n && o->cert_mode == n->cert_mode;
}

struct LookupCertificate {
  std::shared_ptr<asio::ssl::context> context;  // null: nothing to install
  std::string chain;                            // manual: for the log line's fingerprint
};

// The lookup HTTPS listener's own certificate (issue 17 item 2), checked before anything is
// applied like the relay's. letsencrypt is its ACME service's business (AcmeService::reload).
LookupCertificate prepare_lookup_certificate(const config::Config& old,
                                             const config::Config& next) {
  LookupCertificate out;
  if (!lookup_listener_kept(old, next)) return out;
  const auto& old_lookup = *old.lookup_listeners.https;
  const auto& next_lookup = *next.lookup_listeners.https;
  if (next_lookup.cert_mode == config::CertMode::Manual) {
    try {
      out.chain = read_text_file(next_lookup.manual_cert_path.string());
      out.context = make_https_context(
          PemPair{out.chain, read_text_file(next_lookup.manual_key_path.string())});
    } catch (const std::exception& e) {
      throw config::ConfigError(next.source.string(), 0, "lookup_listeners.https.manual_cert_path",
                                e.what());
    }
  } else if (next_lookup.cert_mode == config::CertMode::SelfSigned &&
             next_lookup.hostname != old_lookup.hostname) {
    out.context = make_https_context(
        pick_certificate(next_lookup, next.source.string(), "lookup_listeners.https"));
  }
  return out;
}

// The running config after a reload: only the reloadable parts change; restart-only keys keep
// their running values.
config::Config reloadable_parts(const config::Config& old, const config::Config& next) {
  config::Config applied = old;
  applied.source = next.source;
  applied.limits = next.limits;
  applied.access = next.access;
  applied.log_level = next.log_level;
  applied.log_format = next.log_format;
  applied.shutdown_grace = next.shutdown_grace;
  if (applied.tls && next.tls) {
    applied.tls->manual_cert_path = next.tls->manual_cert_path;
    applied.tls->manual_key_path = next.tls->manual_key_path;
  }
  if (lookup_listener_kept(old, next)) {
    // Domains, certificate files and ACME settings of the lookup listener; its address and
    // what the ACME service reads only at start (cert_dir, acme_ca_file) stay.
    const auto& old_lookup = *old.lookup_listeners.https;
    config::TlsConfig lookup = *next.lookup_listeners.https;
    lookup.https_bind_addr = old_lookup.https_bind_addr;
    lookup.cert_dir = old_lookup.cert_dir;
    lookup.acme_ca_file = old_lookup.acme_ca_file;
    applied.lookup_listeners.https = std::move(lookup);
  }
  return applied;
}

}  // namespace

bool Daemon::Impl::reload_services(const config::Config& old, const config::Config& next) {
  relay->apply(next);
  std::size_t reloaded = 0;
  try {
    for (; reloaded < services.size(); ++reloaded) services[reloaded]->reload(next);
    return true;
  } catch (const std::exception& e) {
    log::error("reload rejected by ", services[reloaded]->name(), ": ", e.what(),
               "; keeping the running config");
    relay->apply(old);
    for (std::size_t i = 0; i < reloaded; ++i) {
      try {
        services[i]->reload(old);
      } catch (const std::exception& e2) {
        log::error("restoring ", services[i]->name(), " failed: ", e2.what());
      }
    }
    return false;
  }
}

void Daemon::Impl::install_lookup_certificate(LookupCertificate lookup) {
  relay->set_lookup_tls_context(std::move(lookup.context));
  if (auto files = lookup_cert_files()) {
    lookup_cert_stamp = stamp_of(files->first);
    lookup_key_stamp = stamp_of(files->second);
  }
  if (lookup.chain.empty()) {
    log::info("lookup certificate regenerated (self-signed for the new domains)");
  } else {
    log::info("lookup certificate loaded (sha256 ", certificate_fingerprint(lookup.chain), ")");
  }
}

bool Daemon::reload(config::Config next) {
  auto& d = *impl_;
  std::lock_guard lock(d.reload_mutex);
  const config::Config old = d.current;
  try {
    warn_restart_only_changes(old, next);
    // Validate everything before applying anything.
    validate_log_level(next);
    const auto pem = read_relay_certificate(old, next);
    LookupCertificate lookup = prepare_lookup_certificate(old, next);
    if (!d.reload_services(old, next)) return false;
    d.current = reloadable_parts(old, next);
    log::set_level(next.log_level);
    log::set_format(next.log_format);
    if (pem) {
      apply_certificate_locked(pem->first, pem->second);
      d.cert_stamp = stamp_of(next.tls->manual_cert_path.string());
      d.key_stamp = stamp_of(next.tls->manual_key_path.string());
    }
    if (lookup.context) d.install_lookup_certificate(std::move(lookup));
    log::info("reloaded ", next.source.string());
    // Issue 19 item 1: a reload that admits clients the old config refused is applied, but said
    // loudly, so that an accidental widening (a truncated list, a wrong file) is noticed.
    if (auto widening = config::access_widening(old.access, next.access)) {
      log::warn("reload widens access: ", *widening, " (", next.source.string(), ")");
    }
    return true;
  } catch (const std::exception& e) {
    // ConfigError's text is "<file>:<line>: <key>: <reason>".
    log::error("reload rejected: ", e.what(), "; keeping the running config");
    return false;
  }
}

void Daemon::reload_certificate(const std::string& cert_chain_pem, const std::string& key_pem) {
  std::lock_guard lock(impl_->reload_mutex);
  apply_certificate_locked(cert_chain_pem, key_pem);
}

void Daemon::apply_certificate_locked(const std::string& chain, const std::string& key) {
  auto& d = *impl_;
  auto ctx = make_https_context(PemPair{chain, key});  // throws: nothing changed yet
  for (auto& s : d.services) s->reload_certificate(chain, key);
  d.relay->set_tls_context(std::move(ctx));
  log::info("certificate loaded (sha256 ", certificate_fingerprint(chain), ")");
}

void Daemon::reload_lookup_certificate(const std::string& chain, const std::string& key) {
  // With the TLS-ALPN-01 responder: the lookup listener answers its own validations.
  auto ctx = make_https_context(PemPair{chain, key});  // throws: nothing changed yet
  std::lock_guard lock(impl_->reload_mutex);
  impl_->relay->set_lookup_tls_context(std::move(ctx));
  log::info("lookup certificate loaded (sha256 ", certificate_fingerprint(chain), ")");
}

bool Daemon::reload_certificate_files() {
  auto& d = *impl_;
  std::lock_guard lock(d.reload_mutex);
  auto files = d.cert_files();
  if (!files) return false;
  d.cert_stamp = stamp_of(files->first);
  d.key_stamp = stamp_of(files->second);
  try {
    apply_certificate_locked(read_text_file(files->first), read_text_file(files->second));
    return true;
  } catch (const std::exception& e) {
    log::warn("certificate reload from ", files->first, " failed: ", e.what(),
              "; keeping the current certificate");
    return false;
  }
}

void Daemon::poll_certificate_files() {
  auto& d = *impl_;
  bool relay_changed = false;
  {
    std::lock_guard lock(d.reload_mutex);
    if (auto files = d.cert_files()) {
      relay_changed =
          !(stamp_of(files->first) == d.cert_stamp) || !(stamp_of(files->second) == d.key_stamp);
    }
    // The lookup listener's manual files are watched the same way (issue 17 item 2).
    if (auto files = d.lookup_cert_files()) {
      FileStamp cert = stamp_of(files->first), key = stamp_of(files->second);
      if (!(cert == d.lookup_cert_stamp) || !(key == d.lookup_key_stamp)) {
        d.lookup_cert_stamp = cert;
        d.lookup_key_stamp = key;
        try {
          std::string chain = read_text_file(files->first);
          d.relay->set_lookup_tls_context(
              make_https_context(PemPair{chain, read_text_file(files->second)}));
          log::info("lookup certificate loaded (sha256 ", certificate_fingerprint(chain), ")");
        } catch (const std::exception& e) {
          log::warn("lookup certificate reload from ", files->first, " failed: ", e.what(),
                    "; keeping the current certificate");
        }
      }
    }
  }
  if (relay_changed) reload_certificate_files();
}
asio::io_context& Daemon::io_context() {
  return impl_->ioc;
}
RelayMetrics& Daemon::metrics() {
  return impl_->metrics;
}
std::shared_ptr<prometheus::Registry> Daemon::metrics_registry() {
  return impl_->registry;
}
std::size_t Daemon::client_count() const {
  return impl_->relay->client_count();
}
RelayQueueDepth Daemon::relay_queue_depth() const {
  return impl_->relay->queue_depth();
}

}  // namespace iroh::server
