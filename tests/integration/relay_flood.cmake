# Flood test (issue 13): 4 open-loop senders flood 4 reading receivers through the iroh-relay
# binary for 3 s; a bystander pair's datagrams must all arrive (p99 delay < 200 ms counted in the
# relay's CPU time, so that host load does not fail it: loadtest/README.md) and no reading
# receiver may be disconnected. The generator is loadtest/relay_openloop in --check mode.
include(${PROJECT_SOURCE_DIR}/loadtest/relay_openloop.cmake)
add_test(NAME relay_flood COMMAND relay_openloop --check $<TARGET_FILE:iroh-relay>)
# The same with two relay workers (relay_threads: 2): senders and receivers spread over both, so
# most datagrams cross the hand-off between workers.
add_test(NAME relay_flood_2workers
         COMMAND relay_openloop --check --relay-threads=2 $<TARGET_FILE:iroh-relay>)
# Over HTTPS: the relay's TLS reader and writer (relay/tls_socket.hpp) under the same flood.
add_test(NAME relay_flood_tls COMMAND relay_openloop --check --tls $<TARGET_FILE:iroh-relay>)
set_tests_properties(relay_flood relay_flood_2workers relay_flood_tls
                     PROPERTIES LABELS integration TIMEOUT 120)
