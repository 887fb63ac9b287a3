#!/usr/bin/env bash
# QAD handshakes per second against the iroh-relay binary (release build), with the same
# machine's plain TLS 1.3 handshake rate as the baseline of the same run.
#   loadtest/run-qad.sh [build-dir]      (default: build/)
# Env: QAD_BENCH_SECONDS (5), QAD_BENCH_CONCURRENCY (32).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$ROOT/build}"
relay_bin="$build/server/iroh-relay"
bench_bin="$build/loadtest/qad_bench"
for f in "$relay_bin" "$bench_bin"; do
  [ -x "$f" ] || { echo "missing $f: build targets iroh-relay and qad_bench first" >&2; exit 2; }
done
"$ROOT/tests/require-tools.sh" openssl python3 || exit 2

work="$(mktemp -d /tmp/qad-bench.XXXXXX)"
relay_pid=""
cleanup() {
  if [ -n "$relay_pid" ]; then
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.$1); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" \
  >/dev/null 2>&1
http_port="$(free_port SOCK_STREAM)"
https_port="$(free_port SOCK_STREAM)"
quic_port="$(free_port SOCK_DGRAM)"
cat >"$work/relay.yaml" <<YAML
http_bind_addr: "127.0.0.1:$http_port"
tls:
  cert_mode: manual
  https_bind_addr: "127.0.0.1:$https_port"
  quic_bind_addr: "127.0.0.1:$quic_port"
  manual_cert_path: $work/cert.pem
  manual_key_path: $work/key.pem
enable_quic_addr_discovery: true
# The benchmark measures the handshake capacity: no new-connection limits (all from 127.0.0.1).
limits:
  qad_new_conn_rate: 0
  qad_per_source_rate: 0
enable_stun: false
enable_metrics: false
data_dir: $work/data
log_level: info
YAML
"$relay_bin" --config "$work/relay.yaml" >"$work/relay.log" 2>&1 &
relay_pid=$!
# Bounded wait for the QAD listener.
for _ in $(seq 1 100); do
  if grep -q "qad: listening" "$work/relay.log"; then break; fi
  kill -0 "$relay_pid" 2>/dev/null || { cat "$work/relay.log" >&2; exit 1; }
  sleep 0.1
done
"$bench_bin" --port "$quic_port" --cert "$work/cert.pem" --key "$work/key.pem" \
  --seconds "${QAD_BENCH_SECONDS:-5}" --concurrency "${QAD_BENCH_CONCURRENCY:-32}" \
  --server-pid "$relay_pid"
