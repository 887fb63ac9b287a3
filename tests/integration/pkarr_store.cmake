pkg_check_modules(PKARR_TEST_SQLITE REQUIRED IMPORTED_TARGET sqlite3)
iroh_gtest(pkarr_store_test SOURCES integration/pkarr_store_test.cpp
  LIBS iroh_server pkarr PkgConfig::SODIUM PkgConfig::PKARR_TEST_SQLITE LABELS integration)
# pkarr_store.hpp is a private header of the server library.
target_include_directories(pkarr_store_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
