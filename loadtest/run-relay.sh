#!/usr/bin/env bash
# loadtest/run-relay.sh BUILD_DIR [relay_throughput options...]
# Runs the relay benchmarks from an existing build (it builds nothing) and prints their figures:
# relay vs socat throughput and the relay's RSS per idle client. Benchmarks print; they never
# fail CI, so this exits non-zero only when a benchmark could not run at all.
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: loadtest/run-relay.sh BUILD_DIR [relay_throughput options]" >&2
  exit 2
fi
build="$(cd "$1" && pwd)"
shift
relay="$build/server/iroh-relay"
for f in "$relay" "$build/loadtest/relay_throughput" "$build/loadtest/relay_idle_rss"; do
  if [ ! -x "$f" ]; then
    echo "run-relay.sh: $f missing; build the targets iroh-relay relay_throughput relay_idle_rss" >&2
    exit 2
  fi
done
"$(dirname "${BASH_SOURCE[0]}")/../tests/require-tools.sh" socat || exit 2

# 10,000 clients need 10,000 sockets on each side; the relay inherits the limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

status=0
echo "== relay_throughput"
timeout 300 "$build/loadtest/relay_throughput" "$relay" "$@" || status=1
echo
echo "== relay_idle_rss"
timeout 600 "$build/loadtest/relay_idle_rss" "$relay" --clients="${IROH_IDLE_CLIENTS:-10000}" || status=1
exit $status
