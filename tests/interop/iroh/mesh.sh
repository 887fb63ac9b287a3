#!/usr/bin/env bash
# Relay mesh with the real client (issue 16 item 5, docs/mesh.md): two iroh-relay nodes serve ONE
# relay URL through an anycast address, and two unmodified iroh 1.0 endpoints (npm @number0/iroh
# 1.1.0, echo.mjs) homed on different nodes reach each other only through the mesh link.
#
#   ns n1: lo 10.99.0.1/32 (ANYCAST)   veth 10.99.1.1/24 -> ns a (10.99.1.2, endpoint A)
#   ns n2: lo 10.99.0.1/32 (ANYCAST)   veth 10.99.2.1/24 -> ns b (10.99.2.2, endpoint B)
#   n1 veth 10.99.9.1/30 <-> n2 veth 10.99.9.2/30: the mesh link, the nodes' own addresses
#   A and B only have a route to 10.99.0.1/32 (via their node); n1 and n2 do not forward. So A
#   reaches only node 1 and B only node 2 under the one relay URL http://10.99.0.1:PORT; A has no
#   route to B, to 10.99.2.0/24 or to the mesh link (and B likewise): no direct or holepunched
#   path can exist, every byte between them crosses node 1 -> mesh link -> node 2.
#
# Phases (each in fresh processes, same namespaces):
#   control: the nodes without `mesh:`: A must come online and then fail to connect to B (the
#            datagrams die at node 1 as unknown_destination), or the set-up proves nothing;
#   mesh:    with `mesh:` (peers = the other node's 10.99.9.x, one psk file): A dials B by
#            (EndpointId, relay URL) and 1 MiB is echoed over the relay path only; then node 2 is
#            restarted (relay-supervisor.sh: SIGTERM, start again) under the open QUIC connection,
#            B redials node 2, the nodes relink, and the same connection must echo again within
#            10 s of node 2 accepting again (issue 16: "traffic resumes within 10 s"). Node 1's
#            /metrics must show datagrams forwarded to node 2.
# Usage (root): mesh.sh <path-to-iroh-relay> [--bytes N] [--port P] [--keep DIR]
# Env: IROH_INTEROP_LOG = iroh log level for the endpoints; IROH_INTEROP_EXTRA_CONFIG = extra YAML
#      lines for both nodes. Exit 0 only if both phases passed; last line "iroh mesh interop: ...".
# SAFETY: the endpoints run only in namespaces created here, which have no default route.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
RELAY_BIN="$1"
shift
BYTES=$((1024 * 1024 + 4321)) PORT=3340 KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bytes) BYTES="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "mesh.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "mesh.sh: must run as root (network namespaces)" >&2; exit 2; }
[ -x "$RELAY_BIN" ] || { echo "mesh.sh: relay binary '$RELAY_BIN' not found or not executable" >&2; exit 2; }
RELAY_BIN="$(cd "$(dirname "$RELAY_BIN")" && pwd)/$(basename "$RELAY_BIN")"
"$HERE/../../require-tools.sh" node ip curl || exit 2
# shellcheck source=../netns-lib.sh
. "$HERE/../netns-lib.sh"
[ -d "$HERE/node_modules/@number0/iroh" ] ||
  { echo "mesh.sh: $HERE/node_modules missing (scripts/setup installs it)" >&2; exit 2; }

