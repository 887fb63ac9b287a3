# Issue 17 item 2: the lookup HTTPS listener's own certificate reloads on SIGHUP
# (Daemon::reload) and when its files change; its bind address waits for a restart.
iroh_gtest(lookup_reload_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/lookup_reload_test.cpp
  LIBS iroh_server
  LABELS integration)
target_include_directories(lookup_reload_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
