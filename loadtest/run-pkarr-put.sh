#!/usr/bin/env bash
# PUT /pkarr/{z32} per second (issue 15 item 7), the compiled generator (pkarr_put_gen) pinned to
# another CPU than the servers:
#   1. SQLite: one iroh-relay (zone_store.backend: sqlite)
#   2. PostgreSQL: two iroh-relay daemons on one PostgreSQL 15 cluster (pg_cluster.sh, a fresh
#      cluster in a temporary directory), the generator's connections spread over both
# and the ratios PUT/s / single-core libsodium verify/s and PostgreSQL / SQLite.
#   loadtest/run-pkarr-put.sh [build-dir]          (default build/: iroh-relay + pkarr_put_gen)
# Env: PUT_BENCH_PACKETS (40000), PUT_BENCH_CONNECTIONS (64: the daemon answers one request of a
# connection at a time, so connections, not pipelining, set how many puts can share a group
# commit), PUT_BENCH_PIPELINE (64), PUT_BENCH_PIN (1: servers on CPU 0, generator on CPU 1 when there are >= 2 CPUs),
# PUT_BENCH_PG_SETTINGS ("synchronous_commit=on": extra postgres -c settings; fsync stays on).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$ROOT/build}"
packets="${PUT_BENCH_PACKETS:-40000}"
connections="${PUT_BENCH_CONNECTIONS:-64}"
pipeline="${PUT_BENCH_PIPELINE:-64}"
relay_bin="$build/server/iroh-relay"
gen_bin="$build/loadtest/pkarr_put_gen"
for b in "$relay_bin" "$gen_bin"; do
  [ -x "$b" ] || { echo "missing $b: build iroh-relay and pkarr_put_gen first" >&2; exit 2; }
done
"$ROOT/tests/require-tools.sh" taskset /usr/bin/python3 || exit 2

server_pin=()
client_pin=()
if [ "${PUT_BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
fi

work="$(mktemp -d /tmp/pkarr-put-bench.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  "$ROOT/tests/interop/pg/pg_cluster.sh" destroy "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

# start_relay <name> <extra yaml>: sets $port once the daemon listens (the HTTP listener, where
# /pkarr is served, exists only with enable_relay).
start_relay() {
  local name="$1"
  port="$(free_port)"
  cat >"$work/$name.yaml" <<YAML
http_bind_addr: "127.0.0.1:$port"
enable_metrics: false
enable_relay: true
enable_pkarr: true
pkarr_put_rate_limit: disabled
log_level: warn
data_dir: "$work/$name-data"
$2
YAML
  "${server_pin[@]}" "$relay_bin" --config "$work/$name.yaml" >"$work/$name.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 200); do
    /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" \
      2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "iroh-relay $name did not start:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}

echo "== SQLite, 1 daemon (CPU 0), generator on CPU 1"
start_relay sqlite ""
"${client_pin[@]}" "$gen_bin" "$port" "$packets" "$connections" "$pipeline" | tee "$work/sqlite.out"
stop_all

echo "== PostgreSQL 15, 2 daemons + PostgreSQL (CPU 0), generator on CPU 1"
pg_port="$(free_port)"
# shellcheck disable=SC2086
"${server_pin[@]}" "$ROOT/tests/interop/pg/pg_cluster.sh" start "$work/pg" "$pg_port" \
  ${PUT_BENCH_PG_SETTINGS:-synchronous_commit=on}
pg_yaml="zone_store:
  backend: postgres
  postgres_url: \"postgresql://postgres@127.0.0.1:$pg_port/postgres\""
start_relay a "$pg_yaml"
port_a="$port"
start_relay b "$pg_yaml"
port_b="$port"
"${client_pin[@]}" "$gen_bin" "$port_a,$port_b" "$packets" "$connections" "$pipeline" |
  tee "$work/pg.out"
stop_all

sqlite_rate="$(awk '/^PUT\/s/ {print $NF}' "$work/sqlite.out")"
pg_rate="$(awk '/^PUT\/s/ {print $NF}' "$work/pg.out")"
echo "== PostgreSQL (2 nodes) / SQLite (1 node) PUT/s: $pg_rate / $sqlite_rate = $(
  awk -v a="$pg_rate" -v b="$sqlite_rate" 'BEGIN { printf "%.2f", a / b }') (target >= 0.5)"
