# Issue 19 item 2's bound: the iroh-relay binary's RSS stays within 64 MiB of before while 800
# unauthenticated relay connections (partial handshake messages), 100 oversized handshake messages
# and 150 large PUT /pkarr bodies come from many loopback addresses, and after they close
# (preauth_rss_test.cpp). The child process and /proc helpers are the load tests' harness.
# Not in the sanitizer build: ASan's shadow memory and quarantine of freed blocks make RSS say
# nothing about the relay's own buffers.
if(TARGET iroh-relay AND NOT IROH_SANITIZE)
  if(NOT TARGET relay_loadtest_harness)
    add_library(relay_loadtest_harness STATIC ${PROJECT_SOURCE_DIR}/loadtest/relay_harness.cpp)
  endif()
  iroh_gtest(preauth_rss_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/preauth_rss_test.cpp
    LIBS relay_proto pkarr iroh_asio relay_loadtest_harness
    LABELS integration)
  target_include_directories(preauth_rss_test PRIVATE ${PROJECT_SOURCE_DIR}/loadtest)
  target_compile_definitions(preauth_rss_test PRIVATE
    IROH_RELAY_BINARY="$<TARGET_FILE:iroh-relay>")
  add_dependencies(preauth_rss_test iroh-relay)
endif()
