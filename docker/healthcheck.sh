#!/bin/bash
# Container health check: GET /ping on the relay listener, healthy on "HTTP/1.1 200".
#   IROH_RELAY_HEALTH_URL: http://HOST:PORT/PATH or https://HOST:PORT/PATH
#   (default http://127.0.0.1:80/ping; https does not verify the certificate).
# Needs no curl: bash's /dev/tcp for http, openssl s_client for https.
set -u
url="${IROH_RELAY_HEALTH_URL:-http://127.0.0.1:80/ping}"
scheme="${url%%://*}"
rest="${url#*://}"
hostport="${rest%%/*}"
path="/${rest#*/}"
[ "$rest" = "$hostport" ] && path=/
host="${hostport%:*}"
port="${hostport##*:}"
host="${host#[}"
host="${host%]}"
request="GET $path HTTP/1.1\r\nHost: $hostport\r\nConnection: close\r\n\r\n"
case "$scheme" in
  http)
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf "$request" >&3
    IFS= read -r -t 5 status <&3 || exit 1
    ;;
  https)
    status="$(printf "$request" | timeout 5 openssl s_client -quiet -connect "$hostport" \
      -servername localhost 2>/dev/null | head -n 1)"
    ;;
  *)
    echo "healthcheck: unsupported URL $url" >&2
    exit 2
    ;;
esac
case "$status" in
  "HTTP/1.1 200"*) exit 0 ;;
  *) echo "healthcheck: $url answered '${status%$'\r'}'" >&2; exit 1 ;;
esac
