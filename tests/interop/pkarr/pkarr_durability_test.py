#!/usr/bin/python3
"""Durability of acknowledged PUTs: SIGKILL iroh-relay in the middle of a PUT load, restart it on
the same data dir, and GET every packet that was answered 204 (byte-identical).

usage: pkarr_durability_test.py <iroh-relay> [seconds-of-load]
Loopback only; the load is bounded in time and count.
"""
import http.client
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkarr_testlib import Daemon, Signer, scratch_dir, verify_payload  # noqa

CONNECTIONS = 16
MAX_PUTS_PER_CONNECTION = 5000


def main():
    binary = sys.argv[1]
    load_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    root = scratch_dir("pkarr-durability")
    acked = {}  # z32 -> payload answered 204
    keys = {}  # z32 -> public key hex
    lock = threading.Lock()
    stop = threading.Event()
    try:
        d = Daemon(binary, root, "pkarr_put_rate_limit: disabled\n").start()
        port = d.port
        # Packets are signed up front so the load is HTTP + store, not Python signing.
        base_ts = int(time.time() * 1e6)

        def worker(index):
            signers = [Signer() for _ in range(64)]
            conn = None
            for n in range(MAX_PUTS_PER_CONNECTION):
                if stop.is_set():
                    break
                signer = signers[n % len(signers)]
                payload = signer.record_payload(base_ts + n, ["relay=https://w%d.example./" % index])
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("PUT", "/pkarr/" + signer.z32, body=payload)
                    res = conn.getresponse()
                    res.read()
                except (OSError, http.client.HTTPException):
                    # The daemon died mid-request: that PUT was never acknowledged.
                    break
                if res.status == 204:
                    with lock:
                        acked[signer.z32] = payload  # timestamps increase per key
                        keys[signer.z32] = signer.public.hex()
                else:
                    print("unexpected status", res.status)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
        for t in threads:
            t.start()
        time.sleep(load_seconds)
        with lock:
            before_kill = len(acked)
        d.kill()  # SIGKILL while the workers are still sending
        stop.set()
        for t in threads:
            t.join(30)
        print("acknowledged PUTs before SIGKILL: %d (distinct keys %d)" % (before_kill, len(acked)))
        if before_kill < 50:
            print("FAIL: the load did not get going (%d PUTs acknowledged)" % before_kill)
            return 1

        d2 = Daemon(binary, root, "pkarr_put_rate_limit: disabled\n", "relay2.log").start()
        missing, different = [], []
        try:
            conn = http.client.HTTPConnection("127.0.0.1", d2.port, timeout=10)
            for z32, payload in acked.items():
                conn.request("GET", "/pkarr/" + z32)
                res = conn.getresponse()
                body = res.read()
                if res.status != 200:
                    missing.append(z32)
                elif body != payload:
                    # A newer PUT of the same key may have been committed without its 204
                    # reaching us before the kill; that is fine, an older packet is not.
                    signer_public = bytes.fromhex(keys[z32])
                    if not (body[64:72] > payload[64:72] and verify_payload(signer_public, body)):
                        different.append(z32)
            conn.close()
        finally:
            d2.stop()
        if missing or different:
            print("FAIL: %d acknowledged packets missing, %d different after restart" %
                  (len(missing), len(different)))
            return 1
        print("all %d acknowledged keys returned byte-identical after SIGKILL + restart" % len(acked))
        return 0
    finally:
        stop.set()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
