# Pipelined requests of a HttpRouter::Pipelining::Concurrent route (PUT /pkarr, issue 15 item 7):
# handled concurrently, answered in request order, a bounded number in flight per connection.
iroh_gtest(http_pipeline_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/http_pipeline_test.cpp
  LIBS iroh_server
  LABELS integration)
