# The relay's WebSocket frame header parser is header-only (server/src/relay/ws_framing.hpp).
iroh_fuzz(fuzz_ws_framing SOURCES ${CMAKE_CURRENT_LIST_DIR}/ws_framing_fuzz.cpp)
target_include_directories(fuzz_ws_framing PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
