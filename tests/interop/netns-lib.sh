# Network-namespace helpers shared by the interop scripts that run relays and endpoints in private
# namespaces (netns-pair.sh, iroh/mesh.sh). Sourced, needs root and `ip`. Everything lives in
# namespaces made here: nothing is added to the root namespace and, unless a script adds a route,
# nothing can leave the machine (no default route anywhere).
#
#   netns_make NS                          new namespace with lo up (remembered for clean-up)
#   netns_veth NS1 DEV1 ADDR1 NS2 DEV2 ADDR2
#                                          a veth pair between two namespaces, IPv4 only, up
#   netns_no_route NS DST...               fails (with a message) if NS has a route to any DST
#   netns_run NS SECONDS CMD...            CMD inside NS, killed after SECONDS
#   netns_stop_all                         ends the background jobs in NETNS_BG and every process
#                                          in our namespaces (TERM, up to 5 s, then KILL)
#   netns_delete_all                       netns_stop_all, then deletes our namespaces
# Scripts append the PIDs of their background jobs to NETNS_BG.

NETNS_CREATED=()
NETNS_BG=()

netns_make() {
  ip netns add "$1" && NETNS_CREATED+=("$1") && ip -n "$1" link set lo up
}

netns_veth() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" || return 1
  local spec
  for spec in "$1 $2 $3" "$4 $5 $6"; do
    set -- $spec
    ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"   # IPv4 only on the veths
    ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up || return 1
  done
}

netns_no_route() {
  local ns="$1" dst
  shift
  for dst in "$@"; do
    if ip -n "$ns" route get "$dst" >/dev/null 2>&1; then
      echo "isolation check failed: namespace $ns has a route to $dst" >&2
      return 1
    fi
  done
}

netns_run() {
  local ns="$1" secs="$2"
  shift 2
  timeout "$secs" ip netns exec "$ns" "$@"
}

netns_stop_all() {
  local ns pid left
  for pid in "${NETNS_BG[@]}"; do kill "$pid" 2>/dev/null; done
  for ns in "${NETNS_CREATED[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  done
  for _ in $(seq 1 50); do
    left=0
    for ns in "${NETNS_CREATED[@]}"; do [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for ns in "${NETNS_CREATED[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for pid in "${NETNS_BG[@]}"; do wait "$pid" 2>/dev/null; done
  NETNS_BG=()
}

netns_delete_all() {
  netns_stop_all
  local ns
  for ns in "${NETNS_CREATED[@]}"; do ip netns del "$ns" 2>/dev/null; done
  NETNS_CREATED=()
}
