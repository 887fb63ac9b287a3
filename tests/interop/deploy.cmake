# deploy/: nginx recipe, systemd unit, Grafana dashboard (deploy_files.sh) and the .deb (CPack).
if(TARGET iroh-relay)
  add_test(NAME deploy_files
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/deploy_files.sh ${PROJECT_SOURCE_DIR} $<TARGET_FILE:iroh-relay>)
  set_tests_properties(deploy_files PROPERTIES LABELS interop TIMEOUT 120)
  add_test(NAME deploy_deb_package
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/deb_package.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(deploy_deb_package PROPERTIES LABELS interop TIMEOUT 600)
endif()
