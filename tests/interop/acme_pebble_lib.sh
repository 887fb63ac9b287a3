# Shared by the pebble ACME tests (acme_pebble.sh: HTTP-01, acme_pebble_tls_alpn.sh: TLS-ALPN-01).
# Source it after `set -euo pipefail`; it creates $WORK (removed on exit with every pid in PIDS)
# and defines fail, wait_for and start_pebble (free_port comes from daemon-lib.sh).

WORK=$(mktemp -d /tmp/acme-pebble.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$WORK"/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
  exit 1
}

# free_port (tests/interop/daemon-lib.sh)
# shellcheck source=daemon-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-lib.sh"

# wait_for <file> <pattern> <seconds> <pid>: bounded wait for a log line; fails if pid dies.
wait_for() {
  local file=$1 pattern=$2 seconds=$3 pid=$4
  for _ in $(seq 1 $((seconds * 5))); do
    grep -q -- "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || fail "process $pid exited while waiting for '$pattern' in $file"
    sleep 0.2
  done
  fail "timed out after ${seconds}s waiting for '$pattern' in $file"
}

# start_pebble <httpPort> <tlsPort> <certificateValidityPeriod>: pebble on 127.0.0.1 with its own
# HTTPS certificate issued by $WORK/ca.pem (what the relay trusts through tls.acme_ca_file). Its
# validator connects to 127.0.0.1:<httpPort> for HTTP-01 and 127.0.0.1:<tlsPort> for TLS-ALPN-01.
# Sets ACME_PORT, MGMT_PORT, PEBBLE_PID.
start_pebble() {
  local http_port=$1 tls_port=$2 validity=$3
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=acme-test-ca -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/pebble.key" -out "$WORK/pebble.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
  openssl x509 -req -in "$WORK/pebble.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 1 -extfile "$WORK/ext.cnf" -out "$WORK/pebble.pem" 2>/dev/null
  ACME_PORT=$(free_port)
  MGMT_PORT=$(free_port)
  cat >"$WORK/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$ACME_PORT",
  "managementListenAddress": "127.0.0.1:$MGMT_PORT",
  "certificate": "$WORK/pebble.pem",
  "privateKey": "$WORK/pebble.key",
  "httpPort": $http_port,
  "tlsPort": $tls_port,
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false,
  "certificateValidityPeriod": $validity
}}
JSON
  # No random VA sleeps, no injected badNonce rejections (both only slow the test down).
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$WORK/pebble.json" \
    >"$WORK/pebble.log" 2>&1 &
  PEBBLE_PID=$!
  PIDS+=("$PEBBLE_PID")
  wait_for "$WORK/pebble.log" "Listening on: 127.0.0.1:$ACME_PORT" 20 "$PEBBLE_PID"
}

# check_issued_certificate: the relay on $HTTPS_PORT serves a certificate pebble issued for
# localhost. Fetches pebble's root to $WORK/root.pem, checks GET /ping over HTTPS trusting only
# it, and sets `issuer` to the served certificate's issuer (offering http/1.1, as a relay client
# does, so that a TLS-ALPN-01 responder never answers this connection).
check_issued_certificate() {
  curl -sf --cacert "$WORK/ca.pem" "https://127.0.0.1:$MGMT_PORT/roots/0" -o "$WORK/root.pem" ||
    fail "cannot fetch pebble's root from its management API"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/root.pem" \
    --resolve "localhost:$HTTPS_PORT:127.0.0.1" "https://localhost:$HTTPS_PORT/ping") ||
    fail "curl --cacert <pebble root> https://localhost:$HTTPS_PORT/ping failed (exit $?)"
  [ "$code" = 200 ] || fail "/ping over HTTPS answered $code"
  issuer=$(openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername localhost \
    -alpn http/1.1 </dev/null 2>/dev/null | openssl x509 -noout -issuer)
  case "$issuer" in *Pebble*) ;; *) fail "served certificate's issuer is not pebble's: $issuer" ;; esac
}
