#!/usr/bin/env bash
# shared_token access with real iroh endpoints (npm @number0/iroh 1.1.0, whose relay map entry
# takes an authToken that iroh sends as "Authorization: Bearer <token>"), inside namespaces via
# iroh/run.sh (split variant: every byte through the relay):
#   1. both endpoints present the right token: the echo passes;
#   2. they present a wrong token: run.sh fails (no home relay) and the relay log shows the
#      denial (ServerDeniesAuth "not authorized") and never the token.
# Usage (root): iroh_shared_token.sh <path-to-iroh-relay>
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$1"
TOKEN="interop-shared-token-$$"
export IROH_INTEROP_EXTRA_CONFIG="log_level: debug
access:
  shared_token: [$TOKEN]"
WORK="$(mktemp -d /tmp/iroh-shared-token.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

if ! IROH_INTEROP_AUTH_TOKEN="$TOKEN" bash "$HERE/iroh/run.sh" "$BIN" --variant split \
    --keep "$WORK/right"; then
  echo "FAIL: endpoints presenting the shared token were not relayed"
  exit 1
fi
grep -rhq "connected from" "$WORK/right" || { echo "FAIL: no relay client in the relay log"; exit 1; }

if IROH_INTEROP_AUTH_TOKEN="wrong-$TOKEN" bash "$HERE/iroh/run.sh" "$BIN" --variant split \
    --keep "$WORK/wrong" >"$WORK/wrong.out" 2>&1; then
  echo "FAIL: endpoints presenting a wrong token were relayed"
  exit 1
fi
grep -rhq "denied (not authorized)" "$WORK/wrong" ||
  { echo "FAIL: no denial in the relay log"; cat "$WORK/wrong.out"; exit 1; }
if grep -rn --include='relay*.log' -- "$TOKEN" "$WORK/right" "$WORK/wrong"; then
  echo "FAIL: a token appears in the relay log"
  exit 1
fi
echo "iroh shared token: PASS (right token relayed, wrong token denied)"
