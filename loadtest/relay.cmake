# Relay benchmarks: relay_throughput (relay vs socat MB/s), relay_idle_rss (RSS per idle client)
# and relay_openloop (open-loop flood vs nginx stream, relay_openloop.cmake). They start
# iroh-relay as a child process; run them with loadtest/run-relay.sh.
if(NOT TARGET relay_loadtest_harness)
  # Also defined by relay_openloop.cmake when the flood test needs it without the load tests.
  add_library(relay_loadtest_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/relay_harness.cpp)
endif()

add_executable(relay_throughput ${CMAKE_CURRENT_LIST_DIR}/relay_throughput.cpp)
target_link_libraries(relay_throughput PRIVATE iroh_client relay_loadtest_harness)

add_executable(relay_idle_rss ${CMAKE_CURRENT_LIST_DIR}/relay_idle_rss.cpp)
target_link_libraries(relay_idle_rss PRIVATE iroh_client relay_loadtest_harness)
