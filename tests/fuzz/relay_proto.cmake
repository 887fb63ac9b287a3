iroh_fuzz(fuzz_relay_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_proto_frame.cpp LIBS relay_proto)
iroh_fuzz(fuzz_relay_handshake SOURCES ${CMAKE_CURRENT_LIST_DIR}/relay_proto_handshake.cpp
          LIBS relay_proto)
