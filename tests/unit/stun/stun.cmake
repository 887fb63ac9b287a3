iroh_gtest(stun_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/stun_test.cpp LIBS stun iroh_encoding)
