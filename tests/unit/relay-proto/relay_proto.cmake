iroh_gtest(relay_proto_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_proto_test.cpp
  LIBS relay_proto iroh_encoding)
