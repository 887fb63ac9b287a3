#!/bin/bash
# TLS-ALPN-01 (RFC 8737) end to end against pebble, all on 127.0.0.1, with the HTTP-01 port
# closed: pebble's httpPort is a port nobody listens on and its tlsPort is the relay's HTTPS
# listener. The relay runs from an unchanged iroh-relay TOML (cert_mode "LetsEncrypt", which the
# reference answers with TLS-ALPN-01) with the reference's env overrides IROH_RELAY_ACME_URL and
# IROH_RELAY_ACME_CA pointing at pebble. Checks: the order succeeds through a tls-alpn-01
# validation, no HTTP-01 validation was tried, and a TLS client trusting only pebble's root then
# gets the issued certificate and /ping over HTTPS (ALPN http/1.1 unaffected).
#
#   acme_pebble_tls_alpn.sh <iroh-relay>
set -euo pipefail

RELAY=$1
"$(dirname "${BASH_SOURCE[0]}")/../require-tools.sh" pebble curl openssl python3 || exit 1
# shellcheck source=acme_pebble_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/acme_pebble_lib.sh"

HTTP_PORT=$(free_port)         # the relay's captive-portal listener (not pebble's httpPort)
CLOSED_PORT=$(free_port)       # pebble's httpPort: nothing listens there
HTTPS_PORT=$(free_port)        # the relay's HTTPS listener = pebble's tlsPort
start_pebble "$CLOSED_PORT" "$HTTPS_PORT" 3600

cat >"$WORK/relay.toml" <<EOF
http_bind_addr = "127.0.0.1:$HTTP_PORT"
enable_metrics = false

[tls]
cert_mode = "LetsEncrypt"
https_bind_addr = "127.0.0.1:$HTTPS_PORT"
hostname = "localhost"
contact = "admin@example.com"
cert_dir = "$WORK/certs"
EOF

IROH_RELAY_ACME_URL="https://127.0.0.1:$ACME_PORT/dir" IROH_RELAY_ACME_CA="$WORK/ca.pem" \
  "$RELAY" --config "$WORK/relay.toml" >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
wait_for "$WORK/relay.log" "acme: certificate installed" 90 "$RELAY_PID"

grep -q "acme: answering tls-alpn-01 for localhost" "$WORK/relay.log" ||
  fail "the relay did not answer a tls-alpn-01 challenge"
grep -q "acme: answering http-01" "$WORK/relay.log" && fail "the relay tried http-01"
python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$CLOSED_PORT))==0)" ||
  fail "something listens on pebble's httpPort $CLOSED_PORT"

check_issued_certificate
# With no challenge pending, acme-tls/1 is not negotiated and the issued certificate is served.
out=$(openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername localhost -alpn acme-tls/1 \
  </dev/null 2>/dev/null || true)
grep -q "No ALPN negotiated" <<<"$out" || fail "acme-tls/1 negotiated with no challenge pending"
echo "issued over tls-alpn-01 with port $CLOSED_PORT closed: $issuer"

kill -TERM "$RELAY_PID"
for _ in $(seq 1 150); do
  kill -0 "$RELAY_PID" 2>/dev/null || break
  sleep 0.2
done
kill -0 "$RELAY_PID" 2>/dev/null && fail "iroh-relay did not exit after SIGTERM"
echo "PASS"
