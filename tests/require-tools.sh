#!/usr/bin/env bash
# tests/require-tools.sh COMMAND...: exits 0 when every COMMAND is on PATH (or, given as a path,
# is executable); otherwise prints, for each missing one, the Debian packages that provide it and
# exits 1. tests/require-tools.sh --packages: prints every package of the table, one a line.
#
# The one place that maps the commands the tests and benchmarks run to their Debian packages:
# shell tests run it first (`"$ROOT/tests/require-tools.sh" nginx file || exit 1`), Python tests
# through subprocess. A missing tool is a test failure, never a skip: scripts/setup installs all
# of these (the setup_installs_test_tools ctest checks that its list covers this table), so a
# missing one is an install gap to fix, not an environment to tolerate.
set -uo pipefail

declare -A PACKAGES=(
  [nginx]="nginx-light libnginx-mod-stream" # the recipe's `stream {}` and the benchmark baseline
  [systemd-analyze]=systemd
  [file]=file # CPack's DEB generator
  [cpack]=cmake
  [dpkg-deb]=dpkg
  [dpkg-shlibdeps]=dpkg-dev
  [kdig]=knot-dnsutils
  [dig]=bind9-dnsutils
  [knotd]=knot
  [dnsperf]=dnsperf
  [stun]=stun-client
  [turnutils_stunclient]=coturn
  [turnserver]=coturn
  [prometheus]=prometheus
  [promtool]=prometheus
  [pebble]=pebble
  [node]=nodejs
  [npm]=npm
  [ip]=iproute2
  [socat]=socat
  [curl]=curl
  [openssl]=openssl
  [python3]=python3
  [go]=golang-go
  # Built from tests/interop/qad/main.go by tests/interop/qad.cmake when both are installed.
  [qad_go_client]="golang-go golang-github-lucas-clemente-quic-go-dev"
  [gtlsclient]=ngtcp2-client
  [gdb]=gdb
  [docker]=docker.io
  [dockerd]=docker.io
  [docker-compose]=docker-compose
  [debootstrap]=debootstrap
  [git]=git
  [ctags]=universal-ctags # scripts/size-check (the size_check ctest): function ends
  [flock]=util-linux
  [taskset]=util-linux
  [initdb]=postgresql-15 # /usr/lib/postgresql/15/bin: the PostgreSQL zone store tests
  [pg_ctl]=postgresql-15
  [runuser]=util-linux
)

# What to check besides the packages, for tools the build makes rather than installs.
declare -A NOTES=(
  [qad_go_client]="; with both installed it is built by the target build_qad_go_client (tests/interop/qad.cmake; re-run cmake after installing)"
)

if [ "${1:-}" = --packages ]; then
  for tool in "${!PACKAGES[@]}"; do printf '%s\n' ${PACKAGES[$tool]}; done | sort -u
  exit 0
fi

missing=0
for tool in "$@"; do
  if [[ "$tool" == */* ]]; then
    [ -x "$tool" ] && continue
  else
    command -v "$tool" >/dev/null && continue
  fi
  name="${tool##*/}"
  if [ -n "${PACKAGES[$name]:-}" ]; then
    echo "FAIL: $tool is not installed: Debian package(s) ${PACKAGES[$name]} (scripts/setup installs them)${NOTES[$name]:-}" >&2
  else
    echo "FAIL: $tool is not installed (and tests/require-tools.sh does not name its package: add it there and to scripts/setup)" >&2
  fi
  missing=1
done
exit "$missing"
