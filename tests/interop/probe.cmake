# iroh-relay-client (probe, publish/resolve, sealed send/listen) against the iroh-relay binary.
# --dev uses fixed ports: RUN_SERIAL.
if(TARGET iroh-relay AND TARGET iroh-relay-client)
  set(probe_go_client ${CMAKE_CURRENT_BINARY_DIR}/qad-go-client/qad_go_client)
  add_test(NAME interop_client_probe
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/probe.sh $<TARGET_FILE:iroh-relay>
            $<TARGET_FILE:iroh-relay-client> ${probe_go_client})
  set_tests_properties(interop_client_probe PROPERTIES LABELS interop TIMEOUT 300 RUN_SERIAL TRUE)
endif()
