#!/usr/bin/env bash
# STUN Binding responses per second on loopback: our StunService (tests/stun_test_server) vs
# coturn (`turnserver --stun-only`), same load generator, same run. Target: ours >= 1.5x coturn.
#   loadtest/run-stun.sh [build-dir]      (default: build/, a release build)
#
# Each round runs ours, then coturn, each answering a fixed number of requests. With two or more
# CPUs the server under test is pinned to CPU 0 and the generator to CPU 1, so both servers get
# one core and the generator never shares it. Reported per round and as the median over rounds:
#   - responses/s (wall clock), and
#   - responses per second of server CPU time (user + system from /proc/<pid>/stat), which does
#     not depend on how much CPU the generator or other processes on the machine got.
# Env: STUN_BENCH_ROUNDS (5), STUN_BENCH_REQUESTS (300000 per server per round),
# STUN_BENCH_SECONDS (20: upper bound per measurement), STUN_BENCH_SOCKETS (4),
# STUN_BENCH_WINDOW (64), STUN_SERVER_ARGS (extra stun_test_server flags, e.g. "--sockets 2
# --threads 2"; then no pinning makes sense: set STUN_BENCH_PIN=0).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$ROOT/build}"
rounds="${STUN_BENCH_ROUNDS:-5}"
requests="${STUN_BENCH_REQUESTS:-300000}"
seconds="${STUN_BENCH_SECONDS:-20}"
sockets="${STUN_BENCH_SOCKETS:-4}"
window="${STUN_BENCH_WINDOW:-64}"
server_bin="$build/tests/stun_test_server"
bench_bin="$build/loadtest/stun_bench"
for f in "$server_bin" "$bench_bin"; do
  [ -x "$f" ] || { echo "missing $f: build targets stun_test_server and stun_bench first" >&2; exit 2; }
done
"$ROOT/tests/require-tools.sh" turnserver taskset python3 || exit 2

server_pin=()
bench_pin=()
if [ "${STUN_BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  server_pin=(taskset -c 0)
  bench_pin=(--cpu 1)
fi

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

# bench <label> <port>: one measurement; appends "<label>: <rate> responses/s ... server CPU <s> s"
# to the results.
bench() {
  local before after line
  before="$(cpu_seconds "$server_pid")"
  line="$("$bench_bin" --port "$2" --seconds "$seconds" --requests "$requests" \
    --sockets "$sockets" --window "$window" "${bench_pin[@]}" --label "$1")"
  after="$(cpu_seconds "$server_pid")"
  line="$line; server CPU $(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }') s"
  echo "$line" | tee -a "$work/results"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
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
  "${server_pin[@]}" "$server_bin" --host 127.0.0.1 --port "$port" ${STUN_SERVER_ARGS:-} \
    >"$work/ours.out" 2>&1 &
  server_pid=$!
  wait_udp "$port"
  bench "iroh-relay StunService" "$port"
  stop_server
}

run_coturn() {
  local port; port="$(free_port)"
  # Foreground, no config file, STUN only on one UDP listener; its state stays in $work.
  "${server_pin[@]}" turnserver -n --stun-only --listening-ip 127.0.0.1 --listening-port "$port" \
    --no-cli --no-tls --no-dtls --no-tcp --userdb "$work/turndb" --pidfile "$work/turnserver.pid" \
    --log-file "$work/coturn.log" --simple-log --no-stdout-log >/dev/null 2>&1 &
  server_pid=$!
  wait_udp "$port"
  bench "coturn turnserver --stun-only" "$port"
  stop_server
}

echo "STUN: $rounds rounds x $requests requests per server; server pinned: ${server_pin[*]:-no}"
for _ in $(seq 1 "$rounds"); do
  run_ours
  run_coturn
done

/usr/bin/python3 - "$work/results" <<'PY'
import re, statistics, sys
ours, coturn = [], []
for line in open(sys.argv[1]):
    rate = float(re.search(r": (\d+) responses/s", line).group(1))
    answered = int(re.search(r"measured (\d+)", line).group(1))
    cpu = float(re.search(r"server CPU ([\d.]+) s", line).group(1))
    per_cpu = answered / cpu if cpu > 0 else float("nan")
    (ours if line.startswith("iroh-relay") else coturn).append((rate, per_cpu))
ratios = [o[0] / c[0] for o, c in zip(ours, coturn) if c[0] > 0]
cpu_ratios = [o[1] / c[1] for o, c in zip(ours, coturn) if c[1] > 0]
print("per round ratio (responses/s):       " + " ".join(f"{r:.2f}" for r in ratios))
print("per round ratio (per server CPU s):  " + " ".join(f"{r:.2f}" for r in cpu_ratios))
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"STUN binding responses/s, median: ours {med([o[0] for o in ours]):.0f}, "
      f"coturn {med([c[0] for c in coturn]):.0f}; median ratio {med(ratios):.2f}x "
      f"(target >= 1.5x: {'met' if med(ratios) >= 1.5 else 'NOT met'})")
print(f"responses per server CPU second, median: ours {med([o[1] for o in ours]):.0f}, "
      f"coturn {med([c[1] for c in coturn]):.0f}; median ratio {med(cpu_ratios):.2f}x")
PY
