# ACME end to end against Debian's pebble: issuance over HTTP-01, the cached certificate on
# restart, renewal with a relay client connected across it (see acme_pebble.sh).
# Registered whether or not pebble is installed: without it the script fails naming the package.
if(TARGET iroh-relay AND TARGET iroh-relay-client)
  add_test(NAME interop_acme_pebble
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/acme_pebble.sh $<TARGET_FILE:iroh-relay>
            $<TARGET_FILE:iroh-relay-client>)
  set_tests_properties(interop_acme_pebble PROPERTIES LABELS interop TIMEOUT 300)
endif()

# TLS-ALPN-01 (RFC 8737) with pebble's HTTP-01 port closed, from an unchanged iroh-relay TOML
# (cert_mode LetsEncrypt) with IROH_RELAY_ACME_URL / IROH_RELAY_ACME_CA (acme_pebble_tls_alpn.sh).
if(TARGET iroh-relay)
  add_test(NAME interop_acme_pebble_tls_alpn
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/acme_pebble_tls_alpn.sh $<TARGET_FILE:iroh-relay>)
  set_tests_properties(interop_acme_pebble_tls_alpn PROPERTIES LABELS interop TIMEOUT 180)
endif()

# The lookup HTTPS listener's own ACME certificate (issue 17 item 2): TLS-ALPN-01 with port 80
# closed from the reference's TOML files, then HTTP-01 on the lookup HTTP listener (YAML), while
# the relay listener keeps its manual certificate (acme_pebble_lookup.sh).
if(TARGET iroh-relay)
  add_test(NAME interop_acme_pebble_lookup
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/acme_pebble_lookup.sh $<TARGET_FILE:iroh-relay>)
  set_tests_properties(interop_acme_pebble_lookup PROPERTIES LABELS interop TIMEOUT 300)
endif()
