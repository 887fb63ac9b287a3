# docker/: the image built from a debootstrapped Debian 12 base and docker/compose.yaml started
# with docker-compose (tests/docker/run.sh). Needs no build target: the image builds the daemon
# from the sources. About 10 to 20 minutes on a fresh machine (2 cores), a few with the cache.
# Built by qad.cmake when Debian's quic-go is present; the script fails without it.
set(docker_go_client ${CMAKE_CURRENT_BINARY_DIR}/qad-go-client/qad_go_client)
add_test(NAME docker_compose
  COMMAND bash ${PROJECT_SOURCE_DIR}/tests/docker/run.sh ${CMAKE_CURRENT_BINARY_DIR}/docker-test
          ${docker_go_client} $<TARGET_FILE:iroh-relay-client>)
# Exit 77 = skipped, only when IROH_SKIP_DOCKER_TESTS=1 (scripts/fresh-check: no docker in docker).
set_tests_properties(docker_compose PROPERTIES LABELS "interop;docker" TIMEOUT 3600 RUN_SERIAL TRUE
                     SKIP_RETURN_CODE 77)
