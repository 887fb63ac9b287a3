# The DNS engine is the pure dns/ library, built in the fuzz build like the codecs.
iroh_fuzz(fuzz_dns_query SOURCES fuzz/dns_query_fuzz.cpp LIBS iroh_dns pkarr)
