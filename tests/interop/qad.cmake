# QAD server against real QUIC clients: Debian's quic-go 0.29 (a small Go program built offline
# from tests/interop/qad/main.go) and ngtcp2's gtlsclient.
find_program(IROH_GO go)
set(qad_go_client ${CMAKE_CURRENT_BINARY_DIR}/qad-go-client/qad_go_client)
# Without Debian's quic-go sources the build goes on and the tests that need the client fail,
# naming the packages (qad_interop_test, daemon_services.sh, probe.sh, tests/docker/run.sh).
if(IROH_GO AND EXISTS /usr/share/gocode/src/github.com/lucas-clemente/quic-go/client.go)
  set(qad_have_quic_go ON)
endif()
if(qad_have_quic_go)
  add_custom_command(OUTPUT ${qad_go_client}
    COMMAND ${CMAKE_COMMAND} -E env GOENV=off GO111MODULE=off GOPATH=/usr/share/gocode
            GOCACHE=${CMAKE_CURRENT_BINARY_DIR}/go-cache
            ${IROH_GO} build -o ${qad_go_client} ${PROJECT_SOURCE_DIR}/tests/interop/qad/main.go
    DEPENDS ${PROJECT_SOURCE_DIR}/tests/interop/qad/main.go
    COMMENT "Building the quic-go QAD test client")
  add_custom_target(build_qad_go_client ALL DEPENDS ${qad_go_client})
endif()

iroh_gtest(qad_interop_test
  SOURCES ${PROJECT_SOURCE_DIR}/tests/interop/qad_interop_test.cpp
  LIBS iroh_qad OpenSSL::Crypto
  LABELS interop)
target_include_directories(qad_interop_test PRIVATE ${PROJECT_SOURCE_DIR}/tests/interop)
target_compile_definitions(qad_interop_test PRIVATE QAD_GO_CLIENT="${qad_go_client}")
if(qad_have_quic_go)
  add_dependencies(qad_interop_test build_qad_go_client)
endif()
