#!/usr/bin/env bash
# Real-client interop: two unmodified iroh 1.0 endpoints (npm @number0/iroh 1.1.0) exchange an
# echo through OUR relay, in two set-ups, each in network namespaces created for the run:
#   solo  : relay and both endpoints in one loopback-only namespace (a direct path may take over
#           once the relay has brokered the connection);
#   split : relay in its own namespace, the endpoints in two others that reach the relay but not
#           each other; the client asserts conn.paths() never selected a non-relay path and that
#           the whole payload left through the relay path;
#   restart (only when asked for): split, then the relay is restarted (SIGTERM, start again) under
#           the open QUIC connection, which must carry a second echo afterwards.
#   pong (only when asked for): split with --idle (default 10 s) behind pong_proxy.py, twice: with
#           the relay's Pongs passed, each endpoint must keep its one relay connection for the whole
#           run (iroh redials when a Ping gets no Pong within 5 s, relay.md §6.5); with the proxy
#           dropping every Pong, the redials must show (proof that the check can fail).
# Usage (root): run.sh <path-to-iroh-relay> [--variant solo|split|restart|pong|all] [--bytes N] [--idle S]
#                      [--port P] [--keep DIR]
#   --port P: the relay's port (default 3340; 80 also exercises iroh's captive-portal check,
#             which always goes to port 80).
#   --idle S: after the first echo the client closes the connection, stays silent S seconds
#             (only the relay keepalive runs), then echoes again over a new connection.
# Env: IROH_INTEROP_EXTRA_CONFIG = extra YAML lines appended to the relay config (e.g.
#      'log_level: debug'); IROH_INTEROP_LOG = iroh log level for the endpoints (Debug, Trace, ...);
#      IROH_INTEROP_PCAP=1 = tcpdump the relay's port into relay.pcap (needs tcpdump; use --keep).
# Exit status 0 only if every variant passed; the last line is "iroh interop: N passed, M failed".
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NETNS="$HERE/../netns-pair.sh"
PORT=3340

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
RELAY_BIN="$1"
shift
VARIANT=all BYTES=$((1024 * 1024 + 4321)) KEEP="" IDLE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) VARIANT="$2"; shift 2 ;;
    --bytes) BYTES="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    --idle) IDLE="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
done
case "$VARIANT" in solo|split|restart|pong|all) ;; *) usage ;; esac
[ "$VARIANT" = pong ] && [ "$IDLE" = 0 ] && IDLE=10
CONNS=1
[ "$IDLE" != 0 ] && CONNS=2
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root (network namespaces)" >&2; exit 2; }
[ -x "$RELAY_BIN" ] || { echo "run.sh: relay binary '$RELAY_BIN' not found or not executable" >&2; exit 2; }
RELAY_BIN="$(cd "$(dirname "$RELAY_BIN")" && pwd)/$(basename "$RELAY_BIN")"
"$HERE/../../require-tools.sh" node ip || exit 2
[ -d "$HERE/node_modules/@number0/iroh" ] ||
  { echo "run.sh: $HERE/node_modules missing (scripts/setup installs it)" >&2; exit 2; }

if [ -n "$KEEP" ]; then WORK="$KEEP"; mkdir -p "$WORK"; else WORK="$(mktemp -d /tmp/iroh-interop.XXXXXX)"; fi
q() { printf '%q' "$1"; }
LOG_Q=""
[ -n "${IROH_INTEROP_LOG:-}" ] && LOG_Q="--log $(q "$IROH_INTEROP_LOG")"

write_config() { # write_config FILE BIND_ADDR DATA_DIR
  mkdir -p "$3"
  cat >"$1" <<YAML
# Written by tests/interop/iroh/run.sh: plain-HTTP relay only, everything else off.
http_bind_addr: "$2"
enable_metrics: false
enable_stun: false
data_dir: "$3"
${IROH_INTEROP_EXTRA_CONFIG:-}
YAML
}

