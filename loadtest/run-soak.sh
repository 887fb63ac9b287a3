#!/usr/bin/env bash
# loadtest/run-soak.sh BUILD_DIR [--minutes N] [soak options...]
# The soak of issue 19 item 11 from an existing release build (it builds nothing): iroh-relay on
# CPU 0, the soak driver on CPU 1 (with 2+ CPUs), relay churn + pkarr PUTs + DNS + DoH at a
# modest steady rate for N minutes (default 30), a sample line every 10 s and the RSS / fd slope
# at the end. Exit status: the driver's (1 = RSS not flat within +-5 % after the warm-up, fds
# growing, or the daemon died; 2 = could not run). Not part of CI.
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: loadtest/run-soak.sh BUILD_DIR [--minutes N] [soak options]" >&2
  exit 2
fi
build="$(cd "$1" && pwd)"
shift
relay="$build/server/iroh-relay"
soak="$build/loadtest/soak"
for f in "$relay" "$soak"; do
  if [ ! -x "$f" ]; then
    echo "run-soak.sh: $f missing; build the targets iroh-relay soak" >&2
    exit 2
  fi
done
# The driver pins itself to --gen-cpu and starts the daemon under `taskset -c <--relay-cpu>`
# (util-linux, essential on Debian); without taskset nothing is pinned.
pin=()
command -v taskset >/dev/null || pin=(--relay-cpu=-1 --gen-cpu=-1)
# Relay clients, HTTP and DNS sockets: a few dozen fds on each side, well inside any default limit.
echo "run-soak.sh: $(date -u +%FT%TZ), $(nproc) CPUs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$soak" "$relay" "${pin[@]}" "$@"
status=$?
echo "run-soak.sh: $(date -u +%FT%TZ), exit $status, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
