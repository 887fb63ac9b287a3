# TokenBucket, PrefixRateLimiter (server/src/rate_limiter.hpp) and AcceptBackoff.
iroh_gtest(rate_limiter_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/rate_limiter_test.cpp
  LIBS iroh_server)
target_include_directories(rate_limiter_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
