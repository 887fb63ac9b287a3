// An RFC 8555 ACME client that orders one certificate with HTTP-01 or TLS-ALPN-01 (RFC 8737)
// challenges: directory, nonces,
// account (newAccount with the ES256 key, contact, terms agreed), newOrder, authorizations,
// challenges, finalize with a CSR, polling (bounded, honouring Retry-After) and the PEM chain.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "acme/acme_crypto.hpp"
#include "http/http_client.hpp"

namespace iroh::server::acme {

struct IssuedCertificate {
  std::string chain_pem;
  std::string key_pem;
};

// Publishes (key, key authorization) for the responder while a challenge is pending;
// `publish(key, "")` withdraws it. key: the token for http-01, the domain for tls-alpn-01.
using ChallengePublisher = std::function<void(const std::string& token, const std::string& value)>;

struct AcmeOrderRequest {
  std::string directory_url;
  std::vector<std::string> names;
  std::string contact;                // e-mail; sent as mailto:<contact>
  std::string challenge = "http-01";  // or "tls-alpn-01"
  // Polling of authorizations and orders: at most `poll_attempts` polls per object, waiting
  // Retry-After (capped at `max_poll_delay`) or a doubling delay from `first_poll_delay`.
  int poll_attempts = 30;
  std::chrono::milliseconds first_poll_delay{500};
  std::chrono::milliseconds max_poll_delay{10000};
};

class AcmeClient {
 public:
  AcmeClient(boost::asio::any_io_executor executor, HttpClient& http, EcKey account_key,
             ChallengePublisher publish);

  // Runs one order to completion; throws std::runtime_error with the ACME problem detail (or
  // transport error) on failure. The certificate key is a fresh P-256 key.
  boost::asio::awaitable<IssuedCertificate> order_certificate(const AcmeOrderRequest& request);

 private:
  struct Reply {
    unsigned status = 0;
    std::string body;
    std::string location;
    std::chrono::milliseconds retry_after{-1};  // -1: none given
  };
  boost::asio::awaitable<void> load_directory(const std::string& url);
  boost::asio::awaitable<void> refresh_nonce();
  // Signed POST (payload empty = POST-as-GET); retries once on badNonce. Throws on non-2xx with
  // the problem document's detail.
  boost::asio::awaitable<Reply> post(const std::string& url, const std::string& payload);
  // Polls (POST-as-GET) `url` while its status is one of `busy`; returns the last object.
  boost::asio::awaitable<nlohmann::json> poll(const std::string& url,
                                              const AcmeOrderRequest& request,
                                              const std::vector<std::string>& busy);
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds delay);

  // The steps of order_certificate (RFC 8555 §7.3-§7.5).
  struct Order {
    std::string url;
    nlohmann::json doc;
  };
  boost::asio::awaitable<void> ensure_account(const AcmeOrderRequest& request);
  boost::asio::awaitable<Order> new_order(const AcmeOrderRequest& request);
  // Answers the authorization's challenge (published while pending) and waits until valid.
  boost::asio::awaitable<void> authorize(const std::string& authz_url,
                                         const AcmeOrderRequest& request);
  // Waits for the order to be ready, sends the CSR and downloads the chain.
  boost::asio::awaitable<IssuedCertificate> finalize(const Order& order,
                                                     const AcmeOrderRequest& request);

  boost::asio::any_io_executor executor_;
  HttpClient& http_;
  EcKey account_key_;
  ChallengePublisher publish_;
  std::string new_nonce_url_, new_account_url_, new_order_url_;
  std::string nonce_;
  std::string account_url_;  // kid, empty until newAccount succeeded
};

}  // namespace iroh::server::acme
