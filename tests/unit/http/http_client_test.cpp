// The daemon's outgoing HTTP(S) client (server/src/http/http_client.hpp) against a scripted
// server on 127.0.0.1: URL parsing and its errors, plain and HTTPS exchanges, the one deadline,
// the response-size bound, a certificate that is not trusted, the scheme a client accepts, and
// that every HTTPS request reuses the client's one TLS context.
#include "http/http_client.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "iroh/quic/tls.hpp"

namespace iroh::server {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A server on 127.0.0.1 that answers every request with `response` (or never, `hang`), over
// TLS with `cert` when given. Runs on its own thread until destroyed.
class ScriptedServer {
 public:
  ScriptedServer(std::string response, std::optional<quic::PemCertificate> cert = {},
                 bool hang = false)
      : response_(std::move(response)),
        hang_(hang),
        acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    if (cert) {
      tls_.emplace(ssl::context::tls_server);
      tls_->use_certificate_chain(asio::buffer(cert->certificate));
      tls_->use_private_key(asio::buffer(cert->private_key), ssl::context::pem);
    }
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run_for(30s); });
  }
  ~ScriptedServer() {
    io_.stop();
    thread_.join();
  }
  std::string url(const char* path) const {
    return std::string(tls_ ? "https" : "http") +
           "://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + path;
  }
  int requests() const { return requests_.load(); }

 private:
  asio::awaitable<void> accept_loop() {
    for (int i = 0; i < 16; ++i) {
      auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }
  template <class Stream>
  asio::awaitable<void> answer(Stream& stream) {
    std::string request;
    co_await asio::async_read_until(stream, asio::dynamic_buffer(request), "\r\n\r\n",
                                    asio::use_awaitable);
    ++requests_;
    if (hang_) {
      asio::steady_timer forever(io_, 60s);
      co_await forever.async_wait(asio::use_awaitable);
    }
    co_await asio::async_write(stream, asio::buffer(response_), asio::use_awaitable);
  }
  asio::awaitable<void> serve(tcp::socket socket) {
    try {
      if (!tls_) {
        co_await answer(socket);
        co_return;
      }
      ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
      co_await stream.async_handshake(ssl::stream_base::server, asio::use_awaitable);
      co_await answer(stream);
    } catch (const std::exception&) {
      // The client refused the certificate or went away: nothing to answer.
    }
  }

  std::string response_;
  bool hang_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// Runs one request of `client` on a fresh io_context; rethrows what it threw.
HttpResponse fetch(const HttpClient& client, const std::string& url) {
  asio::io_context io;
  const std::string none;
  auto done =
      asio::co_spawn(io, client.request(http::verb::get, url, none, none), asio::use_future);
  io.run_for(20s);
  return done.get();
}

std::string error_of(const HttpClient& client, const std::string& url) {
  try {
    fetch(client, url);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string ok_response(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A CA file that trusts exactly `cert` (self-signed); removed with the object.
struct CaFile {
  explicit CaFile(const quic::PemCertificate& cert)
      : path(std::filesystem::temp_directory_path() /
             ("http_client_test_ca_" + std::to_string(::getpid()) + ".pem")) {
    std::ofstream(path) << cert.certificate;
  }
  ~CaFile() { std::filesystem::remove(path); }
  std::filesystem::path path;
};

HttpClientOptions options(HttpClientOptions::Schemes schemes) {
  HttpClientOptions o;
  o.schemes = schemes;
  o.timeout = 2s;
  return o;
}

TEST(HttpUrl, Parse) {
  auto u = HttpUrl::parse("https://acme-v02.api.letsencrypt.org/directory");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "acme-v02.api.letsencrypt.org");
  EXPECT_EQ(u.port, "443");
  EXPECT_EQ(u.target, "/directory");
  EXPECT_EQ(u.authority(), "acme-v02.api.letsencrypt.org");
  u = HttpUrl::parse("https://127.0.0.1:14000/dir?x=1#frag");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, "14000");
  EXPECT_EQ(u.target, "/dir?x=1");
  EXPECT_EQ(u.authority(), "127.0.0.1:14000");
  u = HttpUrl::parse("HTTP://[::1]:8080?q");
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, "8080");
  EXPECT_EQ(u.target, "/?q");
  EXPECT_EQ(u.text(), "http://[::1]:8080/?q");
  EXPECT_EQ(HttpUrl::parse("http://auth.test").port, "80");
}

TEST(HttpUrl, RejectsMalformedUrlsWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"ftp://ca.test/", "expected http:// or https://"},
      {"ca.test/dir", "expected http:// or https://"},
      {"https://:443/", "missing host"},
      {"https:///dir", "missing host"},
      {"https://ca.test:x/", "bad port"},
      {"https://ca.test:/", "bad port"},
      {"https://ca.test:70000/", "bad port"},
      {"https://ca.test:0/", "bad port"},
      {"https://[::1/", "unterminated IPv6 address"},
      {"https://[::1]x/", "bad host"},
      {"https://user@ca.test/", "user info is not supported"},
  };
  for (const auto& [url, reason] : cases) {
    try {
      HttpUrl::parse(url);
      ADD_FAILURE() << url << " parsed";
    } catch (const HttpUrlError& e) {
      EXPECT_EQ(std::string(e.what()), reason) << url;
    }
  }
}

