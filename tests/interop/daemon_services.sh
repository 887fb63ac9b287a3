#!/usr/bin/env bash
# The iroh-relay binary with every service of a TLS deployment switched on, probed by third-party
# clients: curl (HTTPS relay listener and the port-80-style captive-portal listener), coturn's
# turnutils_stunclient (STUN), Debian's quic-go (QAD handshake, ALPN /iroh-qad/0); then
# `iroh-relay --dev` with its embedded config (HTTP 3340, STUN 3478, QAD 7842).
# Usage: daemon_services.sh <iroh-relay> <qad_go_client>
set -uo pipefail
RELAY="$1"; GO_CLIENT="${2:?usage: daemon_services.sh <iroh-relay> <qad_go_client>}"
# The quic-go client is built by tests/interop/qad.cmake when golang-go and Debian's quic-go are
# installed; without them this test fails naming the packages.
"$(dirname "${BASH_SOURCE[0]}")/../require-tools.sh" curl openssl python3 turnutils_stunclient "$GO_CLIENT" || exit 1
WORK="$(mktemp -d /tmp/daemon-services.XXXXXX)"
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

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  >/dev/null 2>&1 || { echo "cannot create a test certificate"; exit 1; }
HTTP=$(free_port tcp) HTTPS=$(free_port tcp) STUN=$(free_port udp) QUIC=$(free_port udp)
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
data_dir: "$WORK/data"
YAML
"$RELAY" --config "$WORK/relay.yaml" >"$WORK/relay.log" 2>&1 &
PID=$!
if ! wait_listening "$WORK/relay.log" "qad: listening"; then
  echo "FAIL relay did not start"; cat "$WORK/relay.log"; exit 1
fi
check "https /ping (curl, CA = our cert)" \
  bash -c "curl -sS --max-time 5 --cacert '$WORK/cert.pem' -o /dev/null -w '%{http_code}' https://localhost:$HTTPS/ping | grep -qx 200"
check "captive portal on the plain listener (curl)" \
  bash -c "curl -sS --max-time 5 -D - -o /dev/null -H 'X-Iroh-Challenge: ts_localhost' http://127.0.0.1:$HTTP/generate_204 | tr -d '\r' | grep -qix 'x-iroh-response: response ts_localhost'"
check "plain listener serves no /ping in TLS mode" \
  bash -c "curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:$HTTP/ping | grep -qx 404"
check "STUN (turnutils_stunclient)" \
  bash -c "timeout 10 turnutils_stunclient -p $STUN 127.0.0.1 | grep -q 'UDP reflexive addr: 127.0.0.1:'"
check "QAD handshake (quic-go, ALPN /iroh-qad/0)" \
  timeout 15 "$GO_CLIENT" -addr "127.0.0.1:$QUIC" -ca "$WORK/cert.pem" -sni localhost
kill -TERM "$PID"
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then rc=timeout; else wait "$PID"; rc=$?; fi
check "SIGTERM exits 0 within 10 s (exit: $rc)" test "$rc" = 0
PID=""

# --dev: the embedded default on its fixed ports.
(cd "$WORK" && IROH_RELAY_DATA_DIR="$WORK/dev-data" exec "$RELAY" --dev) >"$WORK/dev.log" 2>&1 &
PID=$!
if wait_listening "$WORK/dev.log" "qad: listening"; then
  check "--dev /ping on 3340" bash -c "curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:3340/ping | grep -qx 200"
  check "--dev /generate_204 on 3340" bash -c "curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:3340/generate_204 | grep -qx 204"
  check "--dev STUN on 3478" bash -c "timeout 10 turnutils_stunclient -p 3478 127.0.0.1 | grep -q 'UDP reflexive addr: 127.0.0.1:'"
  # The dev certificate is self-signed: a verifying client gets as far as rejecting it.
  check "--dev QAD on 7842 (quic-go reaches the self-signed certificate)" \
    bash -c "timeout 15 '$GO_CLIENT' -addr 127.0.0.1:7842 -sni localhost 2>&1 | grep -qiE 'x509|certificate'"
else
  fail=$((fail + 1)); echo "FAIL --dev did not start"; cat "$WORK/dev.log"
fi
echo "daemon services: $pass passed, $fail failed"
[ "$fail" = 0 ]
