#include "iroh/http_client.hpp"

#include <strings.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "iroh/relay_client.hpp"
#include "transport.hpp"

namespace iroh::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return std::nullopt;
}

namespace {

using Request = http::request<http::vector_body<std::uint8_t>>;

// One request on a connected stream (plain or TLS); beast's tcp_stream deadline covers it.
template <class Stream>
asio::awaitable<HttpResponse> exchange(Stream& stream, Request& request,
                                       const HttpOptions& options) {
  co_await http::async_write(stream, request, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::vector_body<std::uint8_t>> parser;
  parser.body_limit(options.max_body);
  if (request.method() == http::verb::head) parser.skip(true);
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
  auto& message = parser.get();
  HttpResponse out;
  out.status = message.result_int();
  for (const auto& field : message) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = std::move(message.body());
  co_return out;
}

RelayClientError transport_error(const error_code& ec, std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    return RelayClientError(
        Errc::Timeout, "no HTTP response within " + std::to_string(timeout.count()) + " ms", ec);
  }
  return RelayClientError(Errc::Io, ec.message(), ec);
}

}  // namespace

asio::awaitable<HttpResponse> http_request(std::string_view method, std::string_view url,
                                           std::vector<std::uint8_t> body,
                                           std::vector<std::pair<std::string, std::string>> headers,
                                           HttpOptions options) {
  auto parsed = detail::parse_url(url);
  auto executor = co_await asio::this_coro::executor;
  Request request;
  request.method_string(std::string(method));
  request.target(parsed.target);
  request.version(11);
  request.set(http::field::host, parsed.host_header);
  request.set(http::field::accept, "*/*");
  request.set(http::field::connection, "close");
  for (auto& [k, v] : headers) request.set(k, v);
  if (!body.empty() || method == "PUT" || method == "POST") {
    request.body() = std::move(body);
    request.prepare_payload();
  }

  asio::ip::tcp::resolver resolver(executor);
  beast::tcp_stream tcp(executor);
  tcp.expires_after(options.timeout);
  try {
    // The resolver has no deadline of its own; tcp_stream's starts with the connect.
    auto port = std::to_string(parsed.port);
    auto endpoints = co_await resolver.async_resolve(parsed.host, port, asio::use_awaitable);
    co_await tcp.async_connect(endpoints, asio::use_awaitable);
    if (!parsed.tls) {
      auto response = co_await exchange(tcp, request, options);
      co_return response;
    }
    auto context = detail::make_tls_context(options.ca_file, options.verify_tls);
    beast::ssl_stream<beast::tcp_stream> tls(std::move(tcp), *context);
    detail::prepare_tls(tls.native_handle(), parsed);
    error_code ec;
    co_await tls.async_handshake(asio::ssl::stream_base::client,
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec == beast::error::timeout) throw transport_error(ec, options.timeout);
    if (ec) {
      throw RelayClientError(Errc::Tls, detail::describe_tls_failure(tls.native_handle(), ec), ec);
    }
    auto response = co_await exchange(tls, request, options);
    co_return response;
  } catch (const boost::system::system_error& e) {
    throw transport_error(e.code(), options.timeout);
  }
}

}  // namespace iroh::client
