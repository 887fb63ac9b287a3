// QAD load generator: keeps --concurrency QUIC clients (the test client of tests/interop/qad/,
// receive role, ALPN /iroh-qad/0) handshaking against a running QAD server. A handshake counts
// when HANDSHAKE_DONE and an OBSERVED_ADDRESS frame have arrived; the client then closes with code
// 1 "finished" and a new one takes its place. Then, as the baseline of the same run, the same
// machine's rate of plain TLS 1.3 handshakes: a GnuTLS client and server in memory (no sockets)
// with the same certificate, ciphers and key exchange. Used by loadtest/run-qad.sh.
//
//   qad_bench --port P --cert cert.pem --key key.pem [--seconds 5] [--concurrency 32]
//             [--server-pid PID]
//
// Prints handshakes/s, the server's CPU seconds (from /proc/PID/stat), the TLS baseline and the
// ratio. Exits non-zero if no QAD handshake completed.
#include <gnutls/gnutls.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "qad/qad_test_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kClientTimeout = std::chrono::seconds(3);

struct Options {
  int port = 0;
  std::string cert;
  std::string key;
  double seconds = 5;
  int concurrency = 32;
  int server_pid = 0;
};

// User + system CPU seconds of a process so far (all threads); -1 if unknown.
double cpu_seconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Slot {
  std::unique_ptr<qad_test::QadTestClient> client;
  Clock::time_point started;
};

// Full QAD handshakes with an observed address, `o.concurrency` at a time, for `o.seconds`.
struct QadResult {
  std::uint64_t completed = 0, failed = 0;
  double seconds = 0, server_cpu = -1;
};

