// The tls section and the lookup listeners (issue 17) of the YAML config.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>

#include "yaml_loader.hpp"

namespace iroh::config::yaml {

TlsConfig Loader::read_tls(const Field& at, const SocketAddr& http_bind_addr) {
  Section s =
      read_map(at, {"cert_mode", "https_bind_addr", "quic_bind_addr", "hostname", "cert_dir",
                    "manual_cert_path", "manual_key_path", "prod_tls", "contact",
                    "dangerous_http_only", "acme_directory_url", "acme_ca_file", "acme_challenge"});
  TlsConfig tls;
  const Field* mode = s.find("cert_mode");
  if (!mode) fail(at.line, child_path(at.path, "cert_mode"), "required key is missing");
  tls.cert_mode = read_cert_mode(*mode);
  read_tls_addresses(s, http_bind_addr, tls);
  read_tls_names_and_files(s, tls);
  read_acme_settings(s, tls);
  check_letsencrypt(at, *mode, tls);
  if (tls.cert_mode == CertMode::LetsEncrypt) detail::apply_acme_env(tls, file_);
  tls_lines_.cert_mode = mode->line;
  if (auto* f = s.find("manual_cert_path")) tls_lines_.cert_path = f->line;
  if (auto* f = s.find("manual_key_path")) tls_lines_.key_path = f->line;
  return tls;
}

CertMode Loader::read_cert_mode(const Field& mode) {
  const std::string text = lowercase(scalar(mode, "manual, reloading or letsencrypt"));
  if (text == "manual") return CertMode::Manual;
  if (text == "reloading") return CertMode::Reloading;
  if (text == "letsencrypt") return CertMode::LetsEncrypt;
  fail(mode.line, mode.path,
       "unknown certificate mode " + in_quotes(mode.value.Scalar()) +
           " (expected manual, reloading or letsencrypt)");
}

void Loader::read_tls_addresses(const Section& s, const SocketAddr& http_bind_addr,
                                TlsConfig& tls) {
  if (auto* f = s.find("https_bind_addr")) {
    tls.https_bind_addr = as_socket_addr(*f);
  } else {
    tls.https_bind_addr = {host_of(http_bind_addr), 443};
  }
  if (auto* f = s.find("quic_bind_addr")) {
    tls.quic_bind_addr = as_socket_addr(*f);
  } else {
    tls.quic_bind_addr = {host_of(tls.https_bind_addr), kDefaultQuicPort};
  }
}

void Loader::read_tls_names_and_files(const Section& s, TlsConfig& tls) {
  if (auto* f = s.find("hostname")) {
    if (f->value.IsSequence()) {
      for (const Field& item : list_items(*f, "a host name or a list of host names")) {
        tls.hostname.push_back(as_string(item));
      }
    } else {
      tls.hostname.push_back(as_string(*f));
    }
  }
  if (auto* f = s.find("cert_dir")) tls.cert_dir = as_string(*f);
  tls.manual_cert_path = tls.cert_dir / "default.crt";
  tls.manual_key_path = tls.cert_dir / "default.key";
  if (auto* f = s.find("manual_cert_path")) tls.manual_cert_path = as_string(*f);
  if (auto* f = s.find("manual_key_path")) tls.manual_key_path = as_string(*f);
  if (auto* f = s.find("prod_tls")) tls.prod_tls = as_bool(*f);
  if (auto* f = s.find("contact")) tls.contact = as_string(*f);
  if (auto* f = s.find("dangerous_http_only")) tls.dangerous_http_only = as_bool(*f);
  if (dev_) tls.dangerous_http_only = true;
}

void Loader::read_acme_settings(const Section& s, TlsConfig& tls) {
  if (auto* f = s.find("acme_directory_url")) {
    tls.acme_directory_url = as_string(*f);
    if (!tls.acme_directory_url.starts_with("https://")) {
      fail(f->line, f->path, "must be an https:// URL, found " + in_quotes(tls.acme_directory_url));
    }
  } else if (!tls.prod_tls) {
    tls.acme_directory_url = "https://acme-staging-v02.api.letsencrypt.org/directory";
  }
  if (auto* f = s.find("acme_ca_file")) {
    tls.acme_ca_file = as_string(*f);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(tls.acme_ca_file, ec)) {
      fail(f->line, f->path, "not a readable file: " + tls.acme_ca_file.string());
    }
  }

  if (auto* f = s.find("acme_challenge")) {
    std::string text = lowercase(scalar(*f, "http-01 or tls-alpn-01"));
    if (text == "http-01") {
      tls.acme_challenge = AcmeChallenge::Http01;
    } else if (text == "tls-alpn-01") {
      tls.acme_challenge = AcmeChallenge::TlsAlpn01;
    } else {
      fail(f->line, f->path,
           "unknown challenge type " + in_quotes(f->value.Scalar()) +
               " (expected http-01 or tls-alpn-01)");
    }
  }
}

