iroh_gtest(client_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/client_test.cpp
  LIBS iroh_client iroh_server LABELS integration)
iroh_gtest(client_features_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/client_features_test.cpp
  LIBS iroh_client iroh_server LABELS integration)
