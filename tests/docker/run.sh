#!/usr/bin/env bash
# The docker packaging end to end: builds a Debian 12 base image with debootstrap from the mirror
# apt uses (Docker Hub is not reachable), builds docker/Dockerfile and docker/prometheus.Dockerfile
# on it, starts docker/compose.yaml's iroh-relay and prometheus with docker-compose, and checks
# them with third-party clients: the container health check, curl (/ping, /generate_204,
# /metrics), a pkarr PUT signed with PyNaCl and resolved over DNS, kdig (DNS over UDP and TCP: SOA, NS, the published TXT),
# turnutils_stunclient (STUN), quic-go (QAD),
# Prometheus's HTTP API (up == 1 through deploy/prometheus/prometheus.yml), and that the daemon
# runs as a non-root user holding only CAP_NET_BIND_SERVICE. Grafana is not started: its image
# cannot be pulled here. Then docker/compose.postgres.yaml (issue 15): PostgreSQL from
# docker/postgres.Dockerfile and two daemons sharing it; a PUT on node A is served by node B
# (GET /pkarr, same bytes; DNS with kdig) and a newer PUT on B replaces it on A. Then
# docker/compose.mesh.yaml (issue 16): two relay nodes in a mesh with the psk as a compose secret;
# both links come up and a datagram sent by our iroh-relay-client CLI on node A reaches a
# listener on node B.
#
# Usage: run.sh WORKDIR QAD_GO_CLIENT RELAY_CLIENT (the host's iroh-relay-client)
# If no docker daemon answers, starts `dockerd --bridge=none --iptables=false` with its own
# data-root under $IROH_DOCKER_TEST_CACHE (default /var/tmp/iroh-relay-docker-test; kept between
# runs so images and build layers are reused) and stops it at the end. Needs root.
# IROH_SKIP_DOCKER_TESTS=1 makes it print a skip and exit 77 (ctest: skipped); scripts/fresh-check
# sets it, as its container cannot run docker. The daemon and base image code is in lib.sh.
# IROH_DOCKER_TEST_REUSE_IMAGES=1 skips the build of each image that exists already (iterating on
# the compose files or the checks).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Inside a container (scripts/fresh-check) there is no docker daemon to be had: cgroups and
# overlayfs are not nested there. Skipped only when asked, never because docker is missing.
if [ "${IROH_SKIP_DOCKER_TESTS:-}" = 1 ]; then
  echo "SKIP docker_compose: IROH_SKIP_DOCKER_TESTS=1 (docker-in-docker cannot run here)"
  exit 77
fi
# shellcheck source=tests/docker/lib.sh
. "$ROOT/tests/docker/lib.sh"
WORK="${1:?usage: run.sh WORKDIR QAD_GO_CLIENT}"
GO_CLIENT="${2:?usage: run.sh WORKDIR QAD_GO_CLIENT RELAY_CLIENT}"
RELAY_CLIENT="${3:?usage: run.sh WORKDIR QAD_GO_CLIENT RELAY_CLIENT}"
CACHE="${IROH_DOCKER_TEST_CACHE:-/var/tmp/iroh-relay-docker-test}"
RUNDIR=/run/iroh-relay-docker-test  # dockerd's sockets: short paths (108-byte limit)
PROJECT=iroh-relay-test
RELAY_IMAGE=iroh-relay-test:latest
PROMETHEUS_IMAGE=iroh-relay-test-prometheus:latest
POSTGRES_IMAGE=iroh-relay-test-postgres:latest
PG_PROJECT=iroh-relay-test-pg
MESH_PROJECT=iroh-relay-test-mesh

