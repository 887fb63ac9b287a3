# ACME end to end against Debian's pebble: issuance over HTTP-01, the cached certificate on
# restart, renewal with a relay client connected across it (see acme_pebble.sh).
# Registered whether or not pebble is installed: without it the script fails naming the package.
if(TARGET iroh-relay AND TARGET iroh-relay-client)
  add_test(NAME interop_acme_pebble
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/acme_pebble.sh $<TARGET_FILE:iroh-relay>
            $<TARGET_FILE:iroh-relay-client>)
  set_tests_properties(interop_acme_pebble PROPERTIES LABELS interop TIMEOUT 300)
endif()
