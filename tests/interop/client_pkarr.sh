#!/usr/bin/env bash
# Our client and npm pkarr 1.3.0 (tests/interop/pkarr/, H1's pkarr_interop.mjs) through the
# iroh-relay binary (enable_pkarr + enable_dns on free loopback ports):
#  - npm pkarr publishes; iroh-relay-client resolves the record via pkarr GET, DNS and DoH;
#  - iroh-relay-client publishes; npm pkarr's relayGet verifies and decodes it.
# Usage: client_pkarr.sh <iroh-relay> <iroh-relay-client>
set -uo pipefail
RELAY="$1"; CLIENT="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
NPM_SCRIPT="$HERE/pkarr/pkarr_interop.mjs"
"$HERE/../require-tools.sh" node python3 || exit 1
if [ ! -d "$HERE/pkarr/node_modules/pkarr" ]; then
  echo "FAIL: npm pkarr not installed (scripts/setup runs npm install in tests/interop/pkarr)"; exit 1
fi
WORK="$(mktemp -d /tmp/client-pkarr.XXXXXX)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
pass=0 fail=0
check() { # check NAME CMD...
  local name="$1"; shift
  if "$@" >"$WORK/check.out" 2>&1; then pass=$((pass + 1)); echo "ok   $name"
  else fail=$((fail + 1)); echo "FAIL $name"; sed 's/^/     /' "$WORK/check.out" | tail -n 15; fi
}
# shellcheck source=daemon-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-lib.sh"
# Up when the daemon itself logged both listeners (a /ping answer could come from another test's
# daemon that took the port between free_port and our bind). A port taken in that window makes
# the daemon exit naming it: pick new ports and start again (bounded).
start_relay() {
  HTTP=$(free_port tcp) DNS=$(free_port udp)
  cat >"$WORK/relay.yaml" <<YAML
http_bind_addr: "127.0.0.1:$HTTP"
enable_metrics: false
enable_pkarr: true
pkarr_put_rate_limit: disabled
enable_dns: true
dns:
  bind_addr: "127.0.0.1:$DNS"
  origins: ["irohdns.example.", "."]
data_dir: "$WORK/data"
YAML
  "$RELAY" --config "$WORK/relay.yaml" >"$WORK/relay.log" 2>&1 &
  PID=$!
  wait_listening "$WORK/relay.log" "listening http on 127.0.0.1:$HTTP" &&
    wait_listening "$WORK/relay.log" "dns: listening" && return 0
  kill -0 "$PID" 2>/dev/null || { wait "$PID"; PID=""; }
  return 1
}
started=no
for attempt in 1 2 3; do
  if start_relay; then started=yes; break; fi
  echo "relay did not start (attempt $attempt):"; cat "$WORK/relay.log"
  [ -z "$PID" ] && grep -q "cannot bind" "$WORK/relay.log" || break
done
[ "$started" = yes ] || exit 1
BASE="http://127.0.0.1:$HTTP/pkarr"

# npm pkarr -> our client.
if timeout 30 node "$NPM_SCRIPT" publish "$BASE" >"$WORK/npm.json" 2>"$WORK/npm.err"; then
  Z32=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['z32'])" "$WORK/npm.json")
  npm_record() { # npm_record ARGS...: our resolve prints npm's two TXT records
    timeout 20 "$CLIENT" resolve "$Z32" "$@" >"$WORK/resolved" || return 1
    cat "$WORK/resolved"
    grep -qx "relay=https://relay.example./" "$WORK/resolved" &&
      grep -qx "addr=192.0.2.7:4433" "$WORK/resolved"
  }
  check "our client resolves npm pkarr's packet via pkarr GET" npm_record --pkarr "$BASE"
  check "our client resolves npm pkarr's packet via DNS" npm_record --dns "127.0.0.1:$DNS" --origin irohdns.example.
  check "our client resolves npm pkarr's packet via DoH" npm_record --doh "http://127.0.0.1:$HTTP/dns-query"
else
  fail=$((fail + 1)); echo "FAIL npm pkarr publish"; cat "$WORK/npm.err"
fi

# our client -> npm pkarr.
"$CLIENT" keygen --out "$WORK/ours.key" >"$WORK/ours.id"
OURS_Z32=$(sed -n 2p "$WORK/ours.id")
check "our client publishes" timeout 20 "$CLIENT" publish --pkarr "$BASE" --key "$WORK/ours.key" \
  --home-relay "http://127.0.0.1:$HTTP/" --addr 192.0.2.9:7000 --user-data "from C++"
check "npm pkarr relayGet verifies and decodes our packet" bash -c "
  timeout 30 node '$NPM_SCRIPT' read '$BASE' '$OURS_Z32' | tee '$WORK/read.json' &&
  /usr/bin/python3 - '$WORK/read.json' '$OURS_Z32' '$HTTP' <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
z32, port = sys.argv[2], sys.argv[3]
txt = [(r['name'], r['txt']) for r in data['records'] if r['type'] == 'TXT']
want = [('_iroh.' + z32, 'relay=http://127.0.0.1:%s/' % port),
        ('_iroh.' + z32, 'addr=192.0.2.9:7000'),
        ('_iroh.' + z32, 'user-data=from C++')]
assert txt == want, txt
assert all(r['ttl'] == 30 for r in data['records']), data
PY"

echo "client pkarr interop: $pass passed, $fail failed"
if [ "$fail" != 0 ]; then
  # What the daemon said (and whether it is still running) explains most failures.
  kill -0 "$PID" 2>/dev/null && echo "relay still running" || { wait "$PID"; echo "relay exited with $?"; }
  echo "---- relay.log (last 40 lines)"; tail -n 40 "$WORK/relay.log"
fi
[ "$fail" = 0 ]
