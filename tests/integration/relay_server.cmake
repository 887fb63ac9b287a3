iroh_gtest(relay_server_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_server_test.cpp
  LIBS iroh_server
  LABELS integration)
