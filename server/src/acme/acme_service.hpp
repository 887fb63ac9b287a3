// tls.cert_mode LetsEncrypt: keeps the HTTPS listener supplied with an ACME certificate. One
// service per certificate: the relay's (tls) and, issue 17 item 2, the lookup HTTPS listener's
// own (lookup_listeners.https, iroh-dns-server's [https] cert_mode = "lets_encrypt"), each with
// its own domains, cache directory (cert_dir) and renewal timer.
//
// At start a cached certificate in cert_dir that covers the hostnames and is not yet due for
// renewal is installed without network access; otherwise one is ordered (tls.acme_challenge:
// HTTP-01, answered on the plain listener's /.well-known/acme-challenge/<token>, or TLS-ALPN-01,
// answered by the HTTPS listeners during the handshake, acme/tls_alpn.hpp). Renewal is due when
// less than a third of the lifetime (at most 30 days) is left; a timer wakes the service then.
// Failures are logged and retried with a doubling delay (30 s to 1 h); nothing here stops the
// daemon.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/tls.hpp"
#include "iroh/config.hpp"
#include "iroh/server/http_router.hpp"
#include "iroh/server/service.hpp"

namespace iroh::server::acme {

struct AcmeServiceState;

// Which certificate a service keeps: the relay's HTTPS listener (config tls) or the lookup
// HTTPS listener (config lookup_listeners.https).
enum class AcmeTarget { Relay, Lookup };

class AcmeService : public Service {
 public:
  // Keeps the certificate of `target` (tls, or lookup_listeners.https) and hands every one it
  // obtains to `install` (the daemon's reload_certificate or reload_lookup_certificate; throws if
  // the pair cannot be used). Registers the HTTP-01 route on each of `challenge_routers` (the
  // wiring picks them: the plain listener's, and for Lookup the lookup HTTP listener's); build
  // before the daemon starts. HTTP-01 tokens are process-wide, so either route answers for both
  // certificates. Takes no Daemon& so that ACME sits below the daemon (issue 14). Throws
  // config::ConfigError if acme_ca_file cannot be loaded.
  using Install = std::function<void(const PemPair&)>;
  AcmeService(const ServiceContext& ctx, const config::Config& config, AcmeTarget target,
              const std::vector<HttpRouter*>& challenge_routers, Install install);
  ~AcmeService() override;

  std::string_view name() const override { return "acme"; }
  void start() override;
  void stop() override;
  // SIGHUP: new hostname, contact and directory URL take effect at once (a cached certificate
  // that no longer covers the hostnames is replaced). acme_ca_file and cert_dir need a restart.
  void reload(const config::Config& next) override;

 private:
  std::shared_ptr<AcmeServiceState> state_;
};

}  // namespace iroh::server::acme
