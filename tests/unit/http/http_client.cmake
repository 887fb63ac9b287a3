# The outgoing HTTP(S) client (server/src/http/http_client.hpp): URLs, deadline, size bound,
# certificate checks and the reuse of its TLS context, against a scripted loopback server.
iroh_gtest(http_client_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/http_client_test.cpp
  LIBS iroh_http iroh_quic OpenSSL::SSL)
