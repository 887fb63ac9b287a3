#!/usr/bin/env bash
# iroh-relay-client against the iroh-relay binary:
#  1. `iroh-relay --dev` (fixed ports: HTTP 3340, STUN 3478, DNS 5300, QAD 7842): `probe` passes;
#     keygen / publish / resolve (pkarr GET, DNS UDP, DoH GET and POST) / sealed send + listen.
#  2. a TLS deployment with DNS disabled (free ports, QAD checked with the quic-go client):
#     `probe` exits 1 and names exactly the dns and doh checks.
# Usage: probe.sh <iroh-relay> <iroh-relay-client> <qad_go_client>
set -uo pipefail
RELAY="$1"; CLIENT="$2"; GO_CLIENT="${3:?usage: probe.sh <iroh-relay> <iroh-relay-client> <qad_go_client>}"
# The quic-go client is built by tests/interop/qad.cmake when golang-go and Debian's quic-go are
# installed; without them this test fails naming the packages.
"$(dirname "${BASH_SOURCE[0]}")/../require-tools.sh" curl openssl python3 "$GO_CLIENT" || exit 1
WORK="$(mktemp -d /tmp/probe-test.XXXXXX)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
pass=0 fail=0
check() { # check NAME CMD...
  local name="$1"; shift
  if "$@" >"$WORK/check.out" 2>&1; then pass=$((pass + 1)); echo "ok   $name"
  else fail=$((fail + 1)); echo "FAIL $name"; sed 's/^/     /' "$WORK/check.out" | tail -n 25; fi
}
# shellcheck source=daemon-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-lib.sh"
stop_relay() {
  kill -TERM "$PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""
}

# ---- 1. --dev ---------------------------------------------------------------------------------
(cd "$WORK" && IROH_RELAY_DATA_DIR="$WORK/dev-data" exec "$RELAY" --dev) >"$WORK/dev.log" 2>&1 &
PID=$!
# Up when /ping answers and the QAD listener (started last) logged its line.
for _ in $(seq 1 150); do
  curl -s -o /dev/null --max-time 1 http://127.0.0.1:3340/ping && grep -q "qad: listening" "$WORK/dev.log" && break
  kill -0 "$PID" 2>/dev/null || { echo "FAIL --dev exited"; cat "$WORK/dev.log"; exit 1; }
  sleep 0.1
done
URL=http://127.0.0.1:3340
check "probe passes against --dev" bash -c "
  timeout 60 '$CLIENT' probe $URL --dns 127.0.0.1:5300 --origin irohdns.example. | tee /dev/stderr |
  grep -q 'all checks passed'"
check "probe table names every check" bash -c "
  timeout 60 '$CLIENT' probe $URL --dns 127.0.0.1:5300 >'$WORK/table' ;
  for c in ping captive relay datagram relay-ping stun qad pkarr-put pkarr-get dns doh; do
    grep -q \" \$c \" '$WORK/table' || { echo \"missing \$c\"; cat '$WORK/table'; exit 1; }; done"

check "probe's STUN check: the reflexive address is its own socket's" \
  grep -Eq '^✔ stun .*reflexive 127\.0\.0\.1:[0-9]+ \(= local address\)' "$WORK/table"
# A STUN server that answers with port + 1: probe must fail the stun check, naming both addresses.
python3 "$(dirname "${BASH_SOURCE[0]}")/stun_xor.py" wrong-port-server 127.0.0.1 30 >"$WORK/wrong-stun.out" &
WRONG_STUN=$!
for _ in $(seq 1 50); do grep -q '^listening' "$WORK/wrong-stun.out" && break; sleep 0.1; done
WRONG_PORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$WORK/wrong-stun.out")
check "probe fails when the reflexive port differs from its socket's on loopback" bash -c "
  ! timeout 30 '$CLIENT' probe $URL --stun-port '$WRONG_PORT' --skip captive,relay,datagram,relay-ping,qad,pkarr-put,pkarr-get,dns,doh >'$WORK/wrong' 2>&1;
  cat '$WORK/wrong'; grep -q '^✗ stun .*differs from the local address' '$WORK/wrong'"
kill "$WRONG_STUN" 2>/dev/null; wait "$WRONG_STUN" 2>/dev/null

check "keygen writes a 0600 key" bash -c "
  '$CLIENT' keygen --out '$WORK/alice.key' >'$WORK/alice.id' && test \"\$(stat -c %a '$WORK/alice.key')\" = 600 &&
  '$CLIENT' keygen --out '$WORK/alice.key' 2>&1 | grep -q exists"
