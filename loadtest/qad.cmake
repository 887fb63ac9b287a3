# QAD handshakes per second against a running iroh-relay, with a plain TLS 1.3 handshake rate as
# the baseline: loadtest/run-qad.sh <build-dir>. Reuses the QUIC test client of tests/interop/qad/,
# which is built on the QUIC library (quic/).
add_executable(qad_bench ${CMAKE_CURRENT_LIST_DIR}/qad_bench.cpp)
target_link_libraries(qad_bench PRIVATE iroh_quic OpenSSL::Crypto)
target_include_directories(qad_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests/interop)
