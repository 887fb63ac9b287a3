# iroh-relay-client <-> npm pkarr 1.3.0 through the iroh-relay binary (free loopback ports).
if(TARGET iroh-relay AND TARGET iroh-relay-client)
  add_test(NAME interop_client_pkarr
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/client_pkarr.sh $<TARGET_FILE:iroh-relay>
            $<TARGET_FILE:iroh-relay-client>)
  set_tests_properties(interop_client_pkarr PROPERTIES LABELS interop TIMEOUT 180)
endif()
