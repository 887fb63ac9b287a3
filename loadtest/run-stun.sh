#!/usr/bin/env bash
# STUN Binding responses per second on loopback: our StunService (tests/stun_test_server) vs
# coturn (`turnserver --stun-only`), same load generator, same run. Target: ours >= 1.5x coturn.
#   loadtest/run-stun.sh [build-dir]      (default: build/, a release build)
# Env: STUN_SERVER_ARGS (extra stun_test_server flags, e.g. "--sockets 2 --threads 2"),
# STUN_BENCH_SECONDS (5), STUN_BENCH_SOCKETS (4), STUN_BENCH_WINDOW (32), STUN_BENCH_ROUNDS (1:
# each round runs ours then coturn; the best rate of each is compared).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$ROOT/build}"
seconds="${STUN_BENCH_SECONDS:-5}"
sockets="${STUN_BENCH_SOCKETS:-4}"
window="${STUN_BENCH_WINDOW:-32}"
rounds="${STUN_BENCH_ROUNDS:-1}"
server_bin="$build/tests/stun_test_server"
bench_bin="$build/loadtest/stun_bench"
for f in "$server_bin" "$bench_bin"; do
  [ -x "$f" ] || { echo "missing $f: build targets stun_test_server and stun_bench first" >&2; exit 2; }
done
command -v turnserver >/dev/null || { echo "coturn (turnserver) not installed: scripts/setup" >&2; exit 2; }

work="$(mktemp -d /tmp/stun-bench.XXXXXX)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# CPU seconds (user + system, all threads) a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}

# bench <label> <port>: runs the load generator, appends "<label>: <rate> responses/s ... server
# CPU" to the results. The CPU figure is the fairer one on a busy machine: responses per second
# of server CPU time does not depend on how much CPU the generator got.
bench() {
  local before after line
  before="$(cpu_seconds "$server_pid")"
  line="$("$bench_bin" --port "$2" --seconds "$seconds" --sockets "$sockets" --window "$window" \
    --label "$1")"
  after="$(cpu_seconds "$server_pid")"
  line="$line; server CPU $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$before" "$after") s"
  echo "$line" | tee -a "$work/results"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_udp <port>: until something answers a Binding request there (bounded: 10 s).
wait_udp() {
  for _ in $(seq 1 100); do
    if "$bench_bin" --port "$1" --seconds 0.05 --sockets 1 --window 1 --label probe >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing answers STUN on 127.0.0.1:$1" >&2
  return 1
}

run_ours() {
  local port; port="$(free_port)"
  # shellcheck disable=SC2086
  "$server_bin" --host 127.0.0.1 --port "$port" ${STUN_SERVER_ARGS:-} >"$work/ours.out" 2>&1 &
  server_pid=$!
  wait_udp "$port"
  bench "iroh-relay StunService" "$port"
  stop_server
}

run_coturn() {
  local port; port="$(free_port)"
  # Foreground, no config file, STUN only on one UDP listener; its state stays in $work.
  turnserver -n --stun-only --listening-ip 127.0.0.1 --listening-port "$port" --no-cli \
    --no-tls --no-dtls --no-tcp --userdb "$work/turndb" --pidfile "$work/turnserver.pid" \
    --log-file "$work/coturn.log" --simple-log --no-stdout-log >/dev/null 2>&1 &
  server_pid=$!
  wait_udp "$port"
  bench "coturn turnserver --stun-only" "$port"
  stop_server
}

for _ in $(seq 1 "$rounds"); do
  run_ours
  run_coturn
done

# Per implementation: the best rate over the rounds, and responses per server CPU second summed
# over the rounds.
summary() {
  grep "^$1" "$work/results" | python3 -c '
import re, sys
best, answered, cpu = 0, 0, 0.0
for line in sys.stdin:
    best = max(best, int(re.search(r": (\d+) responses/s", line).group(1)))
    answered += int(re.search(r"answered (\d+)", line).group(1))
    cpu += float(re.search(r"server CPU ([\d.]+) s", line).group(1))
print(best, int(answered / cpu) if cpu > 0 else 0)'
}
read -r ours ours_eff <<<"$(summary 'iroh-relay')"
read -r coturn coturn_eff <<<"$(summary 'coturn')"
python3 - "$ours" "$coturn" "$ours_eff" "$coturn_eff" <<'PY'
import sys
ours, coturn, ours_eff, coturn_eff = map(int, sys.argv[1:])
ratio = ours / coturn if coturn else float("inf")
eff = ours_eff / coturn_eff if coturn_eff else float("inf")
print(f"STUN binding responses/s: ours {ours}, coturn {coturn}, ratio {ratio:.2f}x "
      f"(target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})")
print(f"responses per server CPU second: ours {ours_eff}, coturn {coturn_eff}, ratio {eff:.2f}x")
PY
