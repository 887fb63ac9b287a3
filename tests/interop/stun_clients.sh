#!/usr/bin/env bash
# Real STUN clients against our STUN service on loopback:
#   coturn's turnutils_stunclient (RFC 5389, magic cookie) over IPv4 and IPv6, and
#   stun-client's `stun` (RFC 3489, no cookie, CHANGE-REQUEST) over IPv4, and
#   stun_xor.py (raw RFC 8489: decodes XOR-MAPPED-ADDRESS, port included) over IPv4 and IPv6.
# Each must report the caller's own address; turnutils_stunclient does not show its source port
# and `stun` reads the legacy MAPPED-ADDRESS, so stun_xor.py is what pins the XOR-mapped port.
# usage: stun_clients.sh <stun-server-binary>   (a binary taking --host/--port and printing
#        "listening <port>", e.g. stun_test_server). A missing client fails the test.
set -uo pipefail
server_bin="${1:?usage: stun_clients.sh <stun-server-binary>}"
"$(dirname "${BASH_SOURCE[0]}")/../require-tools.sh" turnutils_stunclient stun timeout python3 || exit 1
stun_xor="$(dirname "${BASH_SOURCE[0]}")/stun_xor.py"

work="$(mktemp -d /tmp/stun-interop.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
check() {  # check <name> <condition-exit-code> <details>
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1)); echo "PASS $1"
  else
    failed=$((failed + 1)); echo "FAIL $1"; printf '%s\n' "$3" | sed 's/^/    /'
  fi
}

# start_server <host> <name>: starts the server on an ephemeral port, sets $port.
start_server() {
  "$server_bin" --host "$1" --port 0 >"$work/$2.out" 2>"$work/$2.err" &
  pids+=("$!")
  port=""
  for _ in $(seq 1 100); do
    port="$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$work/$2.out")"
    [ -n "$port" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "server on $1 did not start:"; cat "$work/$2.err"; exit 1
}

have_ipv6=0
if [ -r /proc/net/if_inet6 ] && grep -q '^00000000000000000000000000000001' /proc/net/if_inet6; then
  have_ipv6=1
fi

# --- IPv4-only server: both clients -------------------------------------------------------------
start_server 127.0.0.1 v4
v4_port="$port"

out="$(timeout 20 turnutils_stunclient -p "$v4_port" 127.0.0.1 2>&1)"
echo "$out" | grep -Eq 'UDP reflexive addr: 127\.0\.0\.1:[0-9]+$'
check "turnutils_stunclient IPv4 reports 127.0.0.1" $? "$out"

# `stun` (no cookie) runs its RFC 3489 NAT tests; its first test's MAPPED-ADDRESS is what we
# serve. -v prints it and the source port it opened.
out="$(timeout 30 stun "127.0.0.1:$v4_port" -v 2>&1)"
src="$(echo "$out" | sed -n 's/^Opened port \([0-9]*\) with fd.*/\1/p' | head -n 1)"
[ -n "$src" ] && echo "$out" | grep -q "^MappedAddress = 127\.0\.0\.1:$src\$"
check "stun (RFC 3489) reports 127.0.0.1:<its source port>" $? "$out"

out="$(timeout 20 python3 "$stun_xor" check 127.0.0.1 "$v4_port" 2>&1)"
check "stun_xor.py IPv4: XOR-MAPPED-ADDRESS is its own address and port" $? "$out"

# --- dual-stack server ------------------------------------------------------------------------
if [ "$have_ipv6" = 1 ]; then
  start_server :: ds
  ds_port="$port"
  out="$(timeout 20 turnutils_stunclient -p "$ds_port" ::1 2>&1)"
  echo "$out" | grep -Eq 'UDP reflexive addr: ::1:[0-9]+$'
  check "turnutils_stunclient IPv6 reports ::1" $? "$out"
  out="$(timeout 20 turnutils_stunclient -p "$ds_port" 127.0.0.1 2>&1)"
  echo "$out" | grep -Eq 'UDP reflexive addr: 127\.0\.0\.1:[0-9]+$'
  check "turnutils_stunclient via dual-stack socket reports IPv4 127.0.0.1" $? "$out"
  out="$(timeout 30 stun "127.0.0.1:$ds_port" -v 2>&1)"
  src="$(echo "$out" | sed -n 's/^Opened port \([0-9]*\) with fd.*/\1/p' | head -n 1)"
  [ -n "$src" ] && echo "$out" | grep -q "^MappedAddress = 127\.0\.0\.1:$src\$"
  check "stun via dual-stack socket reports 127.0.0.1:<its source port>" $? "$out"
  out="$(timeout 20 python3 "$stun_xor" check ::1 "$ds_port" 2>&1)"
  check "stun_xor.py IPv6: XOR-MAPPED-ADDRESS is its own address and port" $? "$out"
  out="$(timeout 20 python3 "$stun_xor" check 127.0.0.1 "$ds_port" 2>&1)"
  check "stun_xor.py IPv4 via dual-stack socket: own address and port" $? "$out"
else
  echo "SKIP IPv6 checks: no ::1 on this machine"
fi

# The servers print their counters on SIGTERM: no failures expected.
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
pids=()
for f in "$work"/*.out; do
  counters="$(grep '^requests' "$f")"
  echo "$(basename "$f" .out): $counters"
  echo "$counters" | grep -q ' failures 0 '
  check "$(basename "$f" .out) server counted no failures" $? "$counters"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