ALICE=$(head -1 "$WORK/alice.id")
check "publish to /pkarr" timeout 20 "$CLIENT" publish --pkarr $URL/pkarr --key "$WORK/alice.key" \
  --home-relay $URL/ --addr 192.0.2.1:4433
resolves() { # resolves ARGS...: resolve prints exactly the published record
  timeout 20 "$CLIENT" resolve "$ALICE" "$@" >"$WORK/resolved" || return 1
  cat "$WORK/resolved"
  grep -qx "relay=$URL/" "$WORK/resolved" && grep -qx "addr=192.0.2.1:4433" "$WORK/resolved"
}
check "resolve via pkarr GET" resolves --pkarr $URL/pkarr
check "resolve via DNS (UDP 5300, origin irohdns.example.)" resolves --dns 127.0.0.1:5300 --origin irohdns.example.
check "resolve via DNS (origin .)" resolves --dns 127.0.0.1:5300
check "resolve via DoH GET" resolves --doh $URL/dns-query --origin irohdns.example.
check "resolve via DoH POST" resolves --doh $URL/dns-query --post
check "resolve of an unknown id fails" bash -c "! timeout 20 '$CLIENT' resolve \$('$CLIENT' keygen 2>/dev/null | head -1) --pkarr $URL/pkarr"

"$CLIENT" keygen --out "$WORK/bob.key" >"$WORK/bob.id"
BOB=$(head -1 "$WORK/bob.id")
timeout 30 "$CLIENT" listen --relay $URL --key "$WORK/bob.key" --seal --count 1 --timeout 20 >"$WORK/listen.out" 2>"$WORK/listen.err" &
LISTEN=$!
for _ in $(seq 1 50); do grep -q "listening as" "$WORK/listen.err" && break; sleep 0.1; done
check "sealed send" timeout 20 "$CLIENT" send --relay $URL --key "$WORK/alice.key" --to "$BOB" --seal "hello sealed world"
wait $LISTEN
check "sealed listen opens it" grep -q "^$ALICE [0-9]* hello sealed world\$" "$WORK/listen.out"
stop_relay

# ---- 2. TLS deployment without DNS ------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  >/dev/null 2>&1 || { echo "cannot create a test certificate"; exit 1; }
HTTP=$(free_port tcp) HTTPS=$(free_port tcp) STUN=$(free_port udp) QUIC=$(free_port udp) DNS=$(free_port udp)
cat >"$WORK/relay.yaml" <<YAML
http_bind_addr: "127.0.0.1:$HTTP"
tls:
  cert_mode: manual
  https_bind_addr: "127.0.0.1:$HTTPS"
  quic_bind_addr: "127.0.0.1:$QUIC"
  manual_cert_path: "$WORK/cert.pem"
  manual_key_path: "$WORK/key.pem"
enable_quic_addr_discovery: true
enable_stun: true
stun_bind_addr: "127.0.0.1:$STUN"
enable_metrics: false
enable_pkarr: true
pkarr_put_rate_limit: disabled
enable_dns: false
data_dir: "$WORK/data"
YAML
"$RELAY" --config "$WORK/relay.yaml" >"$WORK/relay.log" 2>&1 &
PID=$!
if ! wait_listening "$WORK/relay.log" "qad: listening"; then
  echo "FAIL relay did not start"; cat "$WORK/relay.log"; exit 1
fi
timeout 90 "$CLIENT" probe "https://localhost:$HTTPS" --ca-file "$WORK/cert.pem" --captive-port "$HTTP" \
  --stun-port "$STUN" --dns "127.0.0.1:$DNS" --qad-client "$GO_CLIENT" --quic-port "$QUIC" >"$WORK/nodns" 2>&1
rc=$?
cat "$WORK/nodns"
check "probe exits 1 without DNS (exit $rc)" test "$rc" = 1
check "probe names exactly dns and doh" grep -qx "FAILED: 2 check(s): dns doh" "$WORK/nodns"
check "TLS relay, key-material auth and the rest pass" bash -c "
  grep -q '^✔ relay .*key-material auth' '$WORK/nodns' && grep -q '^✔ stun .*(= local address)' '$WORK/nodns' &&
  grep -q '^✔ pkarr-get ' '$WORK/nodns' && grep -q '^✔ captive ' '$WORK/nodns'"
check "QAD checked with the quic-go client" grep -q '^✔ qad ' "$WORK/nodns"
check "probe without the CA file fails on TLS" bash -c "
  ! timeout 60 '$CLIENT' probe https://localhost:$HTTPS --skip captive,stun,qad,dns,doh >'$WORK/noca' 2>&1;
  grep -q '^✗ ping .*certificate' '$WORK/noca'"
stop_relay

echo "probe: $pass passed, $fail failed"
[ "$fail" = 0 ]
