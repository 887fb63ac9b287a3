# QAD server (server/src/qad/). The tests compile the QAD sources into their own library so they
# do not depend on the rest of iroh_server; tests/integration/qad.cmake and tests/interop/qad.cmake
# reuse it.
pkg_check_modules(QAD_GNUTLS REQUIRED IMPORTED_TARGET gnutls)
file(GLOB qad_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/server/src/qad/*.cpp)
# iroh_core: the log and the new-connection limits of qad_service.cpp.
add_library(qad_for_tests STATIC ${qad_sources})
target_include_directories(qad_for_tests PUBLIC ${PROJECT_SOURCE_DIR}/server/src)
target_link_libraries(qad_for_tests PUBLIC iroh_core relay_proto iroh_asio PkgConfig::QAD_GNUTLS prometheus-cpp::core
                      OpenSSL::Crypto PkgConfig::SODIUM)

# Codec: RFC 9001 Appendix A vectors, spec §12.4 vectors, malformed input.
iroh_gtest(quic_packet_test
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/quic_packet_test.cpp
  LIBS qad_for_tests)

iroh_gtest(quic_tls_test
  SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/quic_tls_test.cpp
  LIBS qad_for_tests)
