iroh_gtest(hardening_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/hardening_test.cpp
  LIBS iroh_server PkgConfig::SODIUM nlohmann_json::nlohmann_json
  LABELS integration)
target_include_directories(hardening_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
