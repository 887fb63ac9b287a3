#!/bin/bash
# ACME end to end against pebble (Debian's RFC 8555 test CA), all on 127.0.0.1:
#   1. iroh-relay with tls.cert_mode letsencrypt orders a certificate for "localhost" (HTTP-01:
#      pebble's VA fetches /.well-known/acme-challenge/<token> from the relay's plain listener,
#      which is pebble's httpPort); curl trusting only pebble's root gets 200 from /ping over
#      HTTPS and the served certificate is issued by pebble;
#   2. a restart uses the cached certificate (same serial, no new order);
#   3. pebble issues short-lived certificates (certificateValidityPeriod), so the running relay
#      renews on its own; a relay client connected before the renewal still receives a datagram
#      sent afterwards through a new connection, which sees the new certificate.
#
#   acme_pebble.sh <iroh-relay> <iroh-relay-client>
set -euo pipefail

RELAY=$1
CLIENT=$2
"$(dirname "${BASH_SOURCE[0]}")/../require-tools.sh" pebble curl openssl python3 || exit 1
VALIDITY=90          # seconds; renewal is due when a third is left (after 60 s)
# shellcheck source=acme_pebble_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/acme_pebble_lib.sh"

served_serial() {
  openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -serial | cut -d= -f2
}

HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
TLS_ALPN_PORT=$(free_port)
start_pebble "$HTTP_PORT" "$TLS_ALPN_PORT" "$VALIDITY"

cat >"$WORK/relay.yaml" <<EOF
http_bind_addr: "127.0.0.1:$HTTP_PORT"
enable_metrics: false
data_dir: "$WORK/data"
log_level: debug
tls:
  cert_mode: letsencrypt
  https_bind_addr: "127.0.0.1:$HTTPS_PORT"
  hostname: localhost
  contact: admin@example.com
  cert_dir: "$WORK/certs"
  acme_directory_url: "https://127.0.0.1:$ACME_PORT/dir"
  acme_ca_file: "$WORK/ca.pem"
EOF

start_relay() {
  "$RELAY" --config "$WORK/relay.yaml" >"$WORK/$1.log" 2>&1 &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
}

stop_relay() {
  kill -TERM "$RELAY_PID"
  for _ in $(seq 1 150); do
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.2
  done
  kill -0 "$RELAY_PID" 2>/dev/null && fail "iroh-relay did not exit after SIGTERM"
  wait "$RELAY_PID" || true
}

# ---- 1. issuance -------------------------------------------------------------------------------
start_relay relay1
wait_for "$WORK/relay1.log" "acme: certificate installed" 90 "$RELAY_PID"
check_issued_certificate
[ "$(stat -c %a "$WORK/certs/acme-key.pem")" = 600 ] || fail "acme-key.pem is not mode 0600"
[ "$(stat -c %a "$WORK/certs/acme-account.key")" = 600 ] || fail "acme-account.key is not 0600"
# The validator fetched the token from the plain listener; anything else there is still a 404.
code=$(curl -s -o /dev/null -w '%{http_code}' \
  "http://127.0.0.1:$HTTP_PORT/.well-known/acme-challenge/unknown-token")
[ "$code" = 404 ] || fail "unknown challenge token answered $code"
SERIAL1=$(served_serial)
[ -n "$SERIAL1" ] || fail "no serial from the HTTPS listener"
echo "issued: serial $SERIAL1, $issuer"

# ---- 2. restart: the cached certificate, no new order --------------------------------------------
stop_relay
orders_before=$(grep -c "Added order" "$WORK/pebble.log" || true)
start_relay relay2
wait_for "$WORK/relay2.log" "acme: using cached certificate" 20 "$RELAY_PID"
grep -q "acme: ordering" "$WORK/relay2.log" && fail "restart ordered a new certificate"
[ "$(served_serial)" = "$SERIAL1" ] || fail "restart serves a different certificate"
orders_after=$(grep -c "Added order" "$WORK/pebble.log" || true)
[ "$orders_before" = "$orders_after" ] || fail "pebble saw a new order after the restart"
echo "restart: cached certificate $SERIAL1 in use, pebble orders unchanged ($orders_after)"

# ---- 3. renewal while a relay client stays connected --------------------------------------------
"$CLIENT" keygen --out "$WORK/listener.key" >"$WORK/listener.id" 2>/dev/null
"$CLIENT" listen --relay "https://localhost:$HTTPS_PORT" --ca-file "$WORK/root.pem" \
  --key "$WORK/listener.key" --count 1 --timeout $((VALIDITY + 60)) \
  >"$WORK/listen.out" 2>"$WORK/listen.log" &
LISTEN_PID=$!
PIDS+=("$LISTEN_PID")
wait_for "$WORK/listen.log" "listening as" 20 "$LISTEN_PID"
wait_for "$WORK/relay2.log" "acme: certificate installed" $((VALIDITY + 30)) "$RELAY_PID"
SERIAL2=$(served_serial)
[ -n "$SERIAL2" ] && [ "$SERIAL2" != "$SERIAL1" ] || fail "renewal did not change the served certificate"
kill -0 "$LISTEN_PID" 2>/dev/null || fail "the relay client connected before the renewal is gone"
LISTENER_ID=$("$CLIENT" id --key "$WORK/listener.key" | head -n1 | awk '{print $NF}')
"$CLIENT" send --relay "https://localhost:$HTTPS_PORT" --ca-file "$WORK/root.pem" \
  --to "$LISTENER_ID" "after-renewal" >/dev/null 2>"$WORK/send.log" ||
  fail "send through the renewed certificate failed"
for _ in $(seq 1 50); do
  kill -0 "$LISTEN_PID" 2>/dev/null || break
  sleep 0.2
done
wait "$LISTEN_PID" || fail "listener exited with an error"
grep -q "after-renewal" "$WORK/listen.out" || fail "the old connection did not receive the datagram"
echo "renewal: serial $SERIAL1 -> $SERIAL2; connection from before the renewal received a datagram"
stop_relay
echo "PASS"
