# The QUIC library (quic/): RFC 9001 Appendix A vectors, spec §12.4 vectors, malformed input,
# credentials and the TLS session against the pure library.
iroh_gtest(quic_packet_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/quic_packet_test.cpp
  LIBS iroh_quic iroh_encoding)
iroh_gtest(quic_tls_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/quic_tls_test.cpp LIBS iroh_quic)
