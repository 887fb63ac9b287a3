#!/bin/sh
# Container entrypoint: makes a self-signed TLS certificate when asked to and none exists yet,
# then runs iroh-relay with the given arguments.
#
#   IROH_RELAY_SELF_SIGNED_CERT, IROH_RELAY_SELF_SIGNED_KEY: where the certificate and key go
#     (both set = generate them if the certificate file is missing; a certificate you mount
#     there is never overwritten). Point tls.manual_cert_path / manual_key_path at them.
#   IROH_RELAY_HOSTNAME: the certificate's name (default: localhost).
#
# A self-signed certificate is enough for QUIC address discovery (iroh endpoints fall back to
# other probes when they do not trust it) but not for HTTPS relaying to iroh endpoints: mount a
# real certificate, or use tls.cert_mode letsencrypt.
set -eu
cert="${IROH_RELAY_SELF_SIGNED_CERT:-}"
key="${IROH_RELAY_SELF_SIGNED_KEY:-}"
if [ -n "$cert" ] && [ -n "$key" ] && [ ! -e "$cert" ]; then
  name="${IROH_RELAY_HOSTNAME:-localhost}"
  mkdir -p "$(dirname "$cert")" "$(dirname "$key")"
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
    -keyout "$key" -out "$cert" 2>/dev/null
  chmod 0644 "$cert"
  echo "iroh-relay-entrypoint: generated a self-signed certificate for $name in $cert" >&2
fi
exec /usr/local/bin/iroh-relay "$@"
