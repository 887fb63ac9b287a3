#include "acme/acme_service.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <mutex>

#include "acme/acme_client.hpp"
#include "acme/certificate_store.hpp"
#include "acme/tls_alpn.hpp"
#include "core/log.hpp"
#include "core/time_text.hpp"

namespace iroh::server::acme {

namespace asio = boost::asio;
using Clock = std::chrono::system_clock;

namespace {

constexpr std::string_view kChallengePrefix = "/.well-known/acme-challenge/";
constexpr auto kFirstRetryDelay = std::chrono::seconds(30);
constexpr auto kMaxRetryDelay = std::chrono::hours(1);
// A CA handing out certificates that are due for renewal at once must not make us loop.
constexpr auto kMinIssuanceInterval = std::chrono::seconds(30);
// Long sleeps are cut into pieces so a changed clock or cache is noticed within a day.
constexpr auto kMaxSleep = std::chrono::hours(24);

std::string utc_text(Clock::time_point t) {
  return format_utc(t, kRfc3339);
}

}  // namespace

// HTTP-01 tokens being validated right now -> key authorization. Read by the plain listeners'
// threads, written by the ACME coroutines. Process-wide like TlsAlpnChallenges: the relay's and
// the lookup listener's orders share it, so the validator may reach either plain listener.
struct ChallengeTokens {
  std::mutex mutex;
  std::map<std::string, std::string, std::less<>> values;
};

namespace {

std::shared_ptr<ChallengeTokens> http01_tokens() {
  static const std::shared_ptr<ChallengeTokens> tokens = std::make_shared<ChallengeTokens>();
  return tokens;
}

// The TLS section whose certificate `target` keeps, or nullptr if it is not LetsEncrypt.
const config::TlsConfig* acme_section(const config::Config& config, AcmeTarget target) {
  const std::optional<config::TlsConfig>& tls =
      target == AcmeTarget::Relay ? config.tls : config.lookup_listeners.https;
  if (!tls || tls->cert_mode != config::CertMode::LetsEncrypt) return nullptr;
  return &*tls;
}

// GET /.well-known/acme-challenge/<token> (RFC 8555 §8.3).
void add_http01_route(HttpRouter& router) {
  std::shared_ptr<ChallengeTokens> tokens = http01_tokens();
  router.add(
      http::verb::get, std::string(kChallengePrefix),
      [tokens](const HttpRequest& req, const RequestInfo&) -> asio::awaitable<HttpResponse> {
        std::string_view token = target_path(req.target()).substr(kChallengePrefix.size());
        std::string value;
        {
          std::lock_guard lock(tokens->mutex);
          if (auto it = tokens->values.find(token); it != tokens->values.end()) value = it->second;
        }
        if (value.empty()) co_return make_response(req, http::status::not_found, "Not Found");
        log::debug("acme: served http-01 token to a validator");
        co_return make_response(req, http::status::ok, std::move(value),
                                "application/octet-stream");
      },
      HttpRouter::Match::Prefix);
}

}  // namespace

struct AcmeServiceState {
  AcmeService::Install install_certificate;
  AcmeTarget target;
  std::string who;  // log prefix: "acme" (relay) or "acme lookup"
  config::TlsConfig tls;
  CertificateStore store;
  std::shared_ptr<ChallengeTokens> tokens = http01_tokens();
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  std::atomic<bool> stopping{false};
  std::unique_ptr<HttpClient> http;
  std::string installed_serial;  // strand only
  bool recheck = false;          // strand only: a reload changed the settings mid-refresh
  prometheus::Counter* orders_ok;
  prometheus::Counter* orders_failed;
  prometheus::Gauge* not_after;

