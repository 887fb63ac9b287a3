iroh_gtest(metrics_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  LIBS iroh_server nlohmann_json::nlohmann_json
  LABELS integration)
target_include_directories(metrics_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
