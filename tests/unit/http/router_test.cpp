// The HTTP router (server/include/iroh/server/http_router.hpp): which handler a method and path
// find (exact before the longest prefix, the query ignored: spec relay.md §2), replacement of a
// route, per-route body limits, and the target helpers on malformed input.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <string>

#include "iroh/server/http_router.hpp"

namespace iroh::server {
namespace {

// A handler that answers with `name`, so a test can tell which route find() picked.
HttpHandler named(std::string name) {
  return [name](const HttpRequest&, const RequestInfo&) -> boost::asio::awaitable<HttpResponse> {
    HttpResponse res;
    res.body() = name;
    co_return res;
  };
}

// The name of the handler the router finds for (method, path), or "" for none.
std::string found(const HttpRouter& router, http::verb method, std::string_view path) {
  const HttpHandler* handler = router.find(method, path);
  if (!handler) return "";
  boost::asio::io_context io;
  std::string body;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        body = (co_await (*handler)(HttpRequest{}, RequestInfo{})).body();
      },
      boost::asio::detached);
  io.run();
  return body;
}

TEST(HttpRouter, ExactRouteBeatsAPrefixOfTheSamePath) {
  HttpRouter router;
  router.add(http::verb::get, "/relay", named("prefix"), HttpRouter::Match::Prefix);
  router.add(http::verb::get, "/relay", named("exact"));
  EXPECT_EQ(found(router, http::verb::get, "/relay"), "exact");
  EXPECT_EQ(found(router, http::verb::get, "/relay/more"), "prefix");
}

TEST(HttpRouter, LongestPrefixWinsWhateverTheOrder) {
  HttpRouter router;
  router.add(http::verb::get, "/pkarr/", named("pkarr"), HttpRouter::Match::Prefix);
  router.add(http::verb::get, "/", named("root"), HttpRouter::Match::Prefix);
  EXPECT_EQ(found(router, http::verb::get, "/pkarr/abc"), "pkarr");
  EXPECT_EQ(found(router, http::verb::get, "/other"), "root");
}

TEST(HttpRouter, MethodAndPathMustBothMatch) {
  HttpRouter router;
  router.add(http::verb::get, "/ping", named("ping"));
  EXPECT_EQ(found(router, http::verb::get, "/ping"), "ping");
  EXPECT_EQ(router.find(http::verb::put, "/ping"), nullptr);
  EXPECT_EQ(router.find(http::verb::get, "/ping/"), nullptr);  // exact means exact
  EXPECT_EQ(router.find(http::verb::get, "/pin"), nullptr);
  EXPECT_EQ(router.find(http::verb::get, ""), nullptr);
  EXPECT_EQ(HttpRouter{}.find(http::verb::get, "/"), nullptr);
}

TEST(HttpRouter, LaterRegistrationReplacesTheHandlerAndItsLimit) {
  HttpRouter router;
  router.add(http::verb::put, "/pkarr/", named("first"), HttpRouter::Match::Prefix, 100);
  router.add(http::verb::put, "/pkarr/", named("second"), HttpRouter::Match::Prefix, 200);
  EXPECT_EQ(found(router, http::verb::put, "/pkarr/key"), "second");
  EXPECT_EQ(router.body_limit(http::verb::put, "/pkarr/key", 1), 200u);
}

TEST(HttpRouter, BodyLimitIsTheRoutesOrTheFallback) {
  HttpRouter router;
  router.add(http::verb::put, "/pkarr/", named("pkarr"), HttpRouter::Match::Prefix, 1104);
  router.add(http::verb::post, "/dns-query", named("doh"));  // 0: the listener's default
  EXPECT_EQ(router.body_limit(http::verb::put, "/pkarr/key", 8192), 1104u);
  EXPECT_EQ(router.body_limit(http::verb::post, "/dns-query", 8192), 8192u);
  EXPECT_EQ(router.body_limit(http::verb::post, "/nothing-here", 8192), 8192u);
}

TEST(HttpTarget, PathStopsAtQueryOrFragment) {
  EXPECT_EQ(target_path("/relay?token=x"), "/relay");
  EXPECT_EQ(target_path("/relay#frag?x"), "/relay");
  EXPECT_EQ(target_path("/relay"), "/relay");
  EXPECT_EQ(target_path("?only=query"), "");
  EXPECT_EQ(target_path(""), "");
}

TEST(HttpTarget, QueryParamIsPercentDecodedAndFragmentIgnored) {
  EXPECT_EQ(query_param("/dns-query?dns=AAAB&x=1", "dns"), "AAAB");
  EXPECT_EQ(query_param("/relay?token=a%2Bb+c", "token"), "a+b c");
  EXPECT_EQ(query_param("/relay?a%20b=1", "a b"), "1");  // names are decoded too
  EXPECT_EQ(query_param("/relay?flag&x=1", "flag"), "");
  EXPECT_EQ(query_param("/relay?x=1#token=2", "token"), std::nullopt);
  EXPECT_EQ(query_param("/relay?x=1", "token"), std::nullopt);
  EXPECT_EQ(query_param("/relay", "token"), std::nullopt);
  EXPECT_EQ(query_param("/relay?", "token"), std::nullopt);
  EXPECT_EQ(query_param("/relay?&&=&", "token"), std::nullopt);
}

// Malformed escapes are kept as they are, never read past the end.
TEST(HttpTarget, PercentDecodeKeepsMalformedEscapes) {
  EXPECT_EQ(percent_decode("%41%62"), "Ab");
  EXPECT_EQ(percent_decode("%zz"), "%zz");
  EXPECT_EQ(percent_decode("%4"), "%4");
  EXPECT_EQ(percent_decode("%"), "%");
  EXPECT_EQ(percent_decode("a%"), "a%");
  EXPECT_EQ(percent_decode("%%41"), "%A");
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(percent_decode(""), "");
}

}  // namespace
}  // namespace iroh::server
