iroh_gtest(client_unit_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/client_unit_test.cpp
  LIBS iroh_client)