void Loader::check_letsencrypt(const Field& at, const Field& mode, const TlsConfig& tls) {
  if (tls.cert_mode == CertMode::LetsEncrypt) {
    if (dev_) {
      fail(mode.line, mode.path,
           "letsencrypt cannot be used with --dev (ACME needs the HTTPS listener)");
    }
    if (tls.hostname.empty()) {
      fail(mode.line, child_path(at.path, "hostname"), "letsencrypt needs at least one hostname");
    }
    if (tls.contact.empty()) {
      fail(mode.line, child_path(at.path, "contact"), "letsencrypt needs a contact address");
    }
  }
}

void Loader::check_tls_files(const Config& cfg, const Field& tls_field) {
  const TlsConfig& tls = *cfg.tls;
  if (tls.cert_mode == CertMode::LetsEncrypt) return;
  if (dev_ && !cfg.enable_quic_addr_discovery) return;
  auto check = [&](const fs::path& path, int line, const char* key, const char* what) {
    if (auto reason = unreadable(path)) {
      fail(line ? line : tls_lines_.cert_mode, child_path(tls_field.path, key),
           std::string("cannot read ") + what + " " + in_quotes(path.string()) + ": " + *reason);
    }
  };
  check(tls.manual_cert_path, tls_lines_.cert_path, "manual_cert_path", "certificate file");
  check(tls.manual_key_path, tls_lines_.key_path, "manual_key_path", "private key file");
}

void Loader::read_lookup_listeners(const Field& at, Config& cfg) {
  Section s = read_map(at, {"http_bind_addr", "https"});
  if (auto* f = s.find("http_bind_addr")) cfg.lookup_listeners.http_bind_addr = as_socket_addr(*f);
  if (auto* f = s.find("https")) {
    Section h = read_map(*f, {"https_bind_addr", "cert_mode", "hostname", "cert_dir",
                              "manual_cert_path", "manual_key_path", "prod_tls", "contact",
                              "acme_directory_url", "acme_ca_file", "acme_challenge"});
    const Field* bind = h.find("https_bind_addr");
    if (!bind) fail(f->line, child_path(f->path, "https_bind_addr"), "required key is missing");
    const Field* mode = h.find("cert_mode");
    if (!mode) fail(f->line, child_path(f->path, "cert_mode"), "required key is missing");
    // Everything but self_signed reads like the relay's tls section.
    const bool self_signed =
        lowercase(scalar(*mode, "manual, self_signed or letsencrypt")) == "self_signed";
    TlsConfig tls;
    if (self_signed) {
      tls.cert_mode = CertMode::SelfSigned;
      tls.https_bind_addr = as_socket_addr(*bind);
      if (auto* n = h.find("hostname")) {
        if (n->value.IsSequence()) {
          for (const Field& item : list_items(*n, "a host name or a list of host names")) {
            tls.hostname.push_back(as_string(item));
          }
        } else {
          tls.hostname.push_back(as_string(*n));
        }
      }
    } else {
      const std::string mode_text = lowercase(mode->value.Scalar());
      if (mode_text != "manual" && mode_text != "letsencrypt") {
        fail(mode->line, mode->path,
             "unknown certificate mode " + in_quotes(mode->value.Scalar()) +
                 " (expected manual, self_signed or letsencrypt)");
      }
      const TlsLines relay_lines = tls_lines_;
      tls = read_tls(*f, cfg.http_bind_addr);
      tls_lines_ = relay_lines;
      // letsencrypt: its own ACME certificate (lookup AcmeService) beside the relay's.
      if (auto problem = detail::lookup_acme_problem(cfg.tls, tls)) {
        fail(mode->line, mode->path, *problem);
      }
      if (tls.cert_mode == CertMode::Manual) {
        if (!h.find("manual_cert_path") || !h.find("manual_key_path")) {
          if (tls.hostname.empty()) {
            fail(mode->line, child_path(f->path, "hostname"),
                 "manual without manual_cert_path needs a hostname (it names the files)");
          }
          const std::string base = detail::escape_hostname(tls.hostname.front());
          if (!h.find("manual_cert_path")) tls.manual_cert_path = tls.cert_dir / (base + ".crt");
          if (!h.find("manual_key_path")) tls.manual_key_path = tls.cert_dir / (base + ".key");
        }
        for (const char* key : {"manual_cert_path", "manual_key_path"}) {
          const fs::path& path = std::string_view(key) == "manual_cert_path" ? tls.manual_cert_path
                                                                             : tls.manual_key_path;
          if (auto reason = unreadable(path)) {
            const Field* k = h.find(key);
            fail(k ? k->line : mode->line, child_path(f->path, key),
                 "cannot read " + in_quotes(path.string()) + ": " + *reason);
          }
        }
      }
    }
    if (cfg.tls && tls.https_bind_addr.port != 0 &&
        detail::same_addr(tls.https_bind_addr, cfg.tls->https_bind_addr)) {
      fail(bind->line, bind->path, "is the relay's tls.https_bind_addr; leave it out there");
    }
    cfg.lookup_listeners.https = std::move(tls);
  }
  if (cfg.lookup_listeners.http_bind_addr && cfg.lookup_listeners.http_bind_addr->port != 0 &&
      detail::same_addr(*cfg.lookup_listeners.http_bind_addr, cfg.http_bind_addr)) {
    const Field* f = s.find("http_bind_addr");
    fail(f->line, f->path, "is the relay's http_bind_addr; leave it out there");
  }
}

}  // namespace iroh::config::yaml
