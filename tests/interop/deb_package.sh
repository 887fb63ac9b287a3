#!/usr/bin/env bash
# `cpack -G DEB` in the build directory, then `dpkg-deb` lists the package: it must hold the
# binary, the systemd unit and the example config (a conffile).
# Usage: deb_package.sh <build dir>
set -euo pipefail
BUILD="$1"
# CPack's DEB generator runs `file` on every packaged binary (without it: "CPackDeb: file
# utility is not available") and dpkg-shlibdeps for the Depends line (without it the package
# silently has none).
"$(dirname "${BASH_SOURCE[0]}")/../require-tools.sh" cpack file dpkg-deb dpkg-shlibdeps || exit 1
WORK="$(mktemp -d /tmp/deb-package.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK" >"$WORK/cpack.log" 2>&1 || {
  cat "$WORK/cpack.log"; exit 1; }
DEB=$(ls "$WORK"/*.deb)
echo "package: $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"
dpkg-deb -c "$DEB" >"$WORK/contents"
dpkg-deb -I "$DEB" >"$WORK/info"
fail=0
for path in ./usr/bin/iroh-relay ./usr/lib/systemd/system/iroh-relay.service ./etc/iroh-relay/relay.yaml \
            ./usr/share/doc/iroh-relay/examples/all-in-one.yaml; do
  if grep -q " $path\$" "$WORK/contents"; then echo "ok   $path"; else echo "FAIL $path missing"; fail=1; fi
done
if dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles | grep -qx /etc/iroh-relay/relay.yaml; then
  echo "ok   /etc/iroh-relay/relay.yaml is a conffile"
else echo "FAIL conffiles"; fail=1; fi
grep -E '^ (Package|Version|Depends):' "$WORK/info"
grep -q '^ Depends:.*libc6' "$WORK/info" || { echo "FAIL no shlibs dependencies"; fail=1; }
# The packaged binary runs (stripped, same libraries).
dpkg-deb -x "$DEB" "$WORK/root"
"$WORK/root/usr/bin/iroh-relay" --version || fail=1
exit $fail