# One verdict line -> "online=..ms connected=..ms ..." (empty if the file has no JSON).
summarize() {
  node -e '
    const fs = require("fs"); let v
    try { v = JSON.parse(fs.readFileSync(process.argv[1], "utf8").trim().split("\n").pop()) } catch { process.exit(0) }
    const t = v.timings_ms || {}, p = v.paths || {}
    const sel = (p.paths || []).filter((x) => x.selected).map((x) => (x.relay ? "relay" : "direct:" + x.remote))
    const relayTx = (p.paths || []).filter((x) => x.relay).reduce((s, x) => s + (x.tx_bytes || 0), 0)
    if (!v.ok) { console.log(`FAILED at ${v.stage}: ${v.error}`); process.exit(0) }
    console.log(`online=${t.online}ms connected=${t.connected}ms transferred=${t.transferred}ms`,
      `bytes=${v.bytes_echoed}/${v.bytes_sent} ${v.mbit_per_s} Mbit/s (both directions)`,
      `selected=[${sel.join(",")}] relay_path_tx=${relayTx}`,
      (v.rounds || []).length > 1 && v.restart_to_echo_ms ? `echo on the same connection ${v.restart_to_echo_ms} ms after asking for the relay restart` : "",
      (v.rounds || []).length > 1 && !v.restart_to_echo_ms ? `after-idle echo on a new connection ${v.rounds[1].bytes_echoed}/${v.rounds[1].bytes_sent} ok` : "")' "$1"
}

check_server() { # check_server FILE -> 0 if the echo server's verdict says ok
  [ -s "$1" ] && grep -q '"ok":true' "$1"
}

show_logs() { # show_logs DIR
  if [ -s "$1/relay.pcap" ] && command -v tshark >/dev/null; then
    python3 "$HERE/pcap_summary.py" "$1/relay.pcap" --port "$PORT" >"$1/relay.pcap.txt" 2>&1
    echo "----- relay.pcap decoded (head; full: $1/relay.pcap.txt) -----" >&2
    head -n 80 "$1/relay.pcap.txt" | cut -c1-400 >&2
  fi
  for f in a.err a.json b.json b.log relay.log relay-hang-backtrace.txt; do
    [ -s "$1/$f" ] || continue
    echo "----- $f (tail) -----" >&2
    tail -n 40 "$1/$f" | cut -c1-2000 >&2
  done
}

PCAP_CMD=""
if [ -n "${IROH_INTEROP_PCAP:-}" ]; then
  command -v tcpdump >/dev/null || { echo "run.sh: IROH_INTEROP_PCAP needs tcpdump" >&2; exit 2; }
  PCAP_CMD="tcpdump -i any -U -s 0 -w \"\$SHARED/relay.pcap\" tcp port $PORT 2>\"\$SHARED/tcpdump.log\" & sleep 0.5;"
fi

