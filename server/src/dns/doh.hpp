// DNS-over-HTTPS at /dns-query (spec address-lookup.md §6), answered by the same DnsHandler as
// the UDP/TCP listeners, on the daemon's HTTP and HTTPS listeners:
//   GET  /dns-query?dns=<base64url, no padding>   Accept absent or application/dns-message
//   GET  /dns-query?name=..&type=..&cd=&do=&rd=   Accept application/dns-json or
//                                                 application/x-javascript (Google JSON subset)
//   POST /dns-query                               body = DNS message (any Content-Type)
// Accept is compared exactly (anything else: 406). Every DNS outcome is 200; GET answers with at
// least one record carry `Cache-Control: s-maxage=<smallest answer TTL>`. Bad parameters, padded
// or invalid base64url, unparsable messages and QR=1 are 400 with iroh-dns-server's JSON error
// body. Responses carry the CORS headers of the /pkarr routes (§4.4).
#pragma once

#include <memory>
#include <string_view>

#include "dns/dns_handler.hpp"
#include "iroh/server/http_router.hpp"

namespace iroh::server {

// Registers GET and POST /dns-query (and the CORS preflight routes).
void add_doh_routes(HttpRouter& router, std::shared_ptr<DnsHandler> handler);

}  // namespace iroh::server
