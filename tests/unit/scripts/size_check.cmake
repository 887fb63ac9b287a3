# No source file over ~700 lines and no function over ~80 outside the allowlist of tables and
# known debts (issue 14; scripts/size-check, scripts/size-check.allow): a new oversized one, or an
# allowlisted one that grew, fails this test and is named with its size. The test first runs the
# check on a made-up tree (size_check_test.sh), then on this one.
add_test(NAME size_check
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/size_check_test.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(size_check PROPERTIES LABELS unit TIMEOUT 60)
