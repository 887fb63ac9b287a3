# `cpack -G DEB` in a build directory: a Debian package with the iroh-relay binary, the hardened
# systemd unit, /etc/iroh-relay/relay.yaml (a conffile: the documented example config) and the
# operator files of deploy/ under /usr/share/doc/iroh-relay. Runtime dependencies come from
# dpkg-shlibdeps.
if(NOT TARGET iroh-relay)
  return()
endif()

install(FILES ${PROJECT_SOURCE_DIR}/deploy/iroh-relay.service DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/config/relay.example.yaml DESTINATION /etc/iroh-relay
        RENAME relay.yaml)
install(FILES ${PROJECT_SOURCE_DIR}/config/relay.example.yaml ${PROJECT_SOURCE_DIR}/deploy/README.md
        DESTINATION share/doc/iroh-relay)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/examples ${PROJECT_SOURCE_DIR}/deploy/prometheus
                  ${PROJECT_SOURCE_DIR}/deploy/grafana ${PROJECT_SOURCE_DIR}/deploy/reverse-proxy
        DESTINATION share/doc/iroh-relay)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME iroh-relay)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "iroh-relay maintainers <iroh-relay@example.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "relay, address discovery and address lookup server for iroh endpoints")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
