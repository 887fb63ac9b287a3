# QAD server end to end on loopback with the in-tree QUIC test client (tests/interop/qad/).
iroh_gtest(qad_test
  SOURCES ${PROJECT_SOURCE_DIR}/tests/integration/qad_test.cpp
  LIBS iroh_qad OpenSSL::Crypto
  LABELS integration)
target_include_directories(qad_test PRIVATE ${PROJECT_SOURCE_DIR}/tests/interop)
