# hex and base64url (encoding/): RFC 4648 §10 vectors, malformed input.
iroh_gtest(encoding_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/encoding_test.cpp LIBS iroh_encoding)
