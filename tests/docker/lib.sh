# shellcheck shell=bash
# Shared by tests/docker/run.sh and scripts/fresh-check (sourced, not run): a docker daemon that
# needs neither a bridge nor iptables, and a Debian 12 base image debootstrapped from the mirror
# apt uses (Docker Hub is not reachable from here).
#
# The caller sets, before calling the functions:
#   CACHE   directory kept between runs: the daemon's data-root (images, build layers) and the lock
#   RUNDIR  dockerd's sockets and exec-root (short path: unix sockets have a 108-byte limit)
#   WORK    this run's scratch directory (logs)
# and defines `die MESSAGE...` (print, count a failure, exit). The caller's EXIT trap calls
# docker_lib_cleanup.

docker_lib_started_dockerd=""
docker_lib_rootfs_tmp=""
DOCKER_LIB_BASE_RECIPE=2 # bump when the base image recipe below changes

docker_lib_wait_for() { # docker_lib_wait_for SECONDS CMD...: polls CMD every second until it succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 1
  done
}

# docker_lib_lock: one user of $CACHE at a time (they share the daemon, its images and the
# rootfs scratch space). Holds fd 9 until the caller exits.
docker_lib_lock() {
  mkdir -p "$CACHE" "$RUNDIR"
  exec 9>"$CACHE/lock"
  flock -w "${1:-2400}" 9 || die "another user holds $CACHE/lock"
}

# docker_lib_daemon: uses the docker daemon that answers (the default socket, then ours in
# $RUNDIR), else starts `dockerd --bridge=none --iptables=false` (no bridge, no NAT rules on
# this machine: containers use the host network) and exports DOCKER_HOST for it.
docker_lib_daemon() {
  if docker info >/dev/null 2>&1; then
    echo "using the running docker daemon"
  else
    export DOCKER_HOST="unix://$RUNDIR/docker.sock"
    if ! docker info >/dev/null 2>&1; then
      mkdir -p "$CACHE/data-root"
      echo "starting dockerd (log: $WORK/dockerd.log)"
      dockerd --bridge=none --iptables=false --data-root "$CACHE/data-root" \
        --exec-root "$RUNDIR/exec" --pidfile "$RUNDIR/dockerd.pid" -H "$DOCKER_HOST" \
        >"$WORK/dockerd.log" 2>&1 9>&- & # 9>&-: the daemon must not hold the caller's lock
      docker_lib_started_dockerd=1
      if ! docker_lib_wait_for 60 docker info; then
        tail -n 30 "$WORK/dockerd.log"
        die "dockerd did not answer within 60 s"
      fi
    fi
  fi
  docker version --format 'client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})'
  # docker-compose 1.29 (python) speaks the server's API itself; the docker CLI negotiates.
  # Without the buildx plugin the CLI must be told to use the classic builder.
  docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
}

# docker_lib_base_image: sets BASE_IMAGE to a minbase Debian 12 image built with debootstrap and
# `docker import`, cached under a key of the recipe and this machine's apt sources; sets
# DOCKER_LIB_BASE_BUILT=1 when it had to build it (the caller's phase timing says which).
docker_lib_base_image() {
  # shellcheck disable=SC2034 # read by the caller
  DOCKER_LIB_BASE_BUILT=""
  # The repositories apt uses on this machine (bookworm, -updates, -security) and its acquire
  # options (a dated snapshot mirror needs Check-Valid-Until off): the image gets the same.
  local sources mirror aptconf key rootfs
  sources="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' |
    awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u |
    awk '{ k = $1 " " $2; if (!(k in c)) order[n++] = k; c[k] = c[k] " " $3 }
         END { for (i = 0; i < n; i++) print "deb " order[i] c[order[i]] }')"
  mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 == "bookworm" { print $1; exit }')"
  [ -n "$mirror" ] || die "apt has no bookworm repository configured"
  aptconf="$(apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' || true)"
  key="$(printf '%s\n' "$DOCKER_LIB_BASE_RECIPE" "$sources" "$aptconf" | sha256sum | cut -c1-12)"
  BASE_IMAGE="iroh-relay-test-base:$key"
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "cached: $BASE_IMAGE"
    return 0
  fi
  echo "debootstrap bookworm from $mirror (log: $WORK/debootstrap.log)"
  docker_lib_rootfs_tmp="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  rootfs="$docker_lib_rootfs_tmp/rootfs"
  timeout 1200 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
  printf '%s\n' "$sources" >"$rootfs/etc/apt/sources.list"
  [ -n "$aptconf" ] && printf '%s\n' "$aptconf" >"$rootfs/etc/apt/apt.conf.d/99host-mirror"
  # What the official debian images carry: no service starts from maintainer scripts, no fsync
  # per unpacked file (dpkg is slow on overlayfs without it), no package caches.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . | docker import - "$BASE_IMAGE" >/dev/null ||
    die "docker import failed"
  rm -rf --one-file-system "$docker_lib_rootfs_tmp"
  docker_lib_rootfs_tmp=""
  # shellcheck disable=SC2034 # read by the caller
  DOCKER_LIB_BASE_BUILT=1
  echo "imported $BASE_IMAGE"
}

# docker_lib_cleanup: removes a half-built rootfs and stops the daemon if we started it.
docker_lib_cleanup() {
  if [ -n "$docker_lib_rootfs_tmp" ] && [ -d "$docker_lib_rootfs_tmp" ]; then
    findmnt -rn -o TARGET | grep -F "$docker_lib_rootfs_tmp/" | sort -r | xargs -r -n 1 umount -l
    rm -rf --one-file-system "$docker_lib_rootfs_tmp"
  fi
  if [ -n "$docker_lib_started_dockerd" ]; then
    docker image prune -f >/dev/null 2>&1 # superseded builds of our images
    local pid
    pid="$(cat "$RUNDIR/dockerd.pid" 2>/dev/null)"
    if [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
      done
      kill -KILL "$pid" 2>/dev/null
    fi
    # dockerd leaves its network-namespace bind mount behind.
    findmnt -rn -o TARGET | grep -F "$RUNDIR/" | sort -r | xargs -r -n 1 umount -l
  fi
}
