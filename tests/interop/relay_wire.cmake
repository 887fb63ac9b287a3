# Third-party byte-level client (Python stdlib + PyNaCl + BLAKE3 C sources via ctypes) against the
# iroh-relay binary; see relay_wire_test.py.
add_test(NAME relay_wire
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/relay_wire_test.py
                 --relay $<TARGET_FILE:iroh-relay>)
set_tests_properties(relay_wire PROPERTIES LABELS interop TIMEOUT 300)
