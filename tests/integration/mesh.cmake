# The relay mesh (issue 16, docs/mesh.md): in-process nodes on 127.0.0.1 linked by mesh.peers;
# RelayClient endpoints homed on different nodes, wrong key, restart, three nodes, duplicate id.
iroh_gtest(mesh_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/mesh_test.cpp
  LIBS iroh_client iroh_server LABELS integration)
# log.hpp is a private header of the server library.
target_include_directories(mesh_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
