#!/bin/bash
# The lookup HTTPS listener's own ACME certificate (issue 17 item 2) end to end against pebble,
# all on 127.0.0.1, while the relay's HTTPS listener keeps its own (manual) certificate.
#
# 1. TLS-ALPN-01 with the HTTP-01 port closed, from unchanged reference files: an iroh-relay
#    TOML (cert_mode "Manual") beside an iroh-dns-server TOML whose [https] says
#    cert_mode = "lets_encrypt" on a port of its own, which is pebble's tlsPort. Checks: the
#    lookup order succeeds through tls-alpn-01 answered on that listener, nothing tried http-01,
#    the certificate is cached in <data_dir>/cert_cache, the lookup listener serves it (PUT and
#    GET /pkarr/<z32> with a client trusting only pebble's root, for the name "localhost"), the
#    relay listener still serves its manual certificate; after a restart the cached certificate
#    is served without a new order.
# 2. HTTP-01 answered on the lookup HTTP listener (YAML lookup_listeners, acme_challenge
#    http-01, pebble's httpPort = lookup_listeners.http_bind_addr), and the renewal of that
#    certificate on its own timer (45 s certificates).
#
#   acme_pebble_lookup.sh <iroh-relay>
set -euo pipefail

RELAY=$1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$HERE/../require-tools.sh" pebble curl openssl python3 || exit 1
# shellcheck source=acme_pebble_lib.sh
source "$HERE/acme_pebble_lib.sh"

# stop_relay <pid>: SIGTERM and a bounded wait for the exit.
stop_relay() {
  kill -TERM "$1"
  for _ in $(seq 1 150); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.2
  done
  fail "iroh-relay did not exit after SIGTERM"
}

# check_lookup_https <port> <relay https port>: PUT + GET /pkarr over the lookup HTTPS listener
# trusting only pebble's root (name localhost), and the relay's listener still serving
# relay.example's manual certificate.
check_lookup_https() {
  curl -sf --cacert "$WORK/ca.pem" "https://127.0.0.1:$MGMT_PORT/roots/0" -o "$WORK/root.pem" ||
    fail "cannot fetch pebble's root from its management API"
  PYTHONPATH="$HERE/pkarr" /usr/bin/python3 - "$1" "$WORK/root.pem" <<'PY' || fail "pkarr over the lookup HTTPS listener"
import http.client, ssl, sys, time
from pkarr_testlib import Signer
port, root = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=root)  # only pebble's root; hostname checked
def req(method, path, body=None):
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
    conn.request(method, path, body=body)
    r = conn.getresponse()
    out = (r.status, r.read())
    conn.close()
    return out
s = Signer()
payload = s.record_payload(int(time.time() * 1_000_000), ["relay=https://r.example./"])
status, _ = req("PUT", "/pkarr/" + s.z32, payload)
assert status == 204, f"PUT /pkarr -> {status}"
status, body = req("GET", "/pkarr/" + s.z32)
assert status == 200 and body == payload, f"GET /pkarr -> {status}"
print("pkarr PUT/GET over the lookup HTTPS listener with pebble's certificate: ok")
PY
  local issuer
  issuer=$(openssl s_client -connect "127.0.0.1:$1" -servername localhost -alpn http/1.1 \
    </dev/null 2>/dev/null | openssl x509 -noout -issuer)
  case "$issuer" in *Pebble*) ;; *) fail "lookup certificate's issuer is not pebble's: $issuer" ;; esac
  local relay_fp file_fp
  relay_fp=$(openssl s_client -connect "127.0.0.1:$2" -servername relay.example -alpn http/1.1 \
    </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
  file_fp=$(openssl x509 -in "$WORK/relay.crt" -noout -fingerprint -sha256)
  if [ -z "$relay_fp" ] || [ "$relay_fp" != "$file_fp" ]; then
    fail "the relay listener does not serve its manual certificate ($relay_fp vs $file_fp)"
  fi
  echo "lookup listener: $issuer; relay listener: its own certificate"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=relay.example -addext subjectAltName=DNS:relay.example \
  -keyout "$WORK/relay.key" -out "$WORK/relay.crt" 2>/dev/null

# ---- 1. TLS-ALPN-01 from the reference's TOML files, port 80 closed ----------------------------
RELAY_HTTP=$(free_port)
RELAY_HTTPS=$(free_port)
LOOKUP_HTTPS=$(free_port)      # the lookup HTTPS listener = pebble's tlsPort
CLOSED_PORT=$(free_port)       # pebble's httpPort: nothing listens there
DNS_PORT=$(free_port)
start_pebble "$CLOSED_PORT" "$LOOKUP_HTTPS" 3600

cat >"$WORK/relay.toml" <<TOML
http_bind_addr = "127.0.0.1:$RELAY_HTTP"
enable_metrics = false

[tls]
cert_mode = "Manual"
https_bind_addr = "127.0.0.1:$RELAY_HTTPS"
hostname = "relay.example"
manual_cert_path = "$WORK/relay.crt"
manual_key_path = "$WORK/relay.key"
TOML
cat >"$WORK/dns.toml" <<TOML
data_dir = "$WORK/dns-data"
pkarr_put_rate_limit = "disabled"

[https]
port = $LOOKUP_HTTPS
bind_addr = "127.0.0.1"
domains = ["localhost"]
cert_mode = "lets_encrypt"
letsencrypt_contact = "admin@example.com"

[dns]
port = $DNS_PORT
bind_addr = "127.0.0.1"
default_soa = "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600"
default_ttl = 900
origins = ["irohdns.example.", "."]

[metrics]
disabled = true
TOML

run_toml() {
  IROH_RELAY_ACME_URL="https://127.0.0.1:$ACME_PORT/dir" IROH_RELAY_ACME_CA="$WORK/ca.pem" \
    "$RELAY" --config "$WORK/relay.toml" --dns-config "$WORK/dns.toml" >"$WORK/$1.log" 2>&1 &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
}
run_toml relay
wait_for "$WORK/relay.log" "acme lookup: certificate installed" 90 "$RELAY_PID"
grep -q "acme: answering tls-alpn-01 for localhost" "$WORK/relay.log" ||
  fail "no tls-alpn-01 challenge was answered"
/usr/bin/python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$CLOSED_PORT))==0)" ||
  fail "something listens on pebble's httpPort $CLOSED_PORT"
