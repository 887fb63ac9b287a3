# The DNS engine is pure (pkarr + libknot): its source is compiled into the target directly, since
# the fuzz build does not build the server library.
iroh_fuzz(fuzz_dns_query SOURCES fuzz/dns_query_fuzz.cpp
  ${PROJECT_SOURCE_DIR}/server/src/dns/dns_resolver.cpp LIBS pkarr)
target_include_directories(fuzz_dns_query PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
