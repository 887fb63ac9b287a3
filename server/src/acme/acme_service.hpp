// tls.cert_mode LetsEncrypt: keeps the HTTPS listener supplied with an ACME certificate.
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

class AcmeService : public Service {
 public:
  // Registers the HTTP-01 route on daemon.plain_router(); call before Daemon::start().
  // Throws config::ConfigError if tls.acme_ca_file cannot be loaded.
  explicit AcmeService(Daemon& daemon);
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
