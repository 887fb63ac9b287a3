#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the PostgreSQL zone store tests and benchmarks (issue 15),
# listening on 127.0.0.1 only, trust authentication, everything under DIR:
#   pg_cluster.sh start DIR PORT [SETTING=VALUE...]   initdb (first time) + pg_ctl start, waits
#   pg_cluster.sh stop DIR                            pg_ctl stop -m fast, waits (data kept)
#   pg_cluster.sh destroy DIR                         stop (immediate) and remove DIR
# initdb refuses to run as root: as root the cluster runs as the `postgres` user (the Debian
# package creates it) and DIR is handed to it; otherwise as the calling user. Extra settings go to
# the server command line (e.g. fsync=off for the tests). Every wait is bounded (pg_ctl -t).
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
"$ROOT/tests/require-tools.sh" "$BIN/initdb" "$BIN/pg_ctl" >&2 || exit 1

cmd="${1:?usage: pg_cluster.sh start DIR PORT | stop DIR | destroy DIR}"
dir="${2:?DIR missing}"

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    port="${3:?PORT missing}"
    shift 3
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir"
    for setting in "$@"; do opts="$opts -c $setting"; done
    if ! as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$opts" start \
      >/dev/null; then
      tail -n 20 "$dir/postgres.log" >&2
      exit 1
    fi
    ;;
  stop)
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    ;;
  destroy)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg_cluster.sh start DIR PORT | stop DIR | destroy DIR" >&2
    exit 2
    ;;
esac
