#!/usr/bin/python3
"""npm pkarr@1.3.0 (pkarr_interop.mjs) against the iroh-relay binary's /pkarr API (spec §11):
JS relayPut + relayGet of its own packet; JS relayGet of a packet Python (PyNaCl) published;
Python GET + signature check of the packet JS published.

usage: pkarr_interop_test.py <iroh-relay>     (node or node_modules missing = failure)
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pkarr_testlib import Daemon, Signer, scratch_dir, verify_payload  # noqa


def node(*args):
    out = subprocess.run(["node", os.path.join(HERE, "pkarr_interop.mjs"), *args],
                         capture_output=True, text=True, timeout=60, cwd=HERE)
    if out.returncode != 0:
        raise RuntimeError("node %s failed: %s%s" % (args[0], out.stdout, out.stderr))
    return json.loads(out.stdout)


def main():
    if subprocess.run([os.path.join(HERE, "..", "..", "require-tools.sh"), "node"]).returncode != 0:
        return 1
    if not os.path.isdir(os.path.join(HERE, "node_modules", "pkarr")):
        print("FAIL: tests/interop/pkarr/node_modules missing: scripts/setup runs npm install there")
        return 1
    root = scratch_dir("pkarr-interop")
    failures = 0
    try:
        d = Daemon(sys.argv[1], root, "pkarr_put_rate_limit: disabled\n").start()
        base = "http://127.0.0.1:%d/pkarr" % d.port
        try:
            # 1. JS publishes and reads back its own packet (relayPut must see 204).
            published = node("publish", base)
            print("JS published", published["z32"])
            # 2. We read the JS packet and verify it.
            status, headers, body = d.request("GET", "/pkarr/" + published["z32"])
            js_payload = bytes.fromhex(published["payload_hex"])
            js_key = z32_decode(published["z32"])
            if not (status == 200 and body == js_payload and verify_payload(js_key, body)):
                print("FAIL: GET of the JS-published packet (status %d)" % status)
                failures += 1
            else:
                print("ok: GET returns the JS packet byte for byte, signature verifies")
            # 3. JS reads a packet that Python published (compressed names like iroh).
            signer = Signer()
            payload = signer.record_payload(int(time.time() * 1e6),
                                            ["relay=https://py.example./", "addr=192.0.2.1:1"])
            status = d.request("PUT", "/pkarr/" + signer.z32, payload)[0]
            read = node("read", base, signer.z32)
            txt = [r["txt"] for r in read["records"]]
            names = {r["name"] for r in read["records"]}
            if status != 204 or txt != ["relay=https://py.example./", "addr=192.0.2.1:1"] or \
                    names != {"_iroh." + signer.z32}:
                print("FAIL: JS relayGet of the Python packet:", status, read)
                failures += 1
            else:
                print("ok: JS relayGet decodes the Python-published packet:", txt)
            # 4. JS relayGet of an unknown key fails the way §11 describes (the 404 JSON body).
            unknown = Signer().z32
            try:
                node("read", base, unknown)
                print("FAIL: JS relayGet of an unknown key succeeded")
                failures += 1
            except RuntimeError as e:
                print("ok: JS relayGet of an unknown key fails:", str(e).strip()[:160])
        finally:
            d.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


def z32_decode(text):
    from pkarr_testlib import Z32_ALPHABET
    bits = 0
    for c in text:
        bits = (bits << 5) | Z32_ALPHABET.index(c)
    return (bits >> 4).to_bytes(32, "big")


if __name__ == "__main__":
    sys.exit(main())
