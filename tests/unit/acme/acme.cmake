# ACME client building blocks (server/src/acme/): JWS, JWK thumbprint, CSR, cache, config keys.
iroh_gtest(acme_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/acme_test.cpp
  LIBS iroh_server nlohmann_json::nlohmann_json OpenSSL::SSL OpenSSL::Crypto)
target_include_directories(acme_test PRIVATE ${PROJECT_SOURCE_DIR}/server/src)