ANY=10.99.0.1
URL="http://$ANY:$PORT"
P="im$$"   # unique per run: namespaces im<pid>n1/n2/a/b, links im<pid>m1/m2/1a/a1/2b/b2
NS1="${P}n1" NS2="${P}n2" NSA="${P}a" NSB="${P}b"
if [ -n "$KEEP" ]; then WORK="$KEEP"; mkdir -p "$WORK"; else WORK="$(mktemp -d /tmp/iroh-mesh.XXXXXX)"; fi
cleanup() {
  local rc=$?
  set +e
  netns_delete_all
  [ -z "$KEEP" ] && [ "$rc" = 0 ] && rm -rf "$WORK"
  [ "$rc" != 0 ] && echo "mesh.sh: logs in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup() {
  netns_make "$NS1" && netns_make "$NS2" && netns_make "$NSA" && netns_make "$NSB" || return 1
  ip -n "$NS1" addr add "$ANY/32" dev lo && ip -n "$NS2" addr add "$ANY/32" dev lo || return 1
  netns_veth "$NS1" "${P}m1" 10.99.9.1/30 "$NS2" "${P}m2" 10.99.9.2/30 || return 1
  netns_veth "$NS1" "${P}1a" 10.99.1.1/24 "$NSA" "${P}a1" 10.99.1.2/24 || return 1
  netns_veth "$NS2" "${P}2b" 10.99.2.1/24 "$NSB" "${P}b2" 10.99.2.2/24 || return 1
  ip -n "$NSA" route add "$ANY/32" via 10.99.1.1 && ip -n "$NSB" route add "$ANY/32" via 10.99.2.1 || return 1
  ip netns exec "$NS1" sysctl -qw net.ipv4.ip_forward=0 && ip netns exec "$NS2" sysctl -qw net.ipv4.ip_forward=0
  # The isolation the test relies on: each endpoint routes to the anycast address only.
  netns_no_route "$NSA" 10.99.2.2 10.99.9.1 10.99.9.2 1.1.1.1 &&
    netns_no_route "$NSB" 10.99.1.2 10.99.9.1 10.99.9.2 1.1.1.1
}

write_config() { # write_config FILE DATA_DIR MESH_PEER|""
  mkdir -p "$2"
  {
    echo "# Written by tests/interop/iroh/mesh.sh"
    echo "http_bind_addr: \"0.0.0.0:$PORT\""   # the anycast address and the mesh link address
    echo "enable_metrics: true"
    echo "metrics_bind_addr: \"127.0.0.1:9090\""
    echo "enable_stun: false"
    echo "data_dir: \"$2\""
    if [ -n "$3" ]; then
      echo "mesh:"
      echo "  peers: [\"$3\"]"
      echo "  psk_file: \"$WORK/mesh.key\""
    fi
    [ -n "${IROH_INTEROP_EXTRA_CONFIG:-}" ] && echo "$IROH_INTEROP_EXTRA_CONFIG"
  } >"$1"
}

metric() { # metric NS NAME_PREFIX -> sum of the matching samples on that node's /metrics
  netns_run "$1" 5 curl -sf "http://127.0.0.1:9090/metrics" 2>/dev/null |
    awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}

