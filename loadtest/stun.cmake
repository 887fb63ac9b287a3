# STUN Binding responses per second, ours vs coturn: loadtest/run-stun.sh <build-dir>.
add_executable(stun_bench ${CMAKE_CURRENT_LIST_DIR}/stun_bench.cpp)
target_link_libraries(stun_bench PRIVATE stun)
