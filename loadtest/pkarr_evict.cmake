# PUT latency of the pkarr store during a mass eviction (issue 19 item 8), not a test:
#   cmake --build <dir> --target pkarr_evict_bench && <dir>/loadtest/pkarr_evict_bench 1000000
# pkarr_store.hpp is a private header of the server library.
pkg_check_modules(PKARR_EVICT_SQLITE REQUIRED IMPORTED_TARGET sqlite3)
add_executable(pkarr_evict_bench ${CMAKE_CURRENT_LIST_DIR}/pkarr_evict_bench.cpp)
target_link_libraries(pkarr_evict_bench PRIVATE iroh_server pkarr PkgConfig::SODIUM
  PkgConfig::PKARR_EVICT_SQLITE)
target_include_directories(pkarr_evict_bench PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