  AcmeServiceState(const ServiceContext& ctx, AcmeTarget tg, const config::TlsConfig& t,
                   AcmeService::Install install)
      : install_certificate(std::move(install)),
        target(tg),
        who(tg == AcmeTarget::Relay ? "acme" : "acme lookup"),
        tls(t),
        store(t.cert_dir),
        strand(asio::make_strand(ctx.io)),
        timer(strand) {
    auto& orders = prometheus::BuildCounter()
                       .Name("iroh_relay_acme_orders_total")
                       .Help("ACME certificate orders by result")
                       .Register(*ctx.registry);
    // Both services register the same families (prometheus-cpp merges them by name); the
    // certificate label tells their series apart.
    const std::string label = tg == AcmeTarget::Relay ? "relay" : "lookup";
    orders_ok = &orders.Add({{"result", "success"}, {"certificate", label}});
    orders_failed = &orders.Add({{"result", "failure"}, {"certificate", label}});
    not_after = &prometheus::BuildGauge()
                     .Name("iroh_relay_acme_certificate_not_after_seconds")
                     .Help("Expiry (Unix time) of the installed ACME certificate")
                     .Register(*ctx.registry)
                     .Add({{"certificate", label}});
  }

  void install(const PemPair& pair, const CertificateInfo& info) {
    install_certificate(pair);
    installed_serial = info.serial;
    not_after->Set(double(Clock::to_time_t(info.not_after)));
  }

  // One step of the loop: installs a usable cached certificate or orders a new one. Returns
  // when to look again.
  asio::awaitable<Clock::time_point> refresh() {
    std::optional<PemPair> cached = store.load_certificate();
    std::string why = "no cached certificate";
    if (cached) {
      if (!certificate_matches(cached->chain_pem, cached->key_pem, tls.hostname)) {
        why = "the cached certificate does not match its key or the hostnames";
      } else {
        CertificateInfo info = certificate_info(cached->chain_pem);
        Clock::time_point renew_at = renewal_time(info);
        if (Clock::now() < renew_at) {
          if (info.serial != installed_serial) {
            install(*cached, info);
            log::info(who, ": using cached certificate ", store.chain_path().string(), " (serial ",
                      info.serial, ", valid until ", utc_text(info.not_after), ", renewal at ",
                      utc_text(renew_at), ")");
          }
          co_return renew_at;
        }
        why = "renewal is due (valid until " + utc_text(info.not_after) + ")";
      }
    }
    log::info(who, ": ordering a certificate for ", tls.hostname.size(), " name(s) from ",
              tls.acme_directory_url, ": ", why);
    EcKey account_key = store.load_or_create_account_key();
    std::shared_ptr<ChallengeTokens> published = tokens;
    const bool tls_alpn = tls.acme_challenge == config::AcmeChallenge::TlsAlpn01;
    ChallengePublisher publish;
    if (tls_alpn) {
      // RFC 8737: the HTTPS listeners answer acme-tls/1 for `domain` (tls_alpn.hpp).
      publish = [](const std::string& domain, const std::string& value) {
        if (value.empty()) {
          TlsAlpnChallenges::instance().withdraw(domain);
        } else {
          TlsAlpnChallenges::instance().publish(domain, value);
        }
      };
    } else {
      publish = [published](const std::string& token, const std::string& value) {
        std::lock_guard lock(published->mutex);
        if (value.empty()) {
          published->values.erase(token);
        } else {
          published->values[token] = value;
        }
      };
    }
    AcmeClient client(strand, *http, std::move(account_key), std::move(publish));
    AcmeOrderRequest request;
    request.challenge = tls_alpn ? "tls-alpn-01" : "http-01";
    request.directory_url = tls.acme_directory_url;
    request.names = tls.hostname;
    request.contact = tls.contact;
    IssuedCertificate issued = co_await client.order_certificate(request);
    if (stopping) co_return Clock::now();
    PemPair pair{std::move(issued.chain_pem), std::move(issued.key_pem)};
    if (!certificate_matches(pair.chain_pem, pair.key_pem, tls.hostname)) {
      throw std::runtime_error("the issued certificate does not cover the hostnames");
    }
    CertificateInfo info = certificate_info(pair.chain_pem);
    store.save_certificate(pair);
    install(pair, info);
    orders_ok->Increment();
    Clock::time_point renew_at = renewal_time(info);
    log::info(who, ": certificate installed (serial ", info.serial, ", issuer ", info.issuer,
              ", valid until ", utc_text(info.not_after), ", renewal at ", utc_text(renew_at),
              "), saved to ", store.chain_path().string());
    co_return std::max(renew_at, Clock::now() + kMinIssuanceInterval);
  }

