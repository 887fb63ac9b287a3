#!/usr/bin/env bash
# loadtest/run-relay.sh BUILD_DIR [relay_openloop options...]
# Runs the relay benchmarks from an existing build (it builds nothing) and prints their figures:
#   1. relay_openloop: open-loop flood through iroh-relay vs nginx `stream` on the same bytes
#      (single frames, batch frames, TLS vs nginx `ssl`), overload at 4x/16x the relay's peak,
#      bystander one-way delay/loss and GET /ping latency during the flood (issue 13);
#   2. relay_idle_rss: the relay's RSS per idle authenticated client.
# The relay and nginx run pinned to CPU 0, the generator to CPU 1 (when there are 2+ CPUs).
# Benchmarks print; they never fail CI, so this exits non-zero only when one could not run at all.
# Env: IROH_IDLE_CLIENTS (10000) for relay_idle_rss.
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: loadtest/run-relay.sh BUILD_DIR [relay_openloop options]" >&2
  exit 2
fi
build="$(cd "$1" && pwd)"
shift
relay="$build/server/iroh-relay"
for f in "$relay" "$build/loadtest/relay_openloop" "$build/loadtest/relay_idle_rss"; do
  if [ ! -x "$f" ]; then
    echo "run-relay.sh: $f missing; build the targets iroh-relay relay_openloop relay_idle_rss" >&2
    exit 2
  fi
done
"$(dirname "${BASH_SOURCE[0]}")/../tests/require-tools.sh" openssl nginx || exit 2

# 10,000 clients need 10,000 sockets on each side; the relay inherits the limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

pin=()
cpus=(0 1)
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin=(taskset -c 1)
else
  cpus=(-1 -1)
fi

status=0
echo "== relay_openloop (relay + nginx on CPU ${cpus[0]}, generator on CPU ${cpus[1]})"
timeout 900 "${pin[@]}" "$build/loadtest/relay_openloop" "$relay" \
  --relay-cpu="${cpus[0]}" --gen-cpu="${cpus[1]}" "$@" || status=1
echo
echo "== relay_idle_rss"
timeout 600 "$build/loadtest/relay_idle_rss" "$relay" --clients="${IROH_IDLE_CLIENTS:-10000}" || status=1
exit $status
