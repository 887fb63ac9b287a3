# Soak (issue 19 item 11), not a CI test: iroh-relay under a steady mixed load (relay churn,
# pkarr PUTs, DNS over UDP, DoH) for --minutes, sampling RSS, fds and queue depth every 10 s;
# exit 1 if RSS after the warm-up is not flat within +-5 % or fds grow. loadtest/run-soak.sh.
if(NOT TARGET relay_loadtest_harness)
  add_library(relay_loadtest_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/relay_harness.cpp)
endif()
add_executable(soak ${CMAKE_CURRENT_LIST_DIR}/soak.cpp)
target_link_libraries(soak PRIVATE iroh_client relay_loadtest_harness)
