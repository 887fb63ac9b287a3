#!/usr/bin/env bash
# Runs INSIDE a loopback-only namespace (started by run.sh via `netns-pair.sh --solo`): our relay
# on 127.0.0.1, then the echo server, then the echo client in the foreground. Logs and verdicts go
# to $SHARED; the client's verdict line goes to stdout; the exit status is the client's. The relay
# must then exit within 10 s of SIGTERM, else $SHARED/relay-shutdown-hung fails the run.
#   solo.sh <iroh-relay> <config.yaml> <port> <connections> [extra echo.mjs args for both roles]
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RELAY_BIN="$1" CONFIG="$2" PORT="$3" CONNS="$4"
shift 4
: "${SHARED:?solo.sh runs under netns-pair.sh, which sets SHARED}"
URL="http://127.0.0.1:$PORT"

if [ -n "${IROH_INTEROP_PCAP:-}" ]; then
  tcpdump -i lo -U -s 0 -w "$SHARED/relay.pcap" tcp port "$PORT" 2>"$SHARED/tcpdump.log" &
  capture=$!
  sleep 0.5
fi
"$RELAY_BIN" --config "$CONFIG" >"$SHARED/relay.log" 2>&1 &
relay=$!
ready=0
for _ in $(seq 1 150); do
  if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then ready=1; break; fi
  kill -0 "$relay" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "solo: relay not accepting on 127.0.0.1:$PORT; relay log:" >&2
  tail -n 30 "$SHARED/relay.log" >&2
  kill "$relay" 2>/dev/null
  exit 4
fi

node "$HERE/echo.mjs" --role server --relay "$URL" --id-file "$SHARED/b.id" \
  --result-file "$SHARED/b.json" --max-conns "$CONNS" "$@" >"$SHARED/b.log" 2>&1 &
server=$!
node "$HERE/echo.mjs" --role client --relay "$URL" --id-file "$SHARED/b.id" \
  --result-file "$SHARED/a.json" "$@" 2>"$SHARED/a.err"
rc=$?
for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$relay" 2>/dev/null; then
  wait "$relay"
  echo "solo: the relay exited during the test with status $?" | tee -a "$SHARED/relay.log" >&2
  [ "$rc" = 0 ] && rc=5
fi
kill "$server" "$relay" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$relay" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$relay" 2>/dev/null; then
  echo "solo: the relay did not exit within 10 s of SIGTERM" | tee -a "$SHARED/relay.log" >&2
  touch "$SHARED/relay-shutdown-hung"
  if command -v gdb >/dev/null; then
    timeout 60 gdb -p "$relay" -batch -ex 'thread apply all bt' >"$SHARED/relay-hang-backtrace.txt" 2>&1
  fi
  kill -9 "$relay"
fi
wait "$relay" 2>/dev/null
[ -n "${capture:-}" ] && kill "$capture" 2>/dev/null
exit "$rc"
