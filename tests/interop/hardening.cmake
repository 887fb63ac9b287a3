# The iroh-relay binary under SIGHUP / SIGTERM and its `token` subcommand.
if(TARGET iroh-relay)
  iroh_gtest(hardening_binary_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/hardening_binary_test.cpp
    LIBS relay_proto iroh_asio
    LABELS interop)
  target_compile_definitions(hardening_binary_test PRIVATE
    IROH_RELAY_BINARY="$<TARGET_FILE:iroh-relay>")
  add_dependencies(hardening_binary_test iroh-relay)
endif()

# shared_token access with real iroh endpoints (npm @number0/iroh 1.1.0, relay map authToken):
# the right token is relayed, a wrong one denied (iroh_shared_token.sh).
if(TARGET iroh-relay)
  add_test(NAME interop_iroh_shared_token
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/iroh_shared_token.sh $<TARGET_FILE:iroh-relay>)
  set_tests_properties(interop_iroh_shared_token PROPERTIES LABELS interop TIMEOUT 600
    RUN_SERIAL TRUE)
endif()
