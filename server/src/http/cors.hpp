// CORS headers and the JSON error body of the address-lookup HTTP routes (/pkarr and
// /dns-query, spec address-lookup.md §4.2 and §4.4). One home in http/ so that lookup/ and dns/
// both use it without one borrowing from the other (issue 14).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "iroh/server/http_router.hpp"

namespace iroh::server {

// Adds `access-control-allow-origin: *` and the CORS `vary` header of §4.4.
void add_cors_headers(HttpResponse& res);
// make_response() plus the CORS headers.
HttpResponse cors_response(const HttpRequest& req, boost::beast::http::status status,
                           std::string body = {}, std::string_view content_type = {});
// iroh-dns-server's JSON error body (§4.2), CORS headers included:
// {"status":"<code>","detail":<string or null>}. Shared by /pkarr and /dns-query.
HttpResponse lookup_json_error(const HttpRequest& req, boost::beast::http::status status,
                               std::optional<std::string> detail);
// OPTIONS on any path (and `OPTIONS *`): 200, empty body, the §4.4 CORS headers.
void add_cors_preflight_routes(HttpRouter& router);

}  // namespace iroh::server
