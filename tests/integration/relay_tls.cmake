iroh_gtest(relay_tls_integration_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_tls_test.cpp
  LIBS iroh_server
  LABELS integration)

# The TLS socket's write buffer on its own (server/src/relay/tls_socket.hpp): batching of records
# into one send, the bound when the peer stops reading, a close in the middle of a batch.
iroh_gtest(tls_socket_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tls_socket_test.cpp
  LIBS iroh_server
  LABELS integration)
target_include_directories(tls_socket_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
