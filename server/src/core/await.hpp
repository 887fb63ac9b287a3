// The completion token of the server's coroutines that handle their own errors: `co_await
// op(..., ec_token(ec))` stores the error in `ec` instead of throwing, so a failed read or write
// is a value the caller checks (design.md "Errors": a bad peer closes only its own connection).
#pragma once

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

namespace iroh::server {

inline auto ec_token(boost::system::error_code& ec) {
  return boost::asio::redirect_error(boost::asio::use_awaitable, ec);
}

}  // namespace iroh::server
