#!/usr/bin/env bash
# Relay command for run.sh's "restart" variant (runs INSIDE the relay's namespace): starts the
# relay, and when $SHARED/restart-request appears stops it with SIGTERM, starts it again on the
# same address and touches $SHARED/restarted once it accepts TCP again. Exits with the relay.
# A relay that ignores SIGTERM for 10 s is killed and $SHARED/relay-shutdown-hung marks the run
# failed (with gdb installed, its threads' backtraces go to relay-hang-backtrace.txt).
#   relay-supervisor.sh <iroh-relay> <config.yaml> <ip> <port>
set -uo pipefail
RELAY_BIN="$1" CONFIG="$2" IP="$3" PORT="$4"
: "${SHARED:?runs under netns-pair.sh, which sets SHARED}"

"$RELAY_BIN" --config "$CONFIG" &
relay=$!
for _ in $(seq 1 3000); do   # at most ~300 s
  [ -e "$SHARED/restart-request" ] && break
  kill -0 "$relay" 2>/dev/null || { wait "$relay"; rc=$?; echo "supervisor: relay exited with $rc before the restart" >&2; exit 1; }
  sleep 0.1
done
[ -e "$SHARED/restart-request" ] || { kill "$relay"; exit 1; }

echo "supervisor: $(date -u +%FT%T.%3NZ) stopping the relay (SIGTERM)" >&2
kill -TERM "$relay"
for _ in $(seq 1 100); do kill -0 "$relay" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$relay" 2>/dev/null; then
  echo "supervisor: relay still running 10 s after SIGTERM, killing it" >&2
  touch "$SHARED/relay-shutdown-hung"
  if command -v gdb >/dev/null; then   # evidence for whoever fixes the shutdown
    timeout 60 gdb -p "$relay" -batch -ex 'thread apply all bt' >"$SHARED/relay-hang-backtrace.txt" 2>&1
    echo "supervisor: backtraces of the hung relay in relay-hang-backtrace.txt" >&2
  fi
  kill -9 "$relay"
fi
wait "$relay"
rc=$?
echo "supervisor: $(date -u +%FT%T.%3NZ) relay exited with status $rc; starting it again" >&2

"$RELAY_BIN" --config "$CONFIG" &
relay=$!
for _ in $(seq 1 150); do
  if timeout 1 bash -c "exec 3<>/dev/tcp/$IP/$PORT" 2>/dev/null; then
    echo "supervisor: $(date -u +%FT%T.%3NZ) relay accepting again" >&2
    touch "$SHARED/restarted"
    break
  fi
  kill -0 "$relay" 2>/dev/null || { wait "$relay"; rc=$?; echo "supervisor: restarted relay exited with $rc" >&2; exit 1; }
  sleep 0.1
done
wait "$relay"
