iroh_fuzz(fuzz_stun SOURCES ${CMAKE_CURRENT_LIST_DIR}/stun_fuzz.cpp LIBS stun)
