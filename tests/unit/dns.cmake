# The DNS engine is pure (pkarr + libknot), so its test compiles it directly instead of linking
# the whole server library.
iroh_gtest(dns_test SOURCES unit/dns_test.cpp ${PROJECT_SOURCE_DIR}/server/src/dns/dns_resolver.cpp
  LIBS pkarr)
target_include_directories(dns_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
