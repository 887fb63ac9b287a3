# Prometheus from Debian 12's package, for docker/compose.yaml (which mounts the scrape config
# deploy/prometheus/prometheus.yml and the alert rules). Build from the repository root:
#   docker build -f docker/prometheus.Dockerfile -t iroh-relay-prometheus .
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# The package's own user; no node exporter (a recommendation). policy-rc.d keeps the package's
# maintainer scripts from starting the service during the build (official Debian images carry
# it already, a debootstrapped base does not). The raw time-zone sources of libjs-moment-timezone
# (212 MB, a dependency; the web UI loads the prebuilt *-with-data.js files) are not unpacked.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && echo 'path-exclude=/usr/share/javascript/moment-timezone/data/*' > /etc/dpkg/dpkg.cfg.d/no-moment-tz-data \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus -m 0750 /prometheus
USER prometheus
VOLUME ["/prometheus"]
EXPOSE 9091/tcp
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", \
     "--web.listen-address=127.0.0.1:9091"]
