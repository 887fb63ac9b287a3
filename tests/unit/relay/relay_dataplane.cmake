# The relay data plane's pure parts: send queue and queue budget, WebSocket framing, and the
# client registry (compiled in directly, against fake connections).
iroh_gtest(relay_dataplane_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_dataplane_test.cpp ${PROJECT_SOURCE_DIR}/server/src/relay/client_registry.cpp
  ${PROJECT_SOURCE_DIR}/server/src/relay/workers.cpp
  LIBS iroh_core relay_proto iroh_asio)
target_include_directories(relay_dataplane_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src
  ${PROJECT_SOURCE_DIR}/server/include)