[ -s "$WORK/dns-data/cert_cache/acme-cert.pem" ] ||
  fail "the lookup certificate is not cached in <data_dir>/cert_cache"
check_lookup_https "$LOOKUP_HTTPS" "$RELAY_HTTPS"
stop_relay "$RELAY_PID"

# Restarted: the cached certificate serves at once, no new order.
run_toml relay2
wait_for "$WORK/relay2.log" "acme lookup: using cached certificate" 30 "$RELAY_PID"
grep -q "acme lookup: ordering" "$WORK/relay2.log" && fail "a new order after the restart"
check_lookup_https "$LOOKUP_HTTPS" "$RELAY_HTTPS"
stop_relay "$RELAY_PID"
kill "$PEBBLE_PID"
wait "$PEBBLE_PID" 2>/dev/null || true

# ---- 2. HTTP-01 on the lookup HTTP listener (YAML) ---------------------------------------------
RELAY_HTTP=$(free_port)
RELAY_HTTPS=$(free_port)
LOOKUP_HTTP=$(free_port)       # the lookup HTTP listener = pebble's httpPort
LOOKUP_HTTPS=$(free_port)
CLOSED_PORT=$(free_port)       # pebble's tlsPort: nothing listens there
# 45 s certificates: renewal is due with a third left, after 30 s (acme/acme_service.hpp).
start_pebble "$LOOKUP_HTTP" "$CLOSED_PORT" 45
cat >"$WORK/relay.yaml" <<YAML
http_bind_addr: "127.0.0.1:$RELAY_HTTP"
enable_metrics: false
log_level: debug
data_dir: "$WORK/yaml-data"
enable_pkarr: true
pkarr_put_rate_limit: disabled
tls:
  cert_mode: manual
  https_bind_addr: "127.0.0.1:$RELAY_HTTPS"
  manual_cert_path: "$WORK/relay.crt"
  manual_key_path: "$WORK/relay.key"
lookup_listeners:
  http_bind_addr: "127.0.0.1:$LOOKUP_HTTP"
  https:
    https_bind_addr: "127.0.0.1:$LOOKUP_HTTPS"
    cert_mode: letsencrypt
    hostname: localhost
    contact: admin@example.com
    cert_dir: "$WORK/yaml-lookup-certs"
    acme_directory_url: "https://127.0.0.1:$ACME_PORT/dir"
    acme_ca_file: "$WORK/ca.pem"
    acme_challenge: http-01
YAML
"$RELAY" --config "$WORK/relay.yaml" >"$WORK/relay-yaml.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
wait_for "$WORK/relay-yaml.log" "acme lookup: certificate installed" 90 "$RELAY_PID"
grep -q "acme: served http-01 token" "$WORK/relay-yaml.log" ||
  fail "no http-01 token was served"
grep -q "answering tls-alpn-01" "$WORK/relay-yaml.log" && fail "tls-alpn-01 was answered"
check_lookup_https "$LOOKUP_HTTPS" "$RELAY_HTTPS"
served_serial() {
  openssl s_client -connect "127.0.0.1:$LOOKUP_HTTPS" -servername localhost -alpn http/1.1 \
    </dev/null 2>/dev/null | openssl x509 -noout -serial
}
SERIAL1=$(served_serial)
# Renewed on its own timer, like the relay's certificate (bounded wait).
for _ in $(seq 1 450); do
  [ "$(grep -c "acme lookup: certificate installed" "$WORK/relay-yaml.log")" -ge 2 ] && break
  kill -0 "$RELAY_PID" 2>/dev/null || fail "iroh-relay exited while waiting for the renewal"
  sleep 0.2
done
[ "$(grep -c "acme lookup: certificate installed" "$WORK/relay-yaml.log")" -ge 2 ] ||
  fail "the lookup certificate was not renewed within 90 s"
SERIAL2=$(served_serial)
if [ -z "$SERIAL2" ] || [ "$SERIAL2" = "$SERIAL1" ]; then
  fail "renewal did not change the served lookup certificate ($SERIAL1)"
fi
check_lookup_https "$LOOKUP_HTTPS" "$RELAY_HTTPS"
echo "lookup renewal: $SERIAL1 -> $SERIAL2"
stop_relay "$RELAY_PID"
echo "PASS"