TEST(HttpClient, PlainRequestGetsTheResponse) {
  ScriptedServer server(ok_response("true"));
  HttpClient client(options(HttpClientOptions::Schemes::Http));
  EXPECT_EQ(client.tls_context(), nullptr);  // no TLS context for a plain-only client
  auto res = fetch(client, server.url("/auth"));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "true");
}

TEST(HttpClient, DeadlineCoversAServerThatNeverAnswers) {
  ScriptedServer server(ok_response("late"), {}, /*hang=*/true);
  auto o = options(HttpClientOptions::Schemes::Http);
  o.timeout = 200ms;
  HttpClient client(o);
  try {
    fetch(client, server.url("/"));
    ADD_FAILURE() << "no timeout";
  } catch (const HttpClientError& e) {
    EXPECT_TRUE(e.timed_out());
    EXPECT_EQ(std::string(e.what()), "GET " + server.url("/") + ": read: timed out");
  }
}

TEST(HttpClient, OversizeResponseIsRefused) {
  auto o = options(HttpClientOptions::Schemes::Http);
  o.max_response_body = 100;
  HttpClient client(o);
  ScriptedServer at_limit(ok_response(std::string(100, 'a')));
  EXPECT_EQ(fetch(client, at_limit.url("/")).body().size(), 100u);
  ScriptedServer over(ok_response(std::string(101, 'a')));
  EXPECT_EQ(error_of(client, over.url("/")),
            "GET " + over.url("/") + ": read: body limit exceeded");
}

TEST(HttpClient, RefusesTheSchemeItWasNotMadeFor) {
  ScriptedServer server(ok_response("x"));
  HttpClient https_only(options(HttpClientOptions::Schemes::Https));
  EXPECT_EQ(error_of(https_only, server.url("/")),
            "GET " + server.url("/") + ": scheme: https is required");
  HttpClient plain_only(options(HttpClientOptions::Schemes::Http));
  EXPECT_EQ(error_of(plain_only, "https://127.0.0.1:1/"),
            "GET https://127.0.0.1:1/: scheme: https is not accepted");
  EXPECT_EQ(server.requests(), 0);
  EXPECT_EQ(error_of(plain_only, "gopher://x/"),
            "bad URL gopher://x/: expected http:// or https://");
}

TEST(HttpClient, ConnectErrorNamesTheStep) {
  HttpClient client(options(HttpClientOptions::Schemes::Http));
  // Port 1 on loopback: nothing listens there.
  EXPECT_EQ(error_of(client, "http://127.0.0.1:1/x"),
            "GET http://127.0.0.1:1/x: connect: Connection refused");
}

TEST(HttpClient, UntrustedCertificateIsRefused) {
  auto trusted = quic::generate_self_signed_certificate("localhost");
  auto other = quic::generate_self_signed_certificate("localhost");
  ASSERT_TRUE(trusted && other);
  CaFile ca(*trusted);
  auto o = options(HttpClientOptions::Schemes::Https);
  o.ca_file = ca.path;
  HttpClient client(o);
  ScriptedServer impostor(ok_response("x"), *other);
  const std::string error = error_of(client, impostor.url("/"));
  EXPECT_TRUE(error.starts_with("GET " + impostor.url("/") + ": TLS handshake: ")) << error;
  EXPECT_NE(error.find("certificate verify failed"), std::string::npos) << error;
  EXPECT_EQ(impostor.requests(), 0);
}

TEST(HttpClient, MissingCaFileIsAnError) {
  auto o = options(HttpClientOptions::Schemes::Https);
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_THROW(HttpClient client(o), std::runtime_error);
}

TEST(HttpClient, EveryHttpsRequestReusesTheOneTlsContext) {
  auto cert = quic::generate_self_signed_certificate("localhost");
  ASSERT_TRUE(cert);
  CaFile ca(*cert);
  auto o = options(HttpClientOptions::Schemes::Https);
  o.ca_file = ca.path;
  HttpClient client(o);
  ScriptedServer server(ok_response("hello"), *cert);
  SSL_CTX* context = client.tls_context();
  ASSERT_NE(context, nullptr);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(fetch(client, server.url("/")).body(), "hello");
  // Three client handshakes, all started and completed with the context built once.
  EXPECT_EQ(client.tls_context(), context);
  EXPECT_EQ(SSL_CTX_sess_connect(context), 3);
  EXPECT_EQ(SSL_CTX_sess_connect_good(context), 3);
  EXPECT_EQ(server.requests(), 3);
}

}  // namespace
}  // namespace iroh::server