PY=/usr/bin/python3
pass=0 fail=0
phases=()
compose_up=""
compose_pg_up=""
compose_mesh_up=""
phase_start=$SECONDS
phase() { # phase NAME: ends the previous phase's timer
  echo "== $1"
  phase_start=$SECONDS
}
phase_done() { phases+=("$1: $((SECONDS - phase_start)) s"); }
check() { # check NAME CMD...
  local name="$1"; shift
  if "$@" >"$WORK/check.out" 2>&1; then pass=$((pass + 1)); echo "ok   $name"
  else fail=$((fail + 1)); echo "FAIL $name"; sed 's/^/     /' "$WORK/check.out" | tail -n 20; fi
}
die() { echo "FAIL $*"; fail=$((fail + 1)); exit 1; }
replace_all() { # replace_all SRC DST OLD NEW [OLD NEW...]: every OLD must occur in SRC
  "$PY" -c '
import sys
src, dst, *pairs = sys.argv[1:]
text = open(src).read()
for old, new in zip(pairs[::2], pairs[1::2]):
    if old not in text:
        sys.exit(f"{src}: {old!r} not found")
    text = text.replace(old, new)
open(dst, "w").write(text)' "$@"
}
compose() {
  timeout 600 docker-compose -p "$PROJECT" -f "$ROOT/docker/compose.yaml" "$@"
}
compose_pg() {
  timeout 600 docker-compose -p "$PG_PROJECT" -f "$ROOT/docker/compose.postgres.yaml" "$@"
}
compose_mesh() {
  timeout 600 docker-compose -p "$MESH_PROJECT" -f "$ROOT/docker/compose.mesh.yaml" "$@"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$compose_up" ]; then
    compose logs --no-color >"$WORK/compose.log" 2>&1
    compose down -v --remove-orphans >"$WORK/compose-down.log" 2>&1 || echo "warning: compose down failed"
  fi
  if [ -n "$compose_pg_up" ]; then
    compose_pg logs --no-color >"$WORK/compose-pg.log" 2>&1
    compose_pg down -v --remove-orphans >"$WORK/compose-pg-down.log" 2>&1 ||
      echo "warning: compose down (postgres) failed"
  fi
  if [ -n "$compose_mesh_up" ]; then
    compose_mesh logs --no-color >"$WORK/compose-mesh.log" 2>&1
    compose_mesh down -v --remove-orphans >"$WORK/compose-mesh-down.log" 2>&1 ||
      echo "warning: compose down (mesh) failed"
  fi
  docker_lib_cleanup
  echo
  echo "== docker test summary"
  for p in "${phases[@]}"; do echo "   $p"; done
  echo "   total: ${SECONDS} s"
  echo "docker_compose: ${pass} passed, ${fail} failed"
  [ "$fail" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
  exit 1
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$WORK" "$CACHE" "$RUNDIR"
[ "$(id -u)" = 0 ] || die "needs root (dockerd, debootstrap)"
# The quic-go client is built by tests/interop/qad.cmake when golang-go and Debian's quic-go are
# installed; without them (like any missing tool) the test fails naming the package.
"$ROOT/tests/require-tools.sh" docker dockerd docker-compose debootstrap kdig curl \
  turnutils_stunclient flock "$GO_CLIENT" "$RELAY_CLIENT" || die "tools missing (above)"
# One run at a time per machine: the runs share the daemon, the project name and the cache.
docker_lib_lock 2400

# ---- docker daemon --------------------------------------------------------------------------
phase "docker daemon"
docker_lib_daemon
phase_done "docker daemon"

# ---- Debian 12 base image ---------------------------------------------------------------------
phase "base image"
docker_lib_base_image
if [ -n "$DOCKER_LIB_BASE_BUILT" ]; then phase_done "base image (debootstrap + import)"
else phase_done "base image (cached)"; fi

# ---- our images -------------------------------------------------------------------------------
reuse() { # reuse IMAGE: true when asked to reuse images and IMAGE exists
  [ -n "${IROH_DOCKER_TEST_REUSE_IMAGES:-}" ] && docker image inspect "$1" >/dev/null 2>&1 &&
    echo "IROH_DOCKER_TEST_REUSE_IMAGES: using the existing $1"
}
if ! reuse "$RELAY_IMAGE"; then
  phase "iroh-relay image"
  timeout 3000 docker build --network host -f "$ROOT/docker/Dockerfile" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -t "$RELAY_IMAGE" "$ROOT" >"$WORK/build-relay.log" 2>&1 ||
    { tail -n 40 "$WORK/build-relay.log"; die "docker build of docker/Dockerfile failed"; }
  grep -m1 '^runtime packages:' "$WORK/build-relay.log"
  phase_done "iroh-relay image"
fi
if ! reuse "$PROMETHEUS_IMAGE"; then
  phase "prometheus image"
  timeout 900 docker build --network host -f "$ROOT/docker/prometheus.Dockerfile" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$PROMETHEUS_IMAGE" "$ROOT" >"$WORK/build-prometheus.log" 2>&1 ||
    { tail -n 40 "$WORK/build-prometheus.log"; die "docker build of docker/prometheus.Dockerfile failed"; }
  phase_done "prometheus image"
fi
if ! reuse "$POSTGRES_IMAGE"; then
  phase "postgres image"
  timeout 900 docker build --network host -f "$ROOT/docker/postgres.Dockerfile" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$POSTGRES_IMAGE" "$ROOT" >"$WORK/build-postgres.log" 2>&1 ||
    { tail -n 40 "$WORK/build-postgres.log"; die "docker build of docker/postgres.Dockerfile failed"; }
  phase_done "postgres image"
fi
mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }
echo "image sizes: iroh-relay $(mb "$RELAY_IMAGE"), prometheus $(mb "$PROMETHEUS_IMAGE"), postgres $(mb "$POSTGRES_IMAGE"), base $(mb "$BASE_IMAGE")"

# ---- compose ----------------------------------------------------------------------------------
phase "compose up"
# Host networking: free ports instead of the defaults (53, 80, 443, ...), except that the plain
# HTTP listener gets a free port below 1024, so the non-root daemon's CAP_NET_BIND_SERVICE is
# exercised.
read -r HTTP HTTPS STUN QAD DNS METRICS PROM PGPORT A_HTTP A_DNS A_METRICS B_HTTP B_DNS B_METRICS \
  MA_HTTP MA_METRICS MB_HTTP MB_METRICS < <("$PY" - <<'PY'
import socket
held = []
def grab(kinds, lo=0, hi=0):
    for port in ([0] if not lo else range(lo, hi)):
        socks = []
        try:
            for kind in kinds:
                s = socket.socket(socket.AF_INET6, kind)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.bind(("::", port if not socks else socks[0].getsockname()[1]))
                socks.append(s)
        except OSError:
            for s in socks: s.close()
            if not lo: return grab(kinds)
            continue
        held.extend(socks)
        return socks[0].getsockname()[1]
    raise SystemExit("no free port")
T, U = socket.SOCK_STREAM, socket.SOCK_DGRAM
print(grab([T], 900, 1000), grab([T]), grab([U]), grab([U]), grab([U, T]), grab([T]), grab([T]),
      grab([T]), grab([T]), grab([U, T]), grab([T]), grab([T]), grab([U, T]), grab([T]),
      grab([T]), grab([T]), grab([T]), grab([T]))
PY
)
[ -n "$MB_METRICS" ] || die "cannot find free ports"
echo "ports: http $HTTP, https $HTTPS, stun $STUN, qad $QAD, dns $DNS, metrics $METRICS, prometheus $PROM"
# docker/relay.yaml and deploy/prometheus/prometheus.yml as shipped, but for the ports (and a 1 s
# scrape interval). Each replaced text must be there: the test notices when the files change.
replace_all "$ROOT/docker/relay.yaml" "$WORK/relay.yaml" \
  '"[::]:80"' "\"[::]:$HTTP\"" '"[::]:443"' "\"[::]:$HTTPS\"" '"[::]:7842"' "\"[::]:$QAD\"" \
  '"[::]:3478"' "\"[::]:$STUN\"" '"[::]:53"' "\"[::]:$DNS\"" '"127.0.0.1:9090"' "\"127.0.0.1:$METRICS\"" \
  || die "cannot derive the test config from docker/relay.yaml"
replace_all "$ROOT/deploy/prometheus/prometheus.yml" "$WORK/prometheus.yml" \
  '"127.0.0.1:9090"' "\"127.0.0.1:$METRICS\"" 'scrape_interval: 15s' 'scrape_interval: 1s' \
  || die "cannot derive the test scrape config from deploy/prometheus/prometheus.yml"
export BASE_IMAGE IROH_RELAY_IMAGE="$RELAY_IMAGE" IROH_PROMETHEUS_IMAGE="$PROMETHEUS_IMAGE"
export IROH_RELAY_CONFIG="$WORK/relay.yaml" IROH_PROMETHEUS_CONFIG="$WORK/prometheus.yml"
export PROMETHEUS_LISTEN="127.0.0.1:$PROM" IROH_RELAY_HEALTH_URL="https://127.0.0.1:$HTTPS/ping"
export IROH_RELAY_HEALTH_INTERVAL=2s
check "docker-compose config accepts docker/compose.yaml" compose config -q
compose down -v --remove-orphans >/dev/null 2>&1  # leftovers of an interrupted run
compose_up=1
compose up -d --no-build iroh-relay prometheus >"$WORK/compose-up.log" 2>&1 ||
  { cat "$WORK/compose-up.log"; die "docker-compose up failed"; }
relay="$(compose ps -q iroh-relay)"
[ -n "$relay" ] || die "no iroh-relay container"
if ! docker_lib_wait_for 90 bash -c "[ \"\$(docker inspect -f '{{.State.Health.Status}}' $relay)\" = healthy ]"; then
  docker logs "$relay" 2>&1 | tail -n 30
fi
phase_done "compose up"

# ---- checks -----------------------------------------------------------------------------------
phase "checks"
check "container health check (/ping over HTTPS) reports healthy" bash -c "[ \"\$(docker inspect -f '{{.State.Health.Status}}' $relay)\" = healthy ]"
docker exec "$relay" cat /var/lib/iroh-relay/certs/relay.crt >"$WORK/relay.crt" 2>/dev/null
check "https /ping (curl, CA = the certificate the entrypoint generated)" \
  bash -c "curl -sS --max-time 5 --cacert '$WORK/relay.crt' -o /dev/null -w '%{http_code}' https://localhost:$HTTPS/ping | grep -qx 200"
check "captive portal /generate_204 on the plain listener, port $HTTP < 1024 (curl)" \
  bash -c "curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:$HTTP/generate_204 | grep -qx 204"
check "metrics listener serves /metrics with the relay counters (curl)" \
  bash -c "curl -sS --max-time 5 http://127.0.0.1:$METRICS/metrics | tee '$WORK/metrics.txt' | grep -q '^relayserver_'"
check "DNS over UDP: SOA of irohdns.example. (kdig)" \
  bash -c "kdig @127.0.0.1 -p $DNS +time=3 +retry=1 irohdns.example. SOA | tee /dev/stderr | grep -q 'status: NOERROR' && kdig @127.0.0.1 -p $DNS +time=3 +short irohdns.example. SOA | grep -q '^ns1.irohdns.example. hostmaster.irohdns.example. '"
check "pkarr: PUT /pkarr over HTTPS (PyNaCl + dnspython), DNS answers _iroh.<key>.irohdns.example. TXT (kdig)" \
  bash -c "z=\$('$PY' '$ROOT/tests/docker/pkarr_publish.py' https://localhost:$HTTPS '$WORK/relay.crt' \
    relay=https://relay.example./ addr=192.0.2.10:4433) && echo \"key \$z\" &&
    kdig @127.0.0.1 -p $DNS +time=3 +retry=1 _iroh.\$z.irohdns.example. TXT | tee /dev/stderr | grep -q 'addr=192.0.2.10:4433'"
check "DNS over TCP: NS of irohdns.example. (kdig +tcp)" \
  bash -c "kdig @127.0.0.1 -p $DNS +tcp +time=3 +short irohdns.example. NS | grep -qx 'ns1.irohdns.example.'"
check "STUN binding (turnutils_stunclient)" \
  bash -c "timeout 10 turnutils_stunclient -p $STUN 127.0.0.1 | grep -q 'UDP reflexive addr: 127.0.0.1:'"
check "QAD handshake (quic-go, ALPN /iroh-qad/0)" \
  timeout 15 "$GO_CLIENT" -addr "127.0.0.1:$QAD" -ca "$WORK/relay.crt" -sni localhost
pid="$(docker inspect -f '{{.State.Pid}}' "$relay")"
check "the daemon (container PID 1 = iroh-relay after the entrypoint's exec) runs as a non-root user" \
  bash -c "grep -q '^Name:.*iroh-relay' /proc/$pid/status && awk '/^Uid:/ { exit !(\$2 != 0 && \$3 != 0) }' /proc/$pid/status && docker exec $relay id"
check "its only effective capability is CAP_NET_BIND_SERVICE" \
  bash -c "grep -qx 'CapEff:[[:space:]]*0000000000000400' /proc/$pid/status"
check "state and certificates live in the volumes, owned by the daemon's user" \
  bash -c "docker exec $relay ls -ln /var/lib/iroh-relay /var/lib/iroh-relay/certs && docker exec $relay test -O /var/lib/iroh-relay/certs/relay.key -a -O /var/lib/iroh-relay/pkarr.sqlite3"
prom_up() {
  curl -sS --max-time 5 "http://127.0.0.1:$PROM/api/v1/query" --data-urlencode 'query=up{job="iroh-relay"}' |
    "$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(not (r and r[0]["value"][1] == "1"))'
}
docker_lib_wait_for 60 prom_up
check "Prometheus (deploy/prometheus/prometheus.yml) scrapes the relay: up == 1" prom_up
check "Prometheus loaded the alert rules of deploy/prometheus/alerts.yml" \
  bash -c "curl -sS --max-time 5 http://127.0.0.1:$PROM/api/v1/rules | grep -q '\"file\":\"/etc/prometheus/alerts.yml\"'"
phase_done "checks"

# ---- two lookup nodes on one PostgreSQL (docker/compose.postgres.yaml, issue 15) ---------------
phase "postgres compose up"
echo "ports: postgres $PGPORT, node A http $A_HTTP dns $A_DNS, node B http $B_HTTP dns $B_DNS"
# docker/lookup-{a,b}.yaml as shipped, but for the ports.
for node in a b; do
  if [ "$node" = a ]; then h=$A_HTTP d=$A_DNS m=$A_METRICS; else h=$B_HTTP d=$B_DNS m=$B_METRICS; fi
  n=8001 ns=5301 nm=9101
  [ "$node" = b ] && n=8002 ns=5302 nm=9102
  replace_all "$ROOT/docker/lookup-$node.yaml" "$WORK/lookup-$node.yaml" \
    "\"[::]:$n\"" "\"[::]:$h\"" "\"[::]:$ns\"" "\"[::]:$d\"" "\"127.0.0.1:$nm\"" "\"127.0.0.1:$m\"" \
    '@127.0.0.1:5432/' "@127.0.0.1:$PGPORT/" \
    || die "cannot derive the test config from docker/lookup-$node.yaml"
done
IROH_PG_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
export IROH_PG_PASSWORD POSTGRES_PORT="$PGPORT" IROH_POSTGRES_IMAGE="$POSTGRES_IMAGE"
export IROH_LOOKUP_A_CONFIG="$WORK/lookup-a.yaml" IROH_LOOKUP_B_CONFIG="$WORK/lookup-b.yaml"
export IROH_LOOKUP_A_HEALTH_URL="http://127.0.0.1:$A_HTTP/ping" IROH_LOOKUP_B_HEALTH_URL="http://127.0.0.1:$B_HTTP/ping"
export IROH_PG_HEALTH_INTERVAL=1s
check "docker-compose config accepts docker/compose.postgres.yaml" compose_pg config -q
compose_pg down -v --remove-orphans >/dev/null 2>&1  # leftovers of an interrupted run
compose_pg_up=1
# service_healthy: the nodes start once PostgreSQL answers pg_isready.
compose_pg up -d --no-build postgres lookup-a lookup-b >"$WORK/compose-pg-up.log" 2>&1 ||
  { cat "$WORK/compose-pg-up.log"; die "docker-compose up (postgres) failed"; }
node_a="$(compose_pg ps -q lookup-a)" node_b="$(compose_pg ps -q lookup-b)" pg="$(compose_pg ps -q postgres)"
if [ -z "$node_a" ] || [ -z "$node_b" ] || [ -z "$pg" ]; then die "containers of compose.postgres.yaml missing"; fi
both_healthy() {
  for c in "$node_a" "$node_b"; do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ] || return 1
  done
}
docker_lib_wait_for 90 both_healthy || { docker logs "$node_a" 2>&1 | tail -n 20; docker logs "$node_b" 2>&1 | tail -n 20; }
phase_done "postgres compose up"

