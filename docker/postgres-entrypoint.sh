#!/bin/sh
# Entrypoint of docker/postgres.Dockerfile (runs as the postgres user). On the first start (no
# cluster in $PGDATA) it runs initdb and creates the role and database the iroh-relay daemons use;
# then it runs the server in the foreground.
#
#   IROH_PG_PASSWORD   the password of role IROH_PG_USER; used at the first start only (later
#                      starts keep the stored one; change it with ALTER ROLE)
#   IROH_PG_USER       role and database name (default: iroh)
#   POSTGRES_LISTEN    listen_addresses (default: 127.0.0.1; the compose file uses the host's
#                      network, so "*" would open the database to every network the host is on)
#   POSTGRES_PORT      port (default: 5432)
#   IROH_PG_ALLOW      first start only: space-separated CIDRs whose hosts may log in as
#                      IROH_PG_USER with the password (e.g. the lookup nodes' addresses; together
#                      with POSTGRES_LISTEN). Loopback is always allowed.
#
# Authentication: scram-sha-256 over TCP for every role; the superuser "postgres" has no password
# and logs in only over the container's Unix socket (docker exec ... psql -h /tmp).
set -eu
bin=/usr/lib/postgresql/15/bin
export PATH="$bin:$PATH"
user="${IROH_PG_USER:-iroh}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${IROH_PG_PASSWORD:-}" ]; then
    echo "iroh-postgres-entrypoint: set IROH_PG_PASSWORD for the first start" >&2
    exit 1
  fi
  initdb -D "$PGDATA" -U postgres -E UTF8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  # Unix socket only while setting up: no client can connect before the role exists.
  pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start >/dev/null
  psql -X -q -h /tmp -U postgres -d postgres -v ON_ERROR_STOP=1 -v user="$user" \
    -v password="$IROH_PG_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"user" OWNER :"user";
SQL
  for cidr in ${IROH_PG_ALLOW:-}; do
    printf 'host %s %s %s scram-sha-256\n' "$user" "$user" "$cidr" >>"$PGDATA/pg_hba.conf"
  done
  pg_ctl -D "$PGDATA" -w -t 60 -m fast stop >/dev/null
  echo "iroh-postgres-entrypoint: initialised $PGDATA with role and database $user" >&2
fi
exec postgres -D "$PGDATA" -c listen_addresses="${POSTGRES_LISTEN:-127.0.0.1}" \
  -c port="${POSTGRES_PORT:-5432}" -c unix_socket_directories=/tmp "$@"
