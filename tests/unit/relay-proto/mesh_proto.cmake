# The relay mesh link codec (issue 16, docs/mesh.md §4-§5): vectors, round trips, malformed input.
iroh_gtest(mesh_proto_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/mesh_proto_test.cpp LIBS relay_proto)
