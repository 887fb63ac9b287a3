iroh_gtest(config_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp LIBS iroh_config)
target_compile_definitions(config_test PRIVATE IROH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
