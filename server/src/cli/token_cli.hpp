// `iroh-relay token ...`: issuer keys and capability tokens (capability_token.hpp).
//   iroh-relay token keygen --key FILE        new issuer key (hex seed, mode 0600); prints the
//                                              public key for access.capability_issuers
//   iroh-relay token pubkey --key FILE        prints the issuer's public key
//   iroh-relay token issue --key FILE --endpoint ID --ttl 24h [--note TEXT]
//                                              prints a token for that endpoint
#pragma once

namespace iroh::server {

// argv[0] = "iroh-relay", argv[1] = "token". Returns the process exit code.
int run_token_command(int argc, char** argv);

}  // namespace iroh::server
