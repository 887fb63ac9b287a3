#include "transport.hpp"

#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>

#include "iroh/relay_client.hpp"

namespace iroh::client::detail {

namespace asio = boost::asio;

ParsedUrl parse_url(std::string_view text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    throw RelayClientError(Errc::InvalidUrl, std::string(text) + ": " + parsed.error().message());
  }
  const boost::urls::url_view& url = *parsed;
  ParsedUrl out;
  std::string scheme(url.scheme());
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  out.tls = !(scheme == "http" || scheme == "ws");
  std::uint16_t default_port = out.tls ? 443 : 80;
  std::string bracketed;
  switch (url.host_type()) {
    case boost::urls::host_type::ipv4:
      out.host = url.host_ipv4_address().to_string();
      out.host_is_ip = true;
      bracketed = out.host;
      break;
    case boost::urls::host_type::ipv6:
      out.host = url.host_ipv6_address().to_string();
      out.host_is_ip = true;
      bracketed = "[" + out.host + "]";
      break;
    case boost::urls::host_type::name:
      out.host = url.host();
      bracketed = out.host;
      break;
    default:
      break;
  }
  if (out.host.empty()) {
    throw RelayClientError(Errc::InvalidUrl, std::string(text) + ": no host");
  }
  out.port = default_port;
  if (url.has_port() && !url.port().empty()) {
    if (url.port_number() == 0) {
      throw RelayClientError(Errc::InvalidUrl, std::string(text) + ": bad port");
    }
    out.port = url.port_number();
  }
  out.host_header = bracketed;
  if (out.port != default_port) out.host_header += ":" + std::to_string(out.port);
  out.target = std::string(url.encoded_path());
  if (out.target.empty()) out.target = "/";
  if (url.has_query()) out.target += "?" + std::string(url.encoded_query());
  return out;
}

std::shared_ptr<asio::ssl::context> make_tls_context(
    const std::optional<std::filesystem::path>& ca_file, bool verify) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  if (!verify) {
    ctx->set_verify_mode(asio::ssl::verify_none);
    return ctx;
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  boost::system::error_code ec;
  if (ca_file) {
    ctx->load_verify_file(ca_file->string(), ec);
  } else {
    ctx->set_default_verify_paths(ec);
  }
  if (ec) {
    throw RelayClientError(Errc::Tls,
                           "cannot load trust roots" +
                               (ca_file ? " from " + ca_file->string() : std::string()) + ": " +
                               ec.message(),
                           ec);
  }
  return ctx;
}

void prepare_tls(SSL* ssl, const ParsedUrl& url) {
  if (!url.host_is_ip) SSL_set_tlsext_host_name(ssl, url.host.c_str());
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (url.host_is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), url.host.size());
  }
}

std::string describe_tls_failure(SSL* ssl, const boost::system::error_code& ec) {
  std::string reason = ec.message();
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    reason += " (certificate: ";
    reason += X509_verify_cert_error_string(verify);
    reason += ")";
  }
  return reason;
}

}  // namespace iroh::client::detail
