# PostgreSQL 15 from Debian 12's package, for docker/compose.postgres.yaml (address lookup on N
# daemons sharing one database, issue 15). Build from the repository root:
#   docker build -f docker/postgres.Dockerfile -t iroh-relay-postgres .
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps the maintainer scripts from starting a server during the build (official Debian
# images carry it already, a debootstrapped base does not); create_main_cluster = false keeps
# postgresql-common from creating the cluster "main": the entrypoint initialises its own in the
# data volume on first start.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY docker/postgres-entrypoint.sh /usr/local/bin/iroh-postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432/tcp
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/bin/sh", "-c", "/usr/lib/postgresql/15/bin/pg_isready -q -h 127.0.0.1 -p \"${POSTGRES_PORT:-5432}\""]
ENTRYPOINT ["/bin/sh", "/usr/local/bin/iroh-postgres-entrypoint"]