phase "postgres checks"
check "postgres (docker/postgres.Dockerfile) and both nodes report healthy" bash -c "
  [ \"\$(docker inspect -f '{{.State.Health.Status}}' $pg)\" = healthy ] &&
  [ \"\$(docker inspect -f '{{.State.Health.Status}}' $node_a)\" = healthy ] &&
  [ \"\$(docker inspect -f '{{.State.Health.Status}}' $node_b)\" = healthy ]"
check "both nodes' /healthz report the PostgreSQL store ok" bash -c "
  curl -sS --max-time 5 http://127.0.0.1:$A_HTTP/healthz | tee /dev/stderr | grep -q '\"store\":\"ok\"' &&
  curl -sS --max-time 5 http://127.0.0.1:$B_HTTP/healthz | tee /dev/stderr | grep -q '\"store\":\"ok\"'"
rm -f "$WORK/pg-key" "$WORK/pg-put1" "$WORK/pg-put2"
z=""
check "PUT /pkarr on node A (PyNaCl + dnspython) gets 2xx" bash -c "
  '$PY' '$ROOT/tests/docker/pkarr_publish.py' --key '$WORK/pg-key' --out '$WORK/pg-put1' \
    http://127.0.0.1:$A_HTTP - addr=192.0.2.20:4433 >'$WORK/pg-z32'"
z="$(cat "$WORK/pg-z32" 2>/dev/null)"
echo "key $z"
check "node B serves the same bytes on GET /pkarr (curl)" bash -c "
  curl -sS --max-time 5 -f -o '$WORK/pg-get-b' http://127.0.0.1:$B_HTTP/pkarr/$z && cmp '$WORK/pg-put1' '$WORK/pg-get-b'"
check "node B answers DNS _iroh.<key>.irohdns.example. TXT (kdig)" bash -c "
  kdig @127.0.0.1 -p $B_DNS +time=3 +retry=1 _iroh.$z.irohdns.example. TXT | tee /dev/stderr | grep -q 'addr=192.0.2.20:4433'"
# Node A cached its own packet (GET, DNS); B's newer packet reaches A's cache through NOTIFY.
check "a newer PUT on node B is served by node A within 5 s (GET /pkarr and DNS)" bash -c "
  curl -sS --max-time 5 -f -o /dev/null http://127.0.0.1:$A_HTTP/pkarr/$z &&
  '$PY' '$ROOT/tests/docker/pkarr_publish.py' --key '$WORK/pg-key' --out '$WORK/pg-put2' \
    http://127.0.0.1:$B_HTTP - addr=192.0.2.21:4433 >/dev/null &&
  for i in \$(seq 1 50); do
    curl -sS --max-time 5 -f -o '$WORK/pg-get-a' http://127.0.0.1:$A_HTTP/pkarr/$z &&
      cmp -s '$WORK/pg-put2' '$WORK/pg-get-a' && break
    sleep 0.1
  done && cmp '$WORK/pg-put2' '$WORK/pg-get-a' &&
  kdig @127.0.0.1 -p $A_DNS +time=3 +retry=1 _iroh.$z.irohdns.example. TXT | tee /dev/stderr | grep -q 'addr=192.0.2.21:4433'"
check "the daemons log in as the unprivileged role iroh (not a superuser)" bash -c "
  docker exec $pg /usr/lib/postgresql/15/bin/psql -X -h /tmp -p $PGPORT -U postgres -d iroh -Atc \
    \"SELECT usename, usesuper FROM pg_stat_activity JOIN pg_user USING (usename) WHERE application_name LIKE 'iroh-relay-%' GROUP BY 1, 2\" |
    tee /dev/stderr | grep -qx 'iroh|f'"
phase_done "postgres checks"

# ---- two relay nodes in a mesh (docker/compose.mesh.yaml, issue 16) ----------------------------
phase "mesh compose up"
echo "ports: mesh node A http $MA_HTTP metrics $MA_METRICS, node B http $MB_HTTP metrics $MB_METRICS"
# docker/mesh-{a,b}.yaml as shipped, but for the ports (each node's own and its peer's).
replace_all "$ROOT/docker/mesh-a.yaml" "$WORK/mesh-a.yaml" '"[::]:8011"' "\"[::]:$MA_HTTP\"" \
  '"127.0.0.1:9111"' "\"127.0.0.1:$MA_METRICS\"" '"http://127.0.0.1:8012"' "\"http://127.0.0.1:$MB_HTTP\"" \
  || die "cannot derive the test config from docker/mesh-a.yaml"
replace_all "$ROOT/docker/mesh-b.yaml" "$WORK/mesh-b.yaml" '"[::]:8012"' "\"[::]:$MB_HTTP\"" \
  '"127.0.0.1:9112"' "\"127.0.0.1:$MB_METRICS\"" '"http://127.0.0.1:8011"' "\"http://127.0.0.1:$MA_HTTP\"" \
  || die "cannot derive the test config from docker/mesh-b.yaml"
# The secret as compose.mesh.yaml asks for it: owned by the image's daemon user, mode 0600.
rm -f "$WORK/mesh.key"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/mesh.key")
chown 10001:10001 "$WORK/mesh.key"
export IROH_MESH_PSK_FILE="$WORK/mesh.key" IROH_MESH_A_CONFIG="$WORK/mesh-a.yaml" IROH_MESH_B_CONFIG="$WORK/mesh-b.yaml"
export IROH_MESH_A_HEALTH_URL="http://127.0.0.1:$MA_HTTP/ping" IROH_MESH_B_HEALTH_URL="http://127.0.0.1:$MB_HTTP/ping"
check "docker-compose config accepts docker/compose.mesh.yaml" compose_mesh config -q
compose_mesh down -v --remove-orphans >/dev/null 2>&1  # leftovers of an interrupted run
compose_mesh_up=1
compose_mesh up -d --no-build mesh-a mesh-b >"$WORK/compose-mesh-up.log" 2>&1 ||
  { cat "$WORK/compose-mesh-up.log"; die "docker-compose up (mesh) failed"; }
mesh_a="$(compose_mesh ps -q mesh-a)" mesh_b="$(compose_mesh ps -q mesh-b)"
if [ -z "$mesh_a" ] || [ -z "$mesh_b" ]; then die "containers of compose.mesh.yaml missing"; fi
mesh_linked() { # both nodes' outgoing links are up
  curl -sS --max-time 5 "http://127.0.0.1:$MA_METRICS/metrics" | grep -qx 'relayserver_mesh_peers_up 1' &&
    curl -sS --max-time 5 "http://127.0.0.1:$MB_METRICS/metrics" | grep -qx 'relayserver_mesh_peers_up 1'
}
mesh_healthy() { # both containers' health checks have passed (the first runs one interval after start)
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$mesh_a")" = healthy ] &&
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$mesh_b")" = healthy ]
}
# Wait for both: the links can be up before the first health check has run, and a check that
# reads "starting" then fails on a fast machine (it did in CI on 0804f55).
mesh_ready() { mesh_linked && mesh_healthy; }
docker_lib_wait_for 90 mesh_ready ||
  { docker logs "$mesh_a" 2>&1 | tail -n 20; docker logs "$mesh_b" 2>&1 | tail -n 20; }
phase_done "mesh compose up"

phase "mesh checks"
check "both mesh nodes report healthy" bash -c "
  [ \"\$(docker inspect -f '{{.State.Health.Status}}' $mesh_a)\" = healthy ] &&
  [ \"\$(docker inspect -f '{{.State.Health.Status}}' $mesh_b)\" = healthy ]"
check "both nodes' mesh links are up (relayserver_mesh_peers_up 1 on each)" mesh_linked
rm -f "$WORK/mesh-b-endpoint.key" "$WORK/mesh-listen.out"
check "a datagram sent on node A reaches a listener on node B across the mesh (iroh-relay-client)" bash -c "
  id=\$('$RELAY_CLIENT' keygen --out '$WORK/mesh-b-endpoint.key' | head -n 1) &&
  { '$RELAY_CLIENT' listen --relay http://127.0.0.1:$MB_HTTP --key '$WORK/mesh-b-endpoint.key' --count 1 \
      --timeout 20 >'$WORK/mesh-listen.out' & } &&
  for i in \$(seq 1 50); do
    grep -q 'across the mesh' '$WORK/mesh-listen.out' && break
    '$RELAY_CLIENT' send --relay http://127.0.0.1:$MA_HTTP --to \$id 'across the mesh' 2>/dev/null
    sleep 0.2
  done; wait; cat '$WORK/mesh-listen.out'; grep -q ' across the mesh\$' '$WORK/mesh-listen.out'"
check "node A counted datagrams forwarded to node B (relayserver_mesh_forwarded_datagrams_total)" bash -c "
  curl -sS --max-time 5 http://127.0.0.1:$MA_METRICS/metrics | tee /dev/stderr |
    grep -Eq '^relayserver_mesh_forwarded_datagrams_total\\{peer=\"http://127.0.0.1:$MB_HTTP\"\\} [1-9]'"
phase_done "mesh checks"

