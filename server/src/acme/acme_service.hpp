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

#include <memory>

#include "iroh/server/daemon.hpp"

namespace iroh::server::acme {

struct AcmeServiceState;

// Which certificate a service keeps: the relay's HTTPS listener (config tls) or the lookup
// HTTPS listener (config lookup_listeners.https).
enum class AcmeTarget { Relay, Lookup };

class AcmeService : public Service {
 public:
  // Registers the HTTP-01 route on daemon.plain_router() (Lookup: on daemon.lookup_router(),
  // and on the plain router too unless the relay's own ACME service answers there); call before
  // Daemon::start(). HTTP-01 tokens are process-wide, so either route answers for both
  // certificates. Throws config::ConfigError if acme_ca_file cannot be loaded.
  explicit AcmeService(Daemon& daemon, AcmeTarget target = AcmeTarget::Relay);
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
