# relay_openloop: the open-loop relay benchmark (loadtest/run-relay.sh) and, with --check, the CI
# flood test (tests/integration/relay_flood.cmake includes this file so the test also exists in
# builds without the load tests, e.g. the ASan build).
if(NOT TARGET relay_loadtest_harness)
  add_library(relay_loadtest_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/relay_harness.cpp)
endif()
if(NOT TARGET relay_openloop)
  # relay_openloop.cpp: main, --check, --mesh and the report; the rest in relay_openloop/, whose
  # headers the sources include as "relay_openloop/<part>.hpp" (this directory is on the path).
  add_executable(relay_openloop ${CMAKE_CURRENT_LIST_DIR}/relay_openloop.cpp
                                ${CMAKE_CURRENT_LIST_DIR}/relay_openloop/streams.cpp
                                ${CMAKE_CURRENT_LIST_DIR}/relay_openloop/traffic.cpp
                                ${CMAKE_CURRENT_LIST_DIR}/relay_openloop/phase.cpp
                                ${CMAKE_CURRENT_LIST_DIR}/relay_openloop/processes.cpp)
  # The handshake is the integration tests' raw relay client (tests/integration).
  # core/tls.hpp: the relay's TLS suite lists, which the nginx baselines use too (header only).
  target_include_directories(relay_openloop PRIVATE ${CMAKE_CURRENT_LIST_DIR}
                                                    ${PROJECT_SOURCE_DIR}/tests
                                                    ${PROJECT_SOURCE_DIR}/server/src)
  target_link_libraries(relay_openloop PRIVATE relay_proto relay_loadtest_harness iroh_asio)
  # Next to the other benchmarks, wherever the target is defined first.
  set_target_properties(relay_openloop PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/loadtest)
endif()
