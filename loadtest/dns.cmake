# Authoritative DNS queries/s, ours vs knotd (dnsperf): loadtest/run-dns.sh <build-dir>.
# The script drives the iroh-relay binary; `cmake --build <dir> --target loadtest-dns` runs it.
add_custom_target(loadtest-dns
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/run-dns.sh ${CMAKE_BINARY_DIR}
  DEPENDS iroh-relay USES_TERMINAL)
