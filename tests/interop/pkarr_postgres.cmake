# zone_store.backend: postgres (issue 15): two iroh-relay daemons on one PostgreSQL 15 cluster that
# each test starts in a temporary directory on a loopback port and removes
# (tests/interop/pg/pg_cluster.sh). Scenarios of tests/interop/pg/pkarr_postgres_test.py:
#   interop_pkarr_pg_two_nodes  npm pkarr publishes on A, B serves GET /pkarr and kdig; the
#                               LISTEN/NOTIFY coherence delay is printed
#   interop_pkarr_pg_race       concurrent PUTs of different timestamps on both nodes: newest wins
#   interop_pkarr_pg_outage     PostgreSQL stopped: 5xx + retry-after, cached DNS/GET, degraded;
#                               back: PUT 204 within 15 s without a restart
#   interop_pkarr_pg_sigkill    SIGKILL of A under PUT load: B serves every acknowledged packet
if(TARGET iroh-relay)
  foreach(scenario two_nodes race outage sigkill)
    add_test(NAME interop_pkarr_pg_${scenario}
      COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/pg/pkarr_postgres_test.py
              $<TARGET_FILE:iroh-relay> ${scenario})
    set_tests_properties(interop_pkarr_pg_${scenario}
      PROPERTIES LABELS interop TIMEOUT 180)
  endforeach()
endif()
