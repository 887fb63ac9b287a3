# PUT /pkarr/{z32} per second against the running daemon vs the bare libsodium verify rate of the
# same packets: `cmake --build <dir> --target loadtest_pkarr_put` (see README.md).
if(TARGET iroh-relay)
  add_custom_target(loadtest_pkarr_put
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/pkarr_put_bench.py $<TARGET_FILE:iroh-relay>
            20000 4
    DEPENDS iroh-relay USES_TERMINAL)
endif()
