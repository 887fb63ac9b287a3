iroh_fuzz(fuzz_pkarr_packet SOURCES fuzz/pkarr_packet.cpp LIBS pkarr)
