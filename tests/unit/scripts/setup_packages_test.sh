#!/usr/bin/env bash
# The tool table of tests/require-tools.sh against scripts/setup: every package the table names
# is in setup's list (or is Essential, on every Debian system: dpkg, util-linux), so a fresh
# machine after scripts/setup has every tool a test calls. And require-tools.sh itself: a
# missing tool exits 1 naming its package; present tools exit 0.
# Usage: setup_packages_test.sh <source dir>
set -uo pipefail
SRC="$1"
REQUIRE="$SRC/tests/require-tools.sh"
fail=0

setup_list="$("$SRC/scripts/setup" --list)" || { echo "FAIL scripts/setup --list"; exit 1; }
while read -r pkg; do
  if grep -qx "$pkg" <<<"$setup_list"; then continue; fi
  if [ "$(dpkg-query -W -f='${Essential}' "$pkg" 2>/dev/null)" = yes ]; then continue; fi
  echo "FAIL $pkg (named by tests/require-tools.sh) is not installed by scripts/setup"
  fail=1
done < <("$REQUIRE" --packages)
[ "$fail" = 0 ] && echo "ok   scripts/setup installs all $("$REQUIRE" --packages | wc -l) packages of tests/require-tools.sh"

# A tool that is not on PATH: exit 1, and the message names the Debian packages.
out="$(PATH=/nonexistent /bin/bash "$REQUIRE" nginx qad_go_client 2>&1)"
rc=$?
if [ "$rc" = 1 ] && grep -q 'nginx is not installed: Debian package(s) nginx-light libnginx-mod-stream' <<<"$out" &&
   grep -q 'golang-github-lucas-clemente-quic-go-dev' <<<"$out"; then
  echo "ok   a missing tool fails and names its packages"
else
  echo "FAIL missing tool: exit $rc, output: $out"; fail=1
fi
out="$(/bin/bash "$REQUIRE" /nonexistent/some-tool 2>&1)"
if [ $? = 1 ] && grep -q 'does not name its package' <<<"$out"; then
  echo "ok   an unknown missing tool fails too"
else
  echo "FAIL unknown missing tool: $out"; fail=1
fi
if "$REQUIRE" bash /bin/sh; then echo "ok   present tools pass"; else echo "FAIL present tools"; fail=1; fi
exit "$fail"
