#!/usr/bin/env bash
# Checks the operator files in deploy/ with the real tools: nginx -t on the reverse-proxy recipe
# (certificate paths pointed at a throwaway self-signed pair), systemd-analyze verify on the unit
# (ExecStart pointed at the built binary), and the Grafana dashboard JSON (parses; every metric it
# queries is registered somewhere in server/src).
# Usage: deploy_files.sh <source dir> <iroh-relay binary>
set -euo pipefail
SRC="$1"; RELAY="$2"
"$SRC/tests/require-tools.sh" nginx systemd-analyze openssl python3 || exit 1
WORK="$(mktemp -d /tmp/deploy-files.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
fail=0

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=relay.example.com -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
sed -e "s#/etc/letsencrypt/live/relay.example.com/fullchain.pem#$WORK/cert.pem#" \
    -e "s#/etc/letsencrypt/live/relay.example.com/privkey.pem#$WORK/key.pem#" \
    "$SRC/deploy/reverse-proxy/nginx.conf" >"$WORK/site.conf"
printf 'pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n access_log off;\n include %s/site.conf;\n}\n' \
  "$WORK" "$WORK" >"$WORK/main.conf"
if nginx -t -c "$WORK/main.conf" -p "$WORK" 2>&1; then echo "ok   nginx -t deploy/reverse-proxy/nginx.conf"
else echo "FAIL nginx -t"; fail=1; fi

sed -e "s#^ExecStart=/usr/bin/iroh-relay#ExecStart=$RELAY#" "$SRC/deploy/iroh-relay.service" \
  >"$WORK/iroh-relay.service"
if out=$(systemd-analyze verify "$WORK/iroh-relay.service" 2>&1) && [ -z "$out" ]; then
  echo "ok   systemd-analyze verify deploy/iroh-relay.service"
else
  echo "FAIL systemd-analyze verify:"; echo "$out"; fail=1
fi

if /usr/bin/python3 - "$SRC" <<'PY'
import json, os, re, sys
src = sys.argv[1]
dash = json.load(open(os.path.join(src, "deploy/grafana/iroh-relay-dashboard.json")))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
names = set()
for e in exprs:
    names |= set(re.findall(r"\b((?:relayserver|dns_server|stun|process)_[a-z0-9_]+)", e))
code = ""
for root, _, files in os.walk(os.path.join(src, "server/src")):
    for f in files:
        if f.endswith((".cpp", ".hpp")):
            code += open(os.path.join(root, f), errors="replace").read()
def registered(n):
    base = re.sub(r"_(bucket|count|sum)$", "", n)
    if base in code:
        return True
    # Families built from a prefix + field ("dns_server_" + field + "_total"), or the relay
    # reference table (prefix relayserver_, field name, _total appended).
    for prefix in ("dns_server_", "relayserver_"):
        if base.startswith(prefix):
            field = base[len(prefix):]
            for f in (field, field[:-len("_total")] if field.endswith("_total") else field):
                if f'"{f}"' in code or f'"{f}_total"' in code:
                    return True
    return False
missing = sorted(n for n in names if not registered(n))
print(f"dashboard: {len(dash['panels'])} panels, {len(exprs)} queries, {len(names)} metric names")
if missing:
    print("metrics queried by the dashboard but registered nowhere:", *missing)
    sys.exit(1)
PY
then echo "ok   grafana dashboard"; else echo "FAIL grafana dashboard"; fail=1; fi
exit $fail
