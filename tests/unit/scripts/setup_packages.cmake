# scripts/setup installs every package tests/require-tools.sh names for the tools the tests call,
# and a missing tool fails with its package named (setup_packages_test.sh).
add_test(NAME setup_installs_test_tools
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/setup_packages_test.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(setup_installs_test_tools PROPERTIES LABELS unit TIMEOUT 60)
