// RelayService: builds the shared state, opens the listeners and runs the accept loops. The
// connection itself (handshake, session, writer), the registry and the rest of the data plane
// live in relay/.
#include "relay/relay_service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <stdexcept>

#include "core/bind_address.hpp"
#include "core/log.hpp"
#include "relay/http_upgrade.hpp"
#include "relay/listener.hpp"
#include "relay/relay_state.hpp"
#include "relay/workers.hpp"

namespace iroh::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
}  // namespace

// Destroyed bottom-up: the acceptors before the workers' loops they run on, the loops (and the
// connections their handlers hold) before the state.
struct RelayService::Impl {
  std::shared_ptr<RelayServiceState> state;
  std::unique_ptr<RelayWorkers> workers;
  std::vector<std::unique_ptr<RelayListener>> listeners;
  std::optional<tcp::endpoint> http_endpoint;
  std::optional<tcp::endpoint> https_endpoint;
  std::optional<tcp::endpoint> lookup_http_endpoint;
  std::optional<tcp::endpoint> lookup_https_endpoint;

  void open(const config::SocketAddr& addr, std::string_view key, ListenerRole role, bool tls);
};

// One acceptor per worker on the same address: with several workers each sets SO_REUSEPORT and
// the kernel spreads the connections among them (issue 13).
void RelayService::Impl::open(const config::SocketAddr& addr, std::string_view key,
                              ListenerRole role, bool tls) {
  // Claimed first: a port someone else holds fails here, named, and 0 becomes one port for all.
  auto ep = claim_listen_endpoint(resolve_bind_endpoint<tcp::endpoint>(addr, key), key);
  const bool shared = workers->size() > 1;
  for (unsigned w = 0; w < workers->size(); ++w) {
    auto listener = std::make_unique<RelayListener>(
        RelayListener{tcp::acceptor(workers->context(w)), role, tls, w});
    auto& a = listener->acceptor;
    a.open(ep.protocol());
    a.set_option(asio::socket_base::reuse_address(true));
    if (shared) a.set_option(reuse_port(true));
    if (ep.address().is_v6()) {
      error_code ignored;
      a.set_option(asio::ip::v6_only(false), ignored);
    }
    a.bind(ep);
    a.listen(asio::socket_base::max_listen_connections);
    if (w == 0) {
      // Port 0 binds the first acceptor anywhere; the others join it there.
      ep = a.local_endpoint();
      // Stable format, parsed by tests and scripts: "listening <http|https> on <ip:port>"
      // ("lookup-http" / "lookup-https" for lookup_listeners).
      const bool lookup = role == ListenerRole::Lookup;
      log::info("listening ", lookup ? "lookup-" : "", tls ? "https" : "http", " on ",
                format_endpoint(ep));
      if (lookup) {
        (tls ? lookup_https_endpoint : lookup_http_endpoint) = ep;
      } else {
        (tls ? https_endpoint : http_endpoint) = ep;
      }
    }
    asio::co_spawn(a.get_executor(), accept_loop(state, *listener), asio::detached);
    listeners.push_back(std::move(listener));
  }
}

RelayService::RelayService(const config::Config& config, RelayMetrics& metrics,
                           std::shared_ptr<asio::ssl::context> tls_context,
                           std::shared_ptr<asio::ssl::context> lookup_tls_context)
    : impl_(std::make_unique<Impl>()) {
  impl_->state = std::make_shared<RelayServiceState>(config, metrics);
  auto& state = *impl_->state;
  bool tls_mode = config.tls && !config.dev && !config.tls->dangerous_http_only;
  if (tls_mode && config.enable_relay) {
    if (!tls_context) throw std::invalid_argument("relay: TLS mode needs a TLS context");
    state.set_tls_context(std::move(tls_context));
    state.tls_mode = true;
  }
  register_builtin_routes(state, !tls_mode);
  if (config.lookup_listeners.https) {
    if (!lookup_tls_context) throw std::invalid_argument("relay: lookup HTTPS needs a context");
    state.set_lookup_tls_context(std::move(lookup_tls_context));
  }
}

RelayService::~RelayService() {
  stop();
  join();
}

HttpRouter& RelayService::router() {
  return impl_->state->relay_router;
}

HttpRouter& RelayService::plain_router() {
  return impl_->state->tls_mode ? impl_->state->captive_router : impl_->state->relay_router;
}