passed=0 failed=0
run_variant() { # run_variant NAME
  local name="$1" dir="$WORK/$1" rc start
  rm -rf "$dir"
  start=$(date +%s%N)
  if [ "$name" = solo ]; then
    write_config "$WORK/$name.yaml" "127.0.0.1:$PORT" "$WORK/$name-data"
    "$NETNS" --timeout $((150 + IDLE)) --keep "$dir" \
      --solo "bash $(q "$HERE/solo.sh") $(q "$RELAY_BIN") $(q "$WORK/$name.yaml") $PORT $CONNS --bytes $BYTES --idle $IDLE $LOG_Q" \
      >"$WORK/$name.out" 2>"$WORK/$name.err"
    rc=$?
  else
    write_config "$WORK/$name.yaml" "10.77.0.1:$PORT" "$WORK/$name-data"
    local echo_js relay_cmd extra=""
    echo_js="$(q "$HERE/echo.mjs")"
    relay_cmd="exec $(q "$RELAY_BIN") --config $(q "$WORK/$name.yaml")"
    if [ "$name" = pong ] || [ "$name" = pong-dropped ]; then
      # The proxy owns RELAY_IP:PORT; the relay listens behind it on loopback.
      write_config "$WORK/$name.yaml" "127.0.0.1:$((PORT + 1))" "$WORK/$name-data"
      local drop=""
      [ "$name" = pong-dropped ] && drop="--drop-pong"
      relay_cmd="python3 $(q "$HERE/pong_proxy.py") --listen 10.77.0.1:$PORT --to 127.0.0.1:$((PORT + 1)) --stats \"\$SHARED/pong.json\" $drop & exec $(q "$RELAY_BIN") --config $(q "$WORK/$name.yaml")"
    fi
    if [ "$name" = restart ]; then
      relay_cmd="exec bash $(q "$HERE/relay-supervisor.sh") $(q "$RELAY_BIN") $(q "$WORK/$name.yaml") 10.77.0.1 $PORT"
      extra="--restart-request \"\$SHARED/restart-request\" --restarted-marker \"\$SHARED/restarted\""
    fi
    "$NETNS" --timeout $((120 + IDLE)) --keep "$dir" --relay-port "$PORT" \
      --relay-cmd "$PCAP_CMD $relay_cmd" \
      --b-cmd "exec node $echo_js --role server --relay \"\$RELAY_URL\" --id-file \"\$SHARED/b.id\" --result-file \"\$SHARED/b.json\" --relay-only --max-conns $CONNS --idle $IDLE $LOG_Q" \
      --a-cmd "exec node $echo_js --role client --relay \"\$RELAY_URL\" --id-file \"\$SHARED/b.id\" --result-file \"\$SHARED/a.json\" --relay-only --bytes $BYTES --idle $IDLE $extra $LOG_Q" \
      >"$WORK/$name.out" 2>"$WORK/$name.err"
    rc=$?
  fi
  local ms=$((($(date +%s%N) - start) / 1000000))
  local secs="$((ms / 1000)).$((ms % 1000 / 100))"
  local client_summary server_ok=0
  client_summary="$(summarize "$dir/a.json")"
  check_server "$dir/b.json" && server_ok=1
  if [ -e "$dir/relay-shutdown-hung" ]; then
    client_summary="the relay did not exit within 10 s of SIGTERM (see relay.log, relay-hang-backtrace.txt); $client_summary"
    [ "$rc" = 0 ] && rc=6
  fi
  if [ "$name" = pong ] || [ "$name" = pong-dropped ]; then
    # One relay connection per endpoint for the whole run, or the Pongs did not arrive.
    local pong_summary one_each=0
    pong_summary="$(cat "$dir/pong.json" 2>/dev/null)"
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); u=s["upgrades"]
sys.exit(0 if len(u) == 2 and all(n == 1 for n in u.values()) and s["pongs_forwarded"] > 0 else 1)' \
      "$dir/pong.json" 2>/dev/null && one_each=1
    client_summary="proxy: ${pong_summary:-no stats}; $client_summary"
    if [ "$name" = pong-dropped ]; then
      # Expected to fail the check: report PASS when the missing Pongs were detected.
      if [ "$one_each" = 1 ] && [ "$rc" = 0 ] && [ "$server_ok" = 1 ]; then
        rc=7 server_ok=0
        client_summary="Pongs dropped but not detected (no redial): $client_summary"
      else
        rc=0 server_ok=1
        client_summary="missing Pongs detected: $client_summary"
      fi
    elif [ "$one_each" = 0 ]; then
      [ "$rc" = 0 ] && rc=7
      client_summary="an endpoint redialled the relay (Pong missing?): $client_summary"
    fi
  fi
  if [ "$rc" = 0 ] && [ "$server_ok" = 1 ]; then
    passed=$((passed + 1))
    echo "iroh interop [$name]: PASS in ${secs}s: $client_summary"
  else
    failed=$((failed + 1))
    echo "iroh interop [$name]: FAIL (client exit $rc, server verdict $([ $server_ok = 1 ] && echo ok || echo 'not ok')) in ${secs}s: ${client_summary:-no client verdict}"
    cat "$WORK/$name.err" >&2
    show_logs "$dir"
  fi
}

[ "$VARIANT" = all ] || [ "$VARIANT" = solo ] && run_variant solo
[ "$VARIANT" = all ] || [ "$VARIANT" = split ] && run_variant split
[ "$VARIANT" = restart ] && run_variant restart
[ "$VARIANT" = pong ] && { run_variant pong; run_variant pong-dropped; }

if [ "$failed" = 0 ] && [ -z "$KEEP" ]; then rm -rf "$WORK"; else echo "run.sh: logs in $WORK" >&2; fi
echo "iroh interop: $passed passed, $failed failed"
[ "$failed" = 0 ]
