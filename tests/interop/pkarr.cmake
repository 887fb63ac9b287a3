# The pkarr relay API of the iroh-relay binary (spec address-lookup.md §4, §11, §12), all on
# loopback with ephemeral ports (tests/interop/pkarr/):
#   pkarr_http_test.py        every §4.2/§4.3 row, vectors A-C, walk-through steps 1, 2, 8-13,
#                             CORS, 413, newest-wins, concurrent and pipelined PUTs, simple/smart
#                             rate limit
#   pkarr_interop_test.py     npm pkarr@1.3.0 (package-lock.json) relayPut/relayGet both ways
#   pkarr_durability_test.py  SIGKILL during a PUT load; every 204 is there after the restart
#   pkarr_hostile_test.py     issue 19: 413 before the body, RSS under 150 oversize PUTs, smart
#                             X-Forwarded-For and IPv6 /64 keys, max_records, future timestamps,
#                             full disk (tmpfs, root only)
if(TARGET iroh-relay)
  set(pkarr_dir ${CMAKE_CURRENT_LIST_DIR}/pkarr)
  add_test(NAME interop_pkarr_http
    COMMAND /usr/bin/python3 ${pkarr_dir}/pkarr_http_test.py $<TARGET_FILE:iroh-relay>)
  add_test(NAME interop_pkarr_js
    COMMAND /usr/bin/python3 ${pkarr_dir}/pkarr_interop_test.py $<TARGET_FILE:iroh-relay>)
  add_test(NAME interop_pkarr_durability
    COMMAND /usr/bin/python3 ${pkarr_dir}/pkarr_durability_test.py $<TARGET_FILE:iroh-relay> 2)
  add_test(NAME interop_pkarr_hostile
    COMMAND /usr/bin/python3 ${pkarr_dir}/pkarr_hostile_test.py $<TARGET_FILE:iroh-relay>)
  set_tests_properties(interop_pkarr_http interop_pkarr_js interop_pkarr_durability
    interop_pkarr_hostile
    PROPERTIES LABELS interop TIMEOUT 180 SKIP_RETURN_CODE 77)
endif()
