# Relay hardening (issue 7), one source per subject: access control, limits and lifecycle, TLS,
# logs. One executable, so the ctest names stay those of the gtest cases.
iroh_gtest(hardening_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/hardening_access_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/hardening_limits_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/hardening_tls_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/hardening_logs_test.cpp
  LIBS iroh_server PkgConfig::SODIUM nlohmann_json::nlohmann_json
  LABELS integration)
target_include_directories(hardening_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
