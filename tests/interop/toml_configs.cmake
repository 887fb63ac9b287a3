# Issue 17: iroh-dns-server's own config.dev.toml (moved to free loopback ports) and a relay TOML
# beside a DNS TOML run the iroh-relay binary: pkarr PUT/GET over HTTP and HTTPS, DNS over UDP
# and TCP, metrics, refusals at start (toml_configs.py). The relay TOML's shared_token access is
# in hardening_binary_test (RelayToml*).
if(TARGET iroh-relay)
  add_test(NAME interop_toml_configs
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/toml_configs.py $<TARGET_FILE:iroh-relay>)
  set_tests_properties(interop_toml_configs PROPERTIES LABELS interop TIMEOUT 120)
endif()