  asio::awaitable<void> run() {
    std::chrono::seconds retry_delay = kFirstRetryDelay;
    while (!stopping) {
      Clock::time_point next;
      bool failed = false;
      std::string error;
      recheck = false;
      try {
        next = co_await refresh();
        retry_delay = kFirstRetryDelay;
      } catch (const std::exception& e) {
        failed = true;
        error = e.what();
      }
      if (stopping) break;
      if (failed) orders_failed->Increment();
      if (recheck) {  // settings changed during refresh(): look again with the new ones
        if (failed) log::error(who, ": ", error, "; retrying with the reloaded settings");
        retry_delay = kFirstRetryDelay;
        continue;
      }
      if (failed) {
        log::error(who, ": ", error, "; retrying in ", retry_delay.count(), " s");
        next = Clock::now() + retry_delay;
        retry_delay = std::min<std::chrono::seconds>(retry_delay * 2, kMaxRetryDelay);
      }
      auto wait = std::min<Clock::duration>(next - Clock::now(), kMaxSleep);
      if (wait.count() < 0) wait = Clock::duration::zero();
      timer.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
};

AcmeService::AcmeService(const ServiceContext& ctx, const config::Config& config, AcmeTarget target,
                         const std::vector<HttpRouter*>& challenge_routers, Install install) {
  const config::TlsConfig* tls = acme_section(config, target);
  if (!tls) throw std::logic_error("AcmeService needs cert_mode LetsEncrypt");
  state_ = std::make_shared<AcmeServiceState>(ctx, target, *tls, std::move(install));
  try {
    HttpClientOptions options;
    options.ca_file = tls->acme_ca_file;
    options.user_agent = "iroh-relay/" IROH_RELAY_VERSION " acme";
    state_->http = std::make_unique<HttpClient>(std::move(options));
  } catch (const std::exception& e) {
    throw config::ConfigError(
        config.source.string(), 0,
        target == AcmeTarget::Relay ? "tls.acme_ca_file" : "lookup_listeners.https.acme_ca_file",
        e.what());
  }
  for (HttpRouter* router : challenge_routers) add_http01_route(*router);
}

AcmeService::~AcmeService() {
  stop();
}

void AcmeService::start() {
  std::shared_ptr<AcmeServiceState> state = state_;
  asio::co_spawn(
      state->strand, [state]() -> asio::awaitable<void> { co_await state->run(); },
      [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          log::error("acme: service stopped: ", ex.what());
        }
      });
}

void AcmeService::reload(const config::Config& next) {
  const config::TlsConfig* section = acme_section(next, state_->target);
  if (!section) return;
  std::shared_ptr<AcmeServiceState> state = state_;
  asio::post(state->strand, [state, tls = *section] {
    const config::TlsConfig& old = state->tls;
    if (tls.hostname == old.hostname && tls.contact == old.contact &&
        tls.acme_directory_url == old.acme_directory_url &&
        tls.acme_challenge == old.acme_challenge) {
      return;
    }
    if (tls.acme_ca_file != old.acme_ca_file || tls.cert_dir != old.cert_dir) {
      log::warn(state->who, ": acme_ca_file and cert_dir changes need a restart");
    }
    state->tls.hostname = tls.hostname;
    state->tls.contact = tls.contact;
    state->tls.acme_directory_url = tls.acme_directory_url;
    state->tls.acme_challenge = tls.acme_challenge;
    state->recheck = true;
    state->timer.cancel();
    log::info(state->who, ": settings reloaded; checking the certificate again");
  });
}

void AcmeService::stop() {
  if (state_->stopping.exchange(true)) return;
  std::shared_ptr<AcmeServiceState> state = state_;
  asio::post(state->strand, [state] { state->timer.cancel(); });
}

}  // namespace iroh::server::acme
