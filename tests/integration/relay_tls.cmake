iroh_gtest(relay_tls_integration_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_tls_test.cpp
  LIBS iroh_server
  LABELS integration)
