# DnsService (UDP + TCP listeners) on loopback under hostile input: UDP size cap and amplification,
# response-rate limiting, TCP buffers (issue 19 items 5 and 6).
iroh_gtest(dns_service_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/dns_service_test.cpp
  LIBS iroh_server pkarr
  LABELS integration)
# dns_service.hpp and friends are private headers of the server library.
target_include_directories(dns_service_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
