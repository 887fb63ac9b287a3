# Compiled PUT /pkarr load generator (issue 15 item 7), driven by loadtest/run-pkarr-put.sh
# (SQLite, one daemon vs PostgreSQL, two daemons on one database; see README.md).
add_executable(pkarr_put_gen ${CMAKE_CURRENT_LIST_DIR}/pkarr_put_gen.cpp)
target_link_libraries(pkarr_put_gen PRIVATE pkarr PkgConfig::SODIUM)
