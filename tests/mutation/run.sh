#!/usr/bin/env bash
# Mutation check for issue 18 (not run in CI): plants each defect of plant.py, one at a time, in a
# scratch clone of this repository, rebuilds what the defect's tests need (ccache keeps this
# cheap), runs those tests and prints a table: defect -> the tests that failed (caught it).
# A first run without any defect must pass (else exit 2), or the table means nothing.
#
# usage: tests/mutation/run.sh [--rev REV] [--only NAME[,NAME...]] [--no-interop] [--keep]
#   --rev REV     what to clone (default HEAD of this checkout; uncommitted changes are not seen)
#   --only        run only these defects (names: tests/mutation/plant.py --list)
#   --no-interop  leave out the interop tests (STUN clients, probe, iroh; iroh needs root + netns)
#   --keep        keep the scratch clone (/tmp/iroh-mutation.*) for a look at the logs
# Exit status: 0 if every planted defect was caught by at least one test.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
REV=HEAD ONLY="" INTEROP=1 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rev) REV="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --no-interop) INTEROP=0; shift ;;
    --keep) KEEP=1; shift ;;
    *) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done

# defect -> build targets and the ctest regex of the tests meant to catch it (plus neighbours).
declare -A TARGETS REGEX
TARGETS[auth-header-unverified]="guards_test relay_server_test hardening_test"
REGEX[auth-header-unverified]='AuthHeader|RelayServer|HardeningTls'
TARGETS[pkarr-204-before-commit]="guards_test pkarr_store_test"
REGEX[pkarr-204-before-commit]='PkarrCommit|PkarrStoreTest'
TARGETS[rx-limit-no-slowdown]="guards_test relay_server_test"
REGEX[rx-limit-no-slowdown]='RelayRxLimit|RelayServerRateLimit'
TARGETS[reload-cert-error-ignored]="guards_test hardening_test"
REGEX[reload-cert-error-ignored]='ReloadAllOrNothing|HardeningReload|HardeningTls'
TARGETS[reload-service-rejection-ignored]="guards_test hardening_test"
REGEX[reload-service-rejection-ignored]='ReloadAllOrNothing|HardeningReload|HardeningTls'
TARGETS[stun-xor-port-off-by-one]="stun_test stun_service_test"
REGEX[stun-xor-port-off-by-one]='^Stun|^stun'
TARGETS[pong-disabled]="relay_server_test"
REGEX[pong-disabled]='RelayServerTest\.Ping'
if [ "$INTEROP" = 1 ]; then
  TARGETS[stun-xor-port-off-by-one]+=" stun_test_server iroh-relay iroh-relay-client"
  REGEX[stun-xor-port-off-by-one]+='|interop_stun_clients|interop_client_probe'
  TARGETS[pong-disabled]+=" iroh-relay"
  REGEX[pong-disabled]+='|interop_iroh_pong'
fi

names="$(python3 "$HERE/plant.py" --list | cut -f1)"
[ -n "$ONLY" ] && names="$(tr ',' '\n' <<<"$ONLY")"

SCRATCH="$(mktemp -d /tmp/iroh-mutation.XXXXXX)"
cleanup() { [ "$KEEP" = 1 ] && echo "scratch clone kept: $SCRATCH" >&2 || rm -rf "$SCRATCH"; }
trap cleanup EXIT
sha="$(git -C "$REPO" rev-parse --verify "$REV^{commit}")" || { echo "unknown revision $REV" >&2; exit 2; }
git clone -q --no-hardlinks --no-checkout "$REPO" "$SCRATCH/src" &&
  git -C "$SCRATCH/src" fetch -q "$REPO" "$sha" && git -C "$SCRATCH/src" checkout -q --detach "$sha" ||
  { echo "cannot clone $REPO at $REV" >&2; exit 2; }
echo "== scratch clone of $sha in $SCRATCH/src" >&2
SRC="$SCRATCH/src" BUILD="$SCRATCH/src/build"
# The iroh interop needs the npm binding that scripts/setup installed into this checkout.
[ -d "$REPO/tests/interop/iroh/node_modules" ] &&
  ln -s "$REPO/tests/interop/iroh/node_modules" "$SRC/tests/interop/iroh/node_modules"
export CCACHE_BASEDIR="$SRC" CCACHE_NOHASHDIR=1
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >"$SCRATCH/cmake.log" 2>&1 ||
  { tail -n 20 "$SCRATCH/cmake.log"; exit 2; }
jobs="${IROH_BUILD_JOBS:-2}"

# run_tests TARGETS REGEX LOG: builds the targets, runs the tests; prints the failed tests.
run_tests() {
  # shellcheck disable=SC2086
  if ! cmake --build "$BUILD" -j "$jobs" --target $1 >"$3.build" 2>&1; then
    echo "BUILD-FAILED(see $3.build)"
    return
  fi
  (cd "$BUILD" && timeout 1800 ctest -R "$2" --output-on-failure >"$3" 2>&1)
  grep -E '^\s*[0-9]+ - .* \((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception|Not Run)' "$3" |
    sed -E 's/^\s*[0-9]+ - (.*) \((.*)\)$/\1/; s/  # GetParam\(\).*//' | tr '\n' ' '
}

# Baseline: every test of every defect passes on the unmodified clone.
all_targets="" all_regex=""
for name in $names; do
  all_targets+=" ${TARGETS[$name]}"
  all_regex+="${all_regex:+|}${REGEX[$name]}"
done
all_targets="$(tr ' ' '\n' <<<"$all_targets" | sort -u | tr '\n' ' ')"
echo "== baseline: building $all_targets" >&2
base="$(run_tests "$all_targets" "$all_regex" "$SCRATCH/baseline.log")"
if [ -n "$base" ]; then
  KEEP=1
  echo "baseline fails already: $base (see $SCRATCH/baseline.log)" >&2
  exit 2
fi

declare -A CAUGHT
status=0
for name in $names; do
  if ! file="$(python3 "$HERE/plant.py" "$SRC" "$name")"; then
    CAUGHT[$name]="NOT PLANTED (pattern not found; update plant.py)"; status=1; continue
  fi
  echo "== $name: planted in $file" >&2
  start=$(date +%s)
  caught="$(run_tests "${TARGETS[$name]}" "${REGEX[$name]}" "$SCRATCH/$name.log")"
  echo "   $(( $(date +%s) - start )) s; failed: ${caught:-nothing}" >&2
  git -C "$SRC" checkout -q -- .
  if [ -z "$caught" ]; then
    CAUGHT[$name]="MISSED"; status=1; KEEP=1
  else
    CAUGHT[$name]="$caught"
  fi
done

printf '\n| defect | tests that failed (caught it) |\n|---|---|\n'
for name in $names; do
  printf '| %s | %s |\n' "$name" "${CAUGHT[$name]}"
done
exit "$status"
