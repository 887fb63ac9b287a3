# PostgresPkarrStore (issue 15) against a PostgreSQL 15 cluster that each test process starts in
# a temporary directory on a loopback port and removes (tests/interop/pg/pg_cluster.sh).
pkg_check_modules(PKARR_TEST_PQ REQUIRED IMPORTED_TARGET libpq)
iroh_gtest(pkarr_store_postgres_test SOURCES integration/pkarr_store_postgres_test.cpp
  LIBS iroh_server pkarr PkgConfig::SODIUM PkgConfig::PKARR_TEST_PQ LABELS integration)
# pkarr_store.hpp is a private header of the server library.
target_include_directories(pkarr_store_postgres_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
target_compile_definitions(pkarr_store_postgres_test PRIVATE
  IROH_PG_CLUSTER="${PROJECT_SOURCE_DIR}/tests/interop/pg/pg_cluster.sh")
