iroh_gtest(pkarr_test SOURCES unit/pkarr_test.cpp LIBS pkarr PkgConfig::SODIUM)
