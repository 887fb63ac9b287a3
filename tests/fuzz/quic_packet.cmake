# The QAD code lives in server/ (not built in the fuzz build), so its sources are compiled in.
iroh_fuzz(fuzz_quic_packet
  SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/quic_packet_fuzz.cpp
          ${PROJECT_SOURCE_DIR}/server/src/qad/quic_crypto.cpp
          ${PROJECT_SOURCE_DIR}/server/src/qad/quic_packet.cpp
  LIBS relay_proto OpenSSL::Crypto)
target_include_directories(fuzz_quic_packet PRIVATE ${PROJECT_SOURCE_DIR}/server/src)

# The connection state machine up to the TLS handshake, with GnuTLS.
pkg_check_modules(QAD_FUZZ_GNUTLS REQUIRED IMPORTED_TARGET gnutls)
iroh_fuzz(fuzz_quic_connection
  SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/quic_connection_fuzz.cpp
          ${PROJECT_SOURCE_DIR}/server/src/qad/quic_crypto.cpp
          ${PROJECT_SOURCE_DIR}/server/src/qad/quic_packet.cpp
          ${PROJECT_SOURCE_DIR}/server/src/qad/quic_tls.cpp
          ${PROJECT_SOURCE_DIR}/server/src/qad/qad_connection.cpp
  LIBS relay_proto OpenSSL::Crypto PkgConfig::QAD_FUZZ_GNUTLS Boost::boost)
target_include_directories(fuzz_quic_connection PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
