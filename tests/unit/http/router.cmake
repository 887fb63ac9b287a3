# The HTTP router and the request-target helpers (server/include/iroh/server/http_router.hpp).
iroh_gtest(http_router_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/router_test.cpp LIBS iroh_server)
