#!/usr/bin/python3
"""PUT/s of valid, distinct pkarr packets against a running iroh-relay (HTTP/1.1 keep-alive,
pipelined, several connections, rate limit disabled) vs the bare libsodium verify rate
(crypto_sign_verify_detached through PyNaCl) of the same packets, single thread, same run.

usage: pkarr_put_bench.py <iroh-relay> [packets=20000] [connections=4]
Prints both rates and the ratio (target >= 0.7). Loopback only; never fails on timings.
"""
import ctypes
import ctypes.util
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "interop", "pkarr"))
from pkarr_testlib import Daemon, Signer, scratch_dir  # noqa

PIPELINE = 64


def main():
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    signers = [Signer() for _ in range(256)]
    ts = int(time.time() * 1e6)
    packets = []
    for i in range(count):
        s = signers[i % len(signers)]
        packets.append((s, s.record_payload(ts + i, ["relay=https://bench.example./",
                                                      "addr=192.0.2.%d:4433" % (i % 250)])))

    # Baseline: libsodium crypto_sign_verify_detached on the same signed messages.
    sodium = ctypes.CDLL(ctypes.util.find_library("sodium"))
    sodium.sodium_init()
    verify = sodium.crypto_sign_verify_detached
    messages = []
    for s, p in packets:
        dns = p[72:]
        msg = b"3:seqi%de1:v%d:" % (int.from_bytes(p[64:72], "big"), len(dns)) + dns
        messages.append((p[:64], msg, len(msg), s.public))
    start = time.perf_counter()
    for sig, msg, n, pk in messages:
        if verify(sig, msg, ctypes.c_ulonglong(n), pk) != 0:
            raise SystemExit("baseline verify failed")
    verify_rate = count / (time.perf_counter() - start)

    root = scratch_dir("pkarr-bench")
    d = Daemon(binary, root, "pkarr_put_rate_limit: disabled\n").start()
    try:
        requests = [b"PUT /pkarr/%s HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n" %
                    (s.z32.encode(), len(p)) + p for s, p in packets]
        shards = [requests[i::connections] for i in range(connections)]
        sel = selectors.DefaultSelector()
        state = []
        for shard in shards:
            sock = socket.create_connection(("127.0.0.1", d.port))
            sock.setblocking(False)
            st = {"sock": sock, "todo": shard, "next": 0, "inflight": 0, "buf": b"", "ok": 0,
                  "out": b""}
            state.append(st)
            sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
        start = time.perf_counter()
        deadline = start + 120
        done = 0
        while done < count and time.perf_counter() < deadline:
            for key, events in sel.select(timeout=1):
                st = key.data
                if events & selectors.EVENT_WRITE:
                    while st["inflight"] < PIPELINE and st["next"] < len(st["todo"]):
                        st["out"] += st["todo"][st["next"]]
                        st["next"] += 1
                        st["inflight"] += 1
                    if st["out"]:
                        try:
                            n = st["sock"].send(st["out"])
                            st["out"] = st["out"][n:]
                        except BlockingIOError:
                            pass
                if events & selectors.EVENT_READ:
                    data = st["sock"].recv(1 << 16)
                    if not data:
                        raise SystemExit("daemon closed a connection")
                    st["buf"] += data
                    n = st["buf"].count(b"HTTP/1.1 ")
                    if n:
                        st["ok"] += st["buf"].count(b"HTTP/1.1 204")
                        # Responses are small and header-only; keep the tail after the last one.
                        st["buf"] = st["buf"][st["buf"].rfind(b"\r\n\r\n") + 4:]
                        st["inflight"] -= n
                        done += n
        elapsed = time.perf_counter() - start
        ok = sum(st["ok"] for st in state)
    finally:
        d.stop()
    put_rate = ok / elapsed
    print("pkarr PUT: %d packets, %d answered 204, %d connections, pipeline %d" %
          (count, ok, connections, PIPELINE))
    print("PUT/s (daemon, 204 = verified + durable): %.0f" % put_rate)
    print("libsodium crypto_sign_verify_detached/s (1 thread, same packets): %.0f" % verify_rate)
    print("ratio PUT/s / verify/s: %.2f (target >= 0.7)" % (put_rate / verify_rate))


if __name__ == "__main__":
    main()