QadResult run_qad(const Options& o) {
  qad_test::ClientOptions client_options;  // no certificate check: the server's work is measured
  auto fresh = [&] {
    Slot slot{std::make_unique<qad_test::QadTestClient>(static_cast<std::uint16_t>(o.port),
                                                        client_options),
              Clock::now()};
    slot.client->start();
    return slot;
  };
  std::vector<Slot> slots;
  for (int i = 0; i < o.concurrency; ++i) slots.push_back(fresh());
  std::vector<pollfd> pfds(slots.size());
  QadResult r;
  const double cpu_before = cpu_seconds(o.server_pid);
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  // Bounded by `end`: every iteration polls with a timeout.
  while (Clock::now() < end) {
    for (std::size_t i = 0; i < slots.size(); ++i) pfds[i] = {slots[i].client->fd(), POLLIN, 0};
    ::poll(pfds.data(), pfds.size(), 10);
    const auto now = Clock::now();
    for (std::size_t i = 0; i < slots.size(); ++i) {
      Slot& slot = slots[i];
      if ((pfds[i].revents & POLLIN) != 0) slot.client->receive_available();
      if (slot.client->handshake_done() && !slot.client->observed.empty()) {
        slot.client->close(1, "finished");
        ++r.completed;
        slot = fresh();
      } else if (slot.client->server_close || now - slot.started > kClientTimeout) {
        ++r.failed;
        slot = fresh();
      }
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_after = cpu_seconds(o.server_pid);
  if (cpu_before >= 0 && cpu_after >= 0) r.server_cpu = cpu_after - cpu_before;
  return r;
}

// ---- baseline: TLS 1.3 handshakes in memory ------------------------------------------------

struct Pipe {
  std::deque<std::uint8_t> bytes;
};
struct Endpoint {
  Pipe* in = nullptr;
  Pipe* out = nullptr;
};

ssize_t push(gnutls_transport_ptr_t ptr, const void* data, size_t size) {
  auto* e = static_cast<Endpoint*>(ptr);
  const auto* p = static_cast<const std::uint8_t*>(data);
  e->out->bytes.insert(e->out->bytes.end(), p, p + size);
  return static_cast<ssize_t>(size);
}

ssize_t pull(gnutls_transport_ptr_t ptr, void* data, size_t size) {
  auto* e = static_cast<Endpoint*>(ptr);
  if (e->in->bytes.empty()) {
    errno = EAGAIN;
    return -1;
  }
  const std::size_t n = std::min(size, e->in->bytes.size());
  std::copy_n(e->in->bytes.begin(), n, static_cast<std::uint8_t*>(data));
  e->in->bytes.erase(e->in->bytes.begin(), e->in->bytes.begin() + static_cast<std::ptrdiff_t>(n));
  return static_cast<ssize_t>(n);
}

// The QAD server's TLS settings (quic/src/tls.cpp) minus QUIC: TLS 1.3 only.
constexpr const char* kPriorities = "NORMAL:-VERS-ALL:+VERS-TLS1.3";

bool one_tls_handshake(gnutls_certificate_credentials_t server_cred,
                       gnutls_certificate_credentials_t client_cred) {
  Pipe to_server, to_client;
  Endpoint server_end{&to_server, &to_client}, client_end{&to_client, &to_server};
  gnutls_session_t server = nullptr, client = nullptr;
  gnutls_init(&server, GNUTLS_SERVER | GNUTLS_NONBLOCK);
  gnutls_init(&client, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
  for (auto [session, end, cred] : {std::tuple{server, &server_end, server_cred},
                                    std::tuple{client, &client_end, client_cred}}) {
    gnutls_priority_set_direct(session, kPriorities, nullptr);
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_ptr(session, end);
    gnutls_transport_set_push_function(session, push);
    gnutls_transport_set_pull_function(session, pull);
  }
  gnutls_server_name_set(client, GNUTLS_NAME_DNS, "localhost", 9);
  int server_rv = GNUTLS_E_AGAIN, client_rv = GNUTLS_E_AGAIN;
  for (int i = 0; i < 32 && (server_rv != 0 || client_rv != 0); ++i) {
    if (client_rv != 0) client_rv = gnutls_handshake(client);
    if (server_rv != 0) server_rv = gnutls_handshake(server);
    if ((client_rv < 0 && gnutls_error_is_fatal(client_rv)) ||
        (server_rv < 0 && gnutls_error_is_fatal(server_rv))) {
      break;
    }
  }
  gnutls_deinit(client);
  gnutls_deinit(server);
  return server_rv == 0 && client_rv == 0;
}

struct TlsResult {
  std::uint64_t completed = 0;
  double seconds = 0;
};

TlsResult run_tls_baseline(const Options& o) {
  gnutls_certificate_credentials_t server_cred = nullptr, client_cred = nullptr;
  gnutls_certificate_allocate_credentials(&server_cred);
  gnutls_certificate_allocate_credentials(&client_cred);
  TlsResult r;
  if (gnutls_certificate_set_x509_key_file(server_cred, o.cert.c_str(), o.key.c_str(),
                                           GNUTLS_X509_FMT_PEM) < 0) {
    std::fprintf(stderr, "cannot load %s / %s\n", o.cert.c_str(), o.key.c_str());
  } else {
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(o.seconds));
    while (Clock::now() < end) {
      if (!one_tls_handshake(server_cred, client_cred)) break;
      ++r.completed;
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }
  gnutls_certificate_free_credentials(client_cred);
  gnutls_certificate_free_credentials(server_cred);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--port") {
      o.port = std::atoi(v);
    } else if (k == "--cert") {
      o.cert = v;
    } else if (k == "--key") {
      o.key = v;
    } else if (k == "--seconds") {
      o.seconds = std::atof(v);
    } else if (k == "--concurrency") {
      o.concurrency = std::atoi(v);
    } else if (k == "--server-pid") {
      o.server_pid = std::atoi(v);
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.cert.empty() || o.key.empty() || o.seconds <= 0 ||
      o.seconds > 120 || o.concurrency < 1 || o.concurrency > 1024) {
    std::fprintf(stderr,
                 "usage: qad_bench --port P --cert PEM --key PEM [--seconds S<=120] "
                 "[--concurrency 1..1024] [--server-pid PID]\n");
    return 2;
  }
  gnutls_global_init();
  const QadResult qad = run_qad(o);
  const double qad_rate = qad.seconds > 0 ? static_cast<double>(qad.completed) / qad.seconds : 0;
  std::printf(
      "QAD handshakes (each with an OBSERVED_ADDRESS): %.0f/s (%llu completed, %llu failed, "
      "%d concurrent, %.1f s)",
      qad_rate, static_cast<unsigned long long>(qad.completed),
      static_cast<unsigned long long>(qad.failed), o.concurrency, qad.seconds);
  if (qad.server_cpu > 0) {
    std::printf("; server CPU %.2f s = %.0f handshakes per server CPU second", qad.server_cpu,
                static_cast<double>(qad.completed) / qad.server_cpu);
  }
  std::printf("\n");
  const TlsResult tls = run_tls_baseline(o);
  const double tls_rate = tls.seconds > 0 ? static_cast<double>(tls.completed) / tls.seconds : 0;
  std::printf(
      "baseline: plain TLS 1.3 handshakes in memory (GnuTLS client + server, one thread, "
      "same certificate): %.0f/s\n",
      tls_rate);
  if (tls_rate > 0) {
    std::printf(
        "ratio QAD / TLS 1.3 baseline: %.2f (client and server share this machine in both)\n",
        qad_rate / tls_rate);
  }
  fflush(stdout);
  gnutls_global_deinit();
  return qad.completed > 0 ? 0 : 1;
}
