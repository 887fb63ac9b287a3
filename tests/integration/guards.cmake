# Tests that keep security and durability paths honest (issue 18): each fails on a defect that
# tests/mutation/run.sh plants (auth header not verified, 204 before the commit, rx limit that
# does not slow reading, a rejected reload applied anyway).
pkg_check_modules(GUARDS_TEST_SQLITE REQUIRED IMPORTED_TARGET sqlite3)
iroh_gtest(guards_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_header_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/pkarr_commit_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/reload_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/rx_limit_test.cpp
  LIBS iroh_server pkarr PkgConfig::SODIUM PkgConfig::GUARDS_TEST_SQLITE
  LABELS integration)
# pkarr_http.hpp, pkarr_store_service.hpp and log.hpp are private headers of the server library.
target_include_directories(guards_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
