// The processes under test (processes.hpp): each gets its directory and config in the run's
// TempDir, and a process that does not listen in time fails with the tail of its log.
#include "relay_openloop/processes.hpp"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>

namespace relay_openloop {

using lt::pinned;

std::string g_relay_extra_yaml;

// ---- processes ---------------------------------------------------------------------------------

RelayProcess start_relay(const std::string& binary, const lt::TempDir& dir, bool tls, int cpu) {
  RelayProcess p;
  auto sub = dir.path() / (tls ? "relay-tls" : "relay-plain");
  std::filesystem::create_directories(sub);
  p.port = lt::free_tcp_port();
  std::string extra;
  auto http_port = p.port;
  if (tls) {
    http_port = lt::free_tcp_port();
    extra = "tls:\n  cert_mode: manual\n  https_bind_addr: \"127.0.0.1:" + std::to_string(p.port) +
            "\"\n  manual_cert_path: " + (dir.path() / "cert.pem").string() +
            "\n  manual_key_path: " + (dir.path() / "key.pem").string() +
            "\nenable_quic_addr_discovery: false\n";
  }
  auto config = lt::write_relay_config(sub, http_port, extra + g_relay_extra_yaml);
  p.log = sub / "relay.log";
  p.child =
      std::make_unique<lt::ChildProcess>(pinned(cpu, {binary, "--config", config.string()}), p.log);
  if (!lt::wait_for_port(p.port, 10s)) {
    throw std::runtime_error("relay did not listen on 127.0.0.1:" + std::to_string(p.port) +
                             (p.child->running() ? " within 10 s" : " (it exited)") +
                             "; its log:\n" + lt::read_tail(p.log));
  }
  return p;
}

bool make_cert(const lt::TempDir& dir) {
  auto cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" +
      (dir.path() / "key.pem").string() + "' -out '" + (dir.path() / "cert.pem").string() +
      "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::optional<NginxProcess> start_nginx(const std::string& binary, const std::string& module,
                                        const lt::TempDir& dir, std::uint16_t sink_port,
                                        std::uint16_t tls_sink_port, int cpu) {
  NginxProcess n;
  auto sub = dir.path() / "nginx";
  std::filesystem::create_directories(sub / "logs");
  n.plain_port = lt::free_tcp_port();
  n.tls_port = lt::free_tcp_port();
  n.tls_both_port = lt::free_tcp_port();
  const std::string listener_tls =
      " ssl_certificate " + (dir.path() / "cert.pem").string() + "; ssl_certificate_key " +
      (dir.path() / "key.pem").string() +
      "; ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on; ssl_ciphers " +
      kTls12Ciphers + "; ssl_conf_command Ciphersuites " + kTls13Suites + ";";
  // nginx is the client on this leg: the sink's server preference picks the suite; the same
  // list in the same order here keeps it the relay's choice whatever the sink does.
  const std::string upstream_tls =
      " proxy_ssl on; proxy_ssl_protocols TLSv1.2 TLSv1.3; proxy_ssl_ciphers " +
      std::string(kTls12Ciphers) + "; proxy_ssl_conf_command Ciphersuites " + kTls13Suites + ";";
  std::ofstream conf(sub / "nginx.conf");
  if (!module.empty()) conf << "load_module " << module << ";\n";
  conf << "worker_processes 1;\npid " << (sub / "nginx.pid").string() << ";\n"
       << "error_log " << (sub / "logs" / "error.log").string() << " warn;\n"
       << "events { worker_connections 1024; }\n"
       << "stream {\n"
       << "  server { listen 127.0.0.1:" << n.plain_port << "; proxy_pass 127.0.0.1:" << sink_port
       << "; }\n"
       << "  server { listen 127.0.0.1:" << n.tls_port << " ssl;" << listener_tls
       << " proxy_pass 127.0.0.1:" << sink_port << "; }\n"
       << "  server { listen 127.0.0.1:" << n.tls_both_port << " ssl;" << listener_tls
       << upstream_tls << " proxy_pass 127.0.0.1:" << tls_sink_port << "; }\n"
       << "}\n";
  conf.close();
  n.child = std::make_unique<lt::ChildProcess>(
      pinned(cpu, {binary, "-p", sub.string(), "-c", (sub / "nginx.conf").string(), "-e",
                   (sub / "logs" / "error.log").string(), "-g", "daemon off;"}),
      sub / "stdout.log");
  if (!lt::wait_for_port(n.plain_port, 10s) || !lt::wait_for_port(n.tls_port, 2s) ||
      !lt::wait_for_port(n.tls_both_port, 2s)) {
    std::cerr << "nginx did not start; its log:\n"
              << lt::read_tail(sub / "logs" / "error.log") << lt::read_tail(sub / "stdout.log")
              << "\n";
    return std::nullopt;
  }
  return n;
}

}  // namespace relay_openloop
