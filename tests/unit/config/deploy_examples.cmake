iroh_gtest(deploy_examples_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/deploy_examples_test.cpp
  LIBS iroh_config)
target_compile_definitions(deploy_examples_test PRIVATE IROH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
