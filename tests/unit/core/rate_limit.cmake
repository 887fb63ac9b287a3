# TokenBucket, RxTokenBucket, Gcra, PrefixRateLimiter (server/src/core/rate_limit.hpp), the address
# helpers (core/net.hpp) and AcceptBackoff.
iroh_gtest(rate_limit_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/rate_limit_test.cpp
  LIBS iroh_server)
target_include_directories(rate_limit_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
