iroh_gtest(stun_service_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/stun_service_test.cpp
  LIBS iroh_server stun LABELS integration)
# StunService's header is private to the server library.
target_include_directories(stun_service_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
