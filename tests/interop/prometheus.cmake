# Real Prometheus tooling against the iroh-relay binary and the files in deploy/.
if(TARGET iroh-relay)
  add_test(NAME interop_prometheus
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/prometheus_test.py
            --relay $<TARGET_FILE:iroh-relay> --deploy ${PROJECT_SOURCE_DIR}/deploy)
  set_tests_properties(interop_prometheus PROPERTIES LABELS interop TIMEOUT 300)
endif()
# promtool: the scrape config, the alert rules and their unit tests (deploy/prometheus/).
add_test(NAME deploy_prometheus_rules
  COMMAND sh -c "${PROJECT_SOURCE_DIR}/tests/require-tools.sh promtool && promtool check config prometheus.yml && promtool check rules alerts.yml && promtool test rules alerts_test.yml"
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/prometheus)
set_tests_properties(deploy_prometheus_rules PROPERTIES LABELS interop TIMEOUT 120)
