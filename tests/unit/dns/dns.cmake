# The DNS answer engine (dns/): spec vectors and malformed input against the pure library.
iroh_gtest(dns_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/dns_test.cpp LIBS iroh_dns pkarr iroh_encoding)
