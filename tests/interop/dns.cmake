# kdig, dig and dnspython (UDP, TCP, DoH GET/POST) against the iroh-relay binary with
# enable_pkarr + enable_dns on loopback (ephemeral ports): spec address-lookup.md §12 steps 1-9.
add_test(NAME interop_dns_clients
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/dns_interop_test.py $<TARGET_FILE:iroh-relay>)
set_tests_properties(interop_dns_clients PROPERTIES LABELS interop TIMEOUT 180)