wait_tcp() { # wait_tcp NS : until the anycast relay port accepts from NS (15 s)
  for _ in $(seq 1 150); do
    netns_run "$1" 2 bash -c "exec 3<>/dev/tcp/$ANY/$PORT" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

LOG_Q=()
[ -n "${IROH_INTEROP_LOG:-}" ] && LOG_Q=(--log "$IROH_INTEROP_LOG")

show_logs() {
  local f
  for f in a.err a.json b.json b.log node1.log node2.log; do
    [ -s "$1/$f" ] || continue
    echo "----- $f (tail) -----" >&2
    tail -n 30 "$1/$f" | cut -c1-2000 >&2
  done
}

passed=0 failed=0
report() { # report PHASE OK MESSAGE
  if [ "$2" = 1 ]; then
    passed=$((passed + 1)); echo "iroh mesh interop [$1]: PASS: $3"
  else
    failed=$((failed + 1)); echo "iroh mesh interop [$1]: FAIL: $3"; show_logs "$WORK/$1"
  fi
}

run_phase() { # run_phase control|mesh
  local name="$1" dir="$WORK/$1" p1="" p2=""
  mkdir -p "$dir"
  [ "$name" = mesh ] && p1="http://10.99.9.2:$PORT" p2="http://10.99.9.1:$PORT"
  write_config "$dir/node1.yaml" "$dir/data1" "$p1"
  write_config "$dir/node2.yaml" "$dir/data2" "$p2"
  netns_run "$NS1" 300 "$RELAY_BIN" --config "$dir/node1.yaml" >"$dir/node1.log" 2>&1 &
  NETNS_BG+=($!)
  if [ "$name" = mesh ]; then   # node 2 restarts when A asks for it ($dir/restart-request)
    netns_run "$NS2" 300 env SHARED="$dir" bash "$HERE/relay-supervisor.sh" "$RELAY_BIN" "$dir/node2.yaml" \
      "$ANY" "$PORT" >"$dir/node2.log" 2>&1 &
  else
    netns_run "$NS2" 300 "$RELAY_BIN" --config "$dir/node2.yaml" >"$dir/node2.log" 2>&1 &
  fi
  NETNS_BG+=($!)
  if ! wait_tcp "$NSA" || ! wait_tcp "$NSB"; then
    report "$name" 0 "a node does not accept on $URL"; netns_stop_all; return
  fi
  if [ "$name" = mesh ]; then   # both links up before the endpoints come (bounded, 15 s)
    local up=0
    for _ in $(seq 1 75); do
      [ "$(metric "$NS1" relayserver_mesh_peers_up)" = 1 ] && [ "$(metric "$NS2" relayserver_mesh_peers_up)" = 1 ] &&
        { up=1; break; }
      sleep 0.2
    done
    [ "$up" = 1 ] || { report "$name" 0 "mesh links not up after 15 s"; netns_stop_all; return; }
  fi

  netns_run "$NSB" 200 node "$HERE/echo.mjs" --role server --relay "$URL" --id-file "$dir/b.id" \
    --result-file "$dir/b.json" --relay-only "${LOG_Q[@]}" >"$dir/b.log" 2>&1 &
  NETNS_BG+=($!)
  local a_args=(--role client --relay "$URL" --id-file "$dir/b.id" --result-file "$dir/a.json"
    --relay-only --bytes "$BYTES" "${LOG_Q[@]}")
  if [ "$name" = control ]; then
    a_args+=(--connect-timeout 15)
  else
    a_args+=(--restart-request "$dir/restart-request" --restarted-marker "$dir/restarted" --resume-timeout 10)
  fi
  netns_run "$NSA" 200 node "$HERE/echo.mjs" "${a_args[@]}" >/dev/null 2>"$dir/a.err"
  local rc=$?
  local forwarded
  forwarded="$(metric "$NS1" 'relayserver_mesh_forwarded_datagrams_total{')"
  for _ in $(seq 1 30); do [ -s "$dir/b.json" ] && break; sleep 0.1; done   # B's verdict
  netns_stop_all

  local summary
  summary="$(node -e '
    const fs = require("fs"); let v
    try { v = JSON.parse(fs.readFileSync(process.argv[1], "utf8").trim().split("\n").pop()) } catch { console.log("no client verdict"); process.exit(0) }
    const t = v.timings_ms || {}, p = v.paths || {}
    const sel = (p.paths || []).filter((x) => x.selected).map((x) => (x.relay ? "relay" : "direct:" + x.remote))
    const relayTx = (p.paths || []).filter((x) => x.relay).reduce((s, x) => s + (x.tx_bytes || 0), 0)
    if (!v.ok) { console.log(`stage=${v.stage} error=${v.error} online=${t.online}ms`); process.exit(0) }
    console.log(`online=${t.online}ms connected=${t.connected}ms bytes=${v.bytes_echoed}/${v.bytes_sent}`,
      `${v.mbit_per_s} Mbit/s selected=[${sel.join(",")}] relay_path_tx=${relayTx}`,
      t.relay_back ? `node2 restart: asked->echo ${v.restart_to_echo_ms} ms, node2 accepting->echo ${t.after_restart - t.relay_back} ms` : "")' \
    "$dir/a.json")"
  if [ "$name" = control ]; then
    # It must fail at the dial, after A came online: anything else proves nothing.
    if [ "$rc" != 0 ] && grep -q '"stage":"connect"' "$dir/a.json" 2>/dev/null && [ -s "$dir/b.id" ]; then
      report control 1 "without the mesh A cannot reach B (as expected): $summary"
    else
      report control 0 "expected A to come online and fail at connect (exit $rc): $summary"
    fi
  else
    if [ "$rc" = 0 ] && grep -q '"ok":true' "$dir/b.json" 2>/dev/null && [ "${forwarded:-0}" -gt 0 ]; then
      report mesh 1 "$summary; node1 forwarded $forwarded datagrams to node2"
    else
      report mesh 0 "client exit $rc, server $(grep -q '"ok":true' "$dir/b.json" 2>/dev/null && echo ok || echo 'not ok'), node1 forwarded ${forwarded:-?} datagrams: $summary"
    fi
  fi
}

setup || { echo "mesh.sh: namespace set-up failed" >&2; exit 1; }
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/mesh.key"
chmod 600 "$WORK/mesh.key"
echo "mesh.sh: namespaces $NS1 $NS2 (nodes, anycast $ANY) $NSA $NSB (endpoints); relay URL $URL" >&2
run_phase control
run_phase mesh
echo "iroh mesh interop: $passed passed, $failed failed"
[ "$failed" = 0 ]
