# The QUIC library (quic/) is pure, so the fuzz build builds it like the codecs.
iroh_fuzz(fuzz_quic_packet SOURCES ${CMAKE_CURRENT_LIST_DIR}/quic_packet_fuzz.cpp LIBS iroh_quic)
# The connection state machine up to the TLS handshake.
iroh_fuzz(fuzz_quic_connection SOURCES ${CMAKE_CURRENT_LIST_DIR}/quic_connection_fuzz.cpp
  LIBS iroh_quic)
