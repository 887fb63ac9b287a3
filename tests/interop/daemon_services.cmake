# The iroh-relay binary with its services wired from the config, probed by third-party clients.
if(TARGET iroh-relay)
  # Built by qad.cmake when Debian's quic-go is present; the script fails without it.
  set(daemon_go_client ${CMAKE_CURRENT_BINARY_DIR}/qad-go-client/qad_go_client)
  add_test(NAME interop_daemon_services
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/daemon_services.sh $<TARGET_FILE:iroh-relay> ${daemon_go_client})
  set_tests_properties(interop_daemon_services PROPERTIES LABELS interop TIMEOUT 180 RUN_SERIAL TRUE)
endif()
