# Real STUN clients (coturn's turnutils_stunclient, stun-client's `stun`) against StunService,
# served by a small standalone runner until the daemon wiring lands.
add_executable(stun_test_server ${CMAKE_CURRENT_LIST_DIR}/stun_test_server.cpp)
target_link_libraries(stun_test_server PRIVATE iroh_server)
target_include_directories(stun_test_server PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
add_test(NAME interop_stun_clients
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/stun_clients.sh $<TARGET_FILE:stun_test_server>)
set_tests_properties(interop_stun_clients PROPERTIES LABELS interop TIMEOUT 120)