HttpRouter& RelayService::lookup_router() {
  return impl_->state->lookup_router;
}

bool RelayService::tls_mode() const {
  return impl_->state->tls_mode;
}

void RelayService::apply(const config::Config& next) {
  // Builds everything first: a throw leaves the running settings untouched.
  auto access = std::make_shared<AccessControl>(next.access, next.source.string());
  impl_->state->set_settings(std::make_shared<RelaySettings>(RelaySettings{next.limits, access}));
}

void RelayService::set_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx) {
  impl_->state->set_tls_context(std::move(ctx));
}

void RelayService::set_lookup_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx) {
  impl_->state->set_lookup_tls_context(std::move(ctx));
}

void RelayService::drain(std::chrono::milliseconds reconnect_in,
                         std::chrono::milliseconds try_for) {
  stop_accepting();
  relay::Restarting restarting{std::uint32_t(reconnect_in.count()), std::uint32_t(try_for.count())};
  impl_->state->connections.for_each([&](TrackedConnection& c) { c.drain(restarting); });
}

void RelayService::stop_accepting() {
  if (impl_->state->stopping.exchange(true)) return;
  for (auto& l : impl_->listeners) {
    asio::post(l->acceptor.get_executor(), [state = impl_->state, l = l.get()] {
      error_code ec;
      l->acceptor.close(ec);
    });
  }
}

void RelayService::start() {
  const auto& cfg = impl_->state->config;
  const auto& lookup = cfg.lookup_listeners;
  if ((!cfg.enable_relay && !lookup.any()) || impl_->workers) return;
  impl_->workers =
      std::make_unique<RelayWorkers>(relay_worker_count(cfg.relay_threads), impl_->state->metrics);
  if (impl_->workers->size() > 1) impl_->state->registry.set_cross_worker(impl_->workers.get());
  log::info("relay: ", impl_->workers->size(), " worker(s)");
  if (!cfg.enable_relay) {
    // Only the lookup listeners below.
  } else if (impl_->state->tls_mode) {
    impl_->open(cfg.tls->https_bind_addr, "https_bind_addr", ListenerRole::RelayService, true);
    impl_->open(cfg.http_bind_addr, "http_bind_addr", ListenerRole::CaptivePortal, false);
  } else {
    impl_->open(cfg.http_bind_addr, "http_bind_addr", ListenerRole::RelayService, false);
  }
  if (lookup.https) {
    impl_->open(lookup.https->https_bind_addr, "lookup_listeners.https.https_bind_addr",
                ListenerRole::Lookup, true);
  }
  if (lookup.http_bind_addr) {
    impl_->open(*lookup.http_bind_addr, "lookup_listeners.http_bind_addr", ListenerRole::Lookup,
                false);
  }
  impl_->workers->start();
  // Issue 16: the dialers run on the first worker; links are few and mostly idle.
  if (impl_->state->mesh) {
    log::info("mesh: ", cfg.mesh.peers.size(), " peer(s)");
    impl_->state->mesh->start(impl_->workers->context(0));
  }
}

void RelayService::stop() {
  stop_accepting();
  if (impl_->state->mesh) impl_->state->mesh->stop();
  impl_->state->connections.close_all();
}

void RelayService::join() {
  if (!impl_->workers) return;
  impl_->workers->join();
  // The loops are stopped: nothing runs any more. References the registry still holds go while
  // the loops exist, then the acceptors, then the loops with whatever their handlers hold.
  impl_->state->registry.clear();
  if (impl_->state->mesh) impl_->state->mesh->clear();
  impl_->listeners.clear();
  impl_->workers.reset();
}

std::optional<tcp::endpoint> RelayService::http_endpoint() const {
  return impl_->http_endpoint;
}
std::optional<tcp::endpoint> RelayService::https_endpoint() const {
  return impl_->https_endpoint;
}
std::optional<tcp::endpoint> RelayService::lookup_http_endpoint() const {
  return impl_->lookup_http_endpoint;
}
std::optional<tcp::endpoint> RelayService::lookup_https_endpoint() const {
  return impl_->lookup_https_endpoint;
}
RelayQueueDepth RelayService::queue_depth() const {
  return impl_->state->registry.queue_depth();
}
std::size_t RelayService::client_count() const {
  return impl_->state->registry.endpoint_count();
}
std::int64_t RelayService::open_connections() const {
  return impl_->state->metrics.open_connections.load();
}

}  // namespace iroh::server
