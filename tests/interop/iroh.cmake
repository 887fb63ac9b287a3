# Real-client interop: unmodified iroh 1.0 endpoints (npm @number0/iroh, see iroh/package.json)
# talk through our iroh-relay inside network namespaces (root needed; node_modules via
# scripts/setup). See iroh/run.sh for what each variant asserts.
if(TARGET iroh-relay)
  set(IROH_INTEROP_RUN ${CMAKE_CURRENT_LIST_DIR}/iroh/run.sh)
  # solo + split: 1 MiB echo; split asserts that every byte crossed the relay.
  add_test(NAME interop_iroh COMMAND bash ${IROH_INTEROP_RUN} $<TARGET_FILE:iroh-relay>)
  # split, then 20 s with only the relay keepalive on the wire, then a new connection.
  add_test(NAME interop_iroh_idle
           COMMAND bash ${IROH_INTEROP_RUN} $<TARGET_FILE:iroh-relay> --variant split --idle 20)
  # split, then the relay restarts under the open QUIC connection, which must recover.
  add_test(NAME interop_iroh_restart
           COMMAND bash ${IROH_INTEROP_RUN} $<TARGET_FILE:iroh-relay> --variant restart)
  # split behind a proxy, 10 s idle: one relay connection per endpoint (Pongs arrive); then the
  # proxy drops the relay's Pongs and the endpoints' redials must show.
  add_test(NAME interop_iroh_pong
           COMMAND bash ${IROH_INTEROP_RUN} $<TARGET_FILE:iroh-relay> --variant pong)
  # solo + split with two relay workers (relay_threads: 2), whatever the CPU count: the two
  # endpoints' relay connections may land on different workers, so datagrams cross the
  # hand-off between them (issue 13).
  add_test(NAME interop_iroh_2workers COMMAND bash ${IROH_INTEROP_RUN} $<TARGET_FILE:iroh-relay>)
  set_tests_properties(interop_iroh_2workers PROPERTIES ENVIRONMENT
                       "IROH_INTEROP_EXTRA_CONFIG=relay_threads: 2")
  # Relay mesh (issue 16): two nodes behind one anycast relay URL, A homed on node 1 and B on
  # node 2 with no other path between them; a control run without the mesh must fail; node 2
  # restarts under the open connection, which must echo again within 10 s (iroh/mesh.sh).
  add_test(NAME interop_iroh_mesh COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/iroh/mesh.sh
                                          $<TARGET_FILE:iroh-relay>)
  set_tests_properties(interop_iroh interop_iroh_idle interop_iroh_restart interop_iroh_pong
                       interop_iroh_2workers interop_iroh_mesh PROPERTIES LABELS interop TIMEOUT 600)
endif()
