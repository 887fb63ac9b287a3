iroh_gtest(pkarr_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/pkarr_test.cpp
  LIBS pkarr PkgConfig::SODIUM iroh_encoding)
