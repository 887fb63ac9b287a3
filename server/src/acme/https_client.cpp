#include "acme/https_client.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <stdexcept>

namespace iroh::server::acme {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

HttpsUrl HttpsUrl::parse(std::string_view url) {
  constexpr std::string_view scheme = "https://";
  if (!url.starts_with(scheme)) throw std::runtime_error("not an https URL: " + std::string(url));
  std::string_view rest = url.substr(scheme.size());
  std::size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  HttpsUrl out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (authority.starts_with('[')) {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos)
      throw std::runtime_error("bad URL host: " + std::string(url));
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') {
      throw std::runtime_error("bad URL host: " + std::string(url));
    }
    if (!authority.empty()) out.port = std::string(authority.substr(1));
  } else {
    std::size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
  }
  if (out.host.empty() || out.port.empty() ||
      out.port.find_first_not_of("0123456789") != std::string::npos) {
    throw std::runtime_error("bad URL host or port: " + std::string(url));
  }
  return out;
}

HttpsClient::HttpsClient(asio::any_io_executor executor, const std::filesystem::path& ca_file,
                         std::chrono::seconds timeout)
    : executor_(std::move(executor)), tls_(ssl::context::tls_client), timeout_(timeout) {
  SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
  tls_.set_verify_mode(ssl::verify_peer);
  if (ca_file.empty()) {
    tls_.set_default_verify_paths();
  } else {
    boost::system::error_code ec;
    tls_.load_verify_file(ca_file.string(), ec);
    if (ec) {
      throw std::runtime_error("cannot load CA bundle " + ca_file.string() + ": " + ec.message());
    }
  }
}

asio::awaitable<HttpsResponse> HttpsClient::request(http::verb method, const std::string& url,
                                                    const std::string& body,
                                                    const std::string& content_type) {
  HttpsUrl where = HttpsUrl::parse(url);
  // Every step reports through `ec` so the error names the request and the step.
  boost::system::error_code ec;
  auto check = [&](const char* step) {
    if (!ec) return;
    std::string why = ec == beast::error::timeout ? std::string("timed out") : ec.message();
    throw std::runtime_error(std::string(http::to_string(method)) + " " + url + ": " + step + ": " +
                             why);
  };
  tcp::resolver resolver(executor_);
  beast::ssl_stream<beast::tcp_stream> stream(executor_, tls_);
  beast::get_lowest_layer(stream).expires_after(timeout_);
  auto endpoints = co_await resolver.async_resolve(where.host, where.port,
                                                   asio::redirect_error(asio::use_awaitable, ec));
  check("resolve");
  co_await beast::get_lowest_layer(stream).async_connect(
      endpoints, asio::redirect_error(asio::use_awaitable, ec));
  check("connect");

  // SNI (not for IP literals) and the name the certificate must carry.
  boost::system::error_code ip_ec;
  asio::ip::make_address(where.host, ip_ec);
  if (ip_ec && !SSL_set_tlsext_host_name(stream.native_handle(), where.host.c_str())) {
    throw std::runtime_error("cannot set TLS SNI for " + where.host);
  }
  stream.set_verify_callback(ssl::host_name_verification(where.host));
  co_await stream.async_handshake(ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
  check("TLS handshake");

  http::request<http::string_body> req(method, where.target, 11);
  req.set(http::field::host, where.port == "443" ? where.host : where.host + ":" + where.port);
  req.set(http::field::user_agent, "iroh-relay/" IROH_RELAY_VERSION " acme");
  req.set(http::field::accept, "*/*");
  if (!body.empty()) {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.prepare_payload();
  co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  check("write");

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  parser.skip(method == http::verb::head);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  check("read");
  HttpsResponse response = parser.release();

  // Best effort close_notify; the response is complete either way.
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  boost::system::error_code shutdown_ec;
  co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, shutdown_ec));
  co_return response;
}

}  // namespace iroh::server::acme
