iroh_gtest(relay_dataplane_integration_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_dataplane_test.cpp
  LIBS iroh_server
  LABELS integration)

iroh_gtest(relay_handshake_limits_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_handshake_limits_test.cpp
  LIBS iroh_server
  LABELS integration)
