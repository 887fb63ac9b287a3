// Names and helpers shared by the parts of Connection (handshake.cpp, session.cpp, writer.cpp);
// included by those files only.
#pragma once

#include <sodium.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <string_view>

#include "core/await.hpp"
#include "relay/connection.hpp"

namespace iroh::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
using namespace std::chrono_literals;
using namespace relay_conn;

// After the upgrade, WebSocket framing is done by relay/ws_framing.hpp rather than by Beast, so
// that reads can take many frames per syscall and writes can put many frames in one sendmsg;
// Beast only does the opening handshake.
using ws::kBinary;
using ws::kClose;
using ws::kContinuation;
using ws::kMaxServerHeader;
using ws::kPing;
using ws::kPong;
using ws::kText;

inline std::uint64_t random_u32(std::uint32_t upper_exclusive) {
  return randombytes_uniform(upper_exclusive);
}

inline constexpr std::string_view kHstsValue = "max-age=63072000; includeSubDomains";
inline constexpr std::string_view kCspValue =
    "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'self'; "
    "block-all-mixed-content; plugin-types 'none'";

template <class Fields>
void add_security_headers(http::header<false, Fields>& h) {
  h.set("Strict-Transport-Security", kHstsValue);
  h.set("Content-Security-Policy", kCspValue);
}

}  // namespace iroh::server
