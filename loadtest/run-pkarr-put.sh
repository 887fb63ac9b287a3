#!/usr/bin/env bash
# PUT /pkarr/{z32} per second (issue 15 item 7), the compiled generator (pkarr_put_gen) pinned to
# another CPU than the servers:
#   1. SQLite: one iroh-relay (zone_store.backend: sqlite), closed loop (each connection sends
#      PUT_BENCH_PIPELINE requests, then waits for their answers), then open loop (pre-encoded
#      signed PUTs written as fast as the sockets take them, answers read meanwhile)
#   2. PostgreSQL: two iroh-relay daemons on one PostgreSQL 15 cluster (pg_cluster.sh, a fresh
#      cluster in a temporary directory), the generator's connections spread over both, closed loop
# and the ratios, each against its baseline measured in the same run: SQLite PUT/s / single-core
# libsodium verify/s of the same kind of packets, measured (pkarr_put_gen ... verify) on the
# servers' CPU right before each SQLite run (target >= 0.7), and PostgreSQL PUT/s / SQLite PUT/s,
# both closed loop (target >= 0.5). On a shared machine both rates move with the other load, so
# the SQLite runs also report PUTs per CPU-second of the daemon (utime + stime from
# /proc/<pid>/stat) against verifies per CPU-second (the generator's thread CPU time): the same
# ratio on a quiet machine (the daemon saturates its CPU), and one that does not depend on the
# other load on a busy one.
#   loadtest/run-pkarr-put.sh [build-dir]          (default build/: iroh-relay + pkarr_put_gen)
# Env: PUT_BENCH_PACKETS (40000), PUT_BENCH_CONNECTIONS (64; the generator opens connections
# beyond 128 from further loopback addresses, the daemon's unauthenticated-per-address limit),
# PUT_BENCH_PIPELINE (64: a connection's pipelined PUTs are verified and stored concurrently, up
# to 64 at once, so they share group commits), PUT_BENCH_PIN (1: servers on CPU 0, generator on CPU 1 when there are >= 2 CPUs),
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# put_run <name> <loop> <ports>: verify baseline on the servers' CPU, then the generator; records
# the daemon's CPU ticks ($pids[0]) around the generator run in $work/<name>.ticks.
put_run() {
  "${server_pin[@]}" "$gen_bin" 0 "$packets" 1 1 256 verify | tee "$work/$1.verify"
  local before
  before="$(cpu_ticks "${pids[0]}")"
  "${client_pin[@]}" "$gen_bin" "$3" "$packets" "$connections" "$pipeline" 256 "$2" |
    tee "$work/$1.out"
  echo "$(($(cpu_ticks "${pids[0]}") - before))" >"$work/$1.ticks"
}

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}

echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== SQLite, 1 daemon (CPU 0), generator on CPU 1, closed loop"
start_relay sqlite ""
put_run sqlite closed "$port"
echo "== SQLite, the same daemon, open loop"
put_run sqlite-open open "$port"
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
for loop in closed open; do
  name=sqlite
  [ "$loop" = open ] && name=sqlite-open
  rate="$(awk '/^PUT\/s/ {print $NF}' "$work/$name.out")"
  verify="$(awk '/^libsodium.*\/s \(/ {print $NF}' "$work/$name.verify")"
  echo "== SQLite PUT/s / verify/s on the server's CPU, $loop loop: $rate / $verify = $(
    awk -v a="$rate" -v b="$verify" 'BEGIN { printf "%.2f", a / b }') (target >= 0.7)"
  ok="$(awk '/^answered 204:/ {print $3}' "$work/$name.out" | tr -d ,)"
  verify_cpu="$(awk '/per CPU-second/ {print $NF}' "$work/$name.verify")"
  awk -v ok="$ok" -v t="$(cat "$work/$name.ticks")" -v hz="$(getconf CLK_TCK)" -v v="$verify_cpu" \
    -v loop="$loop" 'BEGIN { p = (t > 0 ? ok / (t / hz) : 0);
      printf "== SQLite PUTs per daemon CPU-second / verifies per CPU-second, %s loop: %.0f / %.0f = %.2f (target >= 0.7)\n",
             loop, p, v, p / v }'
done
echo "== PostgreSQL (2 nodes) / SQLite (1 node) PUT/s: $pg_rate / $sqlite_rate = $(
  awk -v a="$pg_rate" -v b="$sqlite_rate" 'BEGIN { printf "%.2f", a / b }') (target >= 0.5)"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"
