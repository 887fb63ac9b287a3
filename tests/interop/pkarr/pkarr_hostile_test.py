#!/usr/bin/python3
"""Hostile input on the address-lookup side of the iroh-relay binary (issue 19 items 2-4, 7),
all on loopback with ephemeral ports:

  body_limit      /pkarr bodies over 1072 bytes get 413 from the Content-Length before the body
                  is sent, and while a chunked body passes 1072; DoH POST over 64 KiB gets 413;
                  150 connections announcing 2 MiB bodies leave the daemon's RSS within 32 MiB
  rate_limit      `smart`: a client behind a trusted proxy cannot pick its key by sending its own
                  X-Forwarded-For; a peer that is not a trusted proxy has its headers ignored;
                  two addresses in one IPv6 /64 share a bucket, another /64 does not
  store_bounds    zone_store.max_records: new keys get 507 at the cap, updates still 204;
                  packets dated more than max_future_skew ahead get 400; the status page count
  full_disk       (root only, a tmpfs created and removed here) the daemon starts on a full disk
                  with a current store: GET 200, PUT 503, /healthz "degraded", /ping 200; space
                  back -> PUT 204; a disk filling while running -> PUT 507, GET 200

usage: pkarr_hostile_test.py <iroh-relay> [part...]   (exit 77 = skipped)
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkarr_testlib import Daemon, Signer, scratch_dir  # noqa: E402

failures = []
TS = int(time.time() * 1e6)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def read_reply(s, timeout=10):
    """Reads until the end of the response head (or EOF); returns the bytes."""
    s.settimeout(timeout)
    reply = b""
    try:
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    except OSError:
        pass
    return reply


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def put(d, signer, ts, relay="https://h.example./", headers=None):
    return d.request("PUT", "/pkarr/" + signer.z32, signer.record_payload(ts, ["relay=" + relay]),
                     headers=headers)


# ---- item 2: body limits --------------------------------------------------------------------


def run_body_limit(root):
    d = Daemon(BINARY, os.path.join(root, "body"),
               "pkarr_put_rate_limit: disabled\nenable_dns: true\n"
               "dns:\n  bind_addr: 127.0.0.1:0\n").start()
    try:
        signer = Signer()
        path = "/pkarr/" + signer.z32
        # Content-Length over the limit: 413 with no body byte sent.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                   (path, 2 * 1024 * 1024)).encode())
        reply = read_reply(s)
        s.close()
        check(reply.startswith(b"HTTP/1.1 413"), "Content-Length 2 MiB, no body sent -> 413")
        status, _, _ = d.request("PUT", path, b"\0" * 1073)
        check(status == 413, "body of 1073 bytes -> 413 (%s)" % status)
        status, _, _ = d.request("PUT", path, b"\0" * 1072)
        check(status == 400, "body of 1072 bytes is read -> 400 invalid payload (%s)" % status)
        # Chunked: 413 once the chunks pass the limit, the rest never needed.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" %
                   path).encode())
        for _ in range(3):
            s.sendall(b"200\r\n" + b"\0" * 512 + b"\r\n")
        reply = read_reply(s)
        s.close()
        check(reply.startswith(b"HTTP/1.1 413"), "chunked body passing 1072 bytes -> 413")
        # A valid packet still goes through.
        check(put(d, signer, TS)[0] == 204, "valid PUT after the oversize ones -> 204")
        # DoH POST: 64 KiB + 1 announced -> 413 at once.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message"
                  b"\r\nContent-Length: 65536\r\n\r\n")
        reply = read_reply(s)
        s.close()
        check(reply.startswith(b"HTTP/1.1 413"), "DoH POST of 64 KiB + 1 announced -> 413")

        # 150 connections at once, each announcing a 2 MiB body (none sent): RSS stays bounded.
        time.sleep(0.2)
        before = rss_kib(d.proc.pid)
        socks = []
        answered = 0
        head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                (path, 2 * 1024 * 1024)).encode()
        for _ in range(150):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(head)
            socks.append(s)
        time.sleep(0.5)
        peak = rss_kib(d.proc.pid)
        for s in socks:
            if read_reply(s, timeout=5).startswith(b"HTTP/1.1 413"):
                answered += 1
        for s in socks:
            s.close()
        time.sleep(0.5)
        after = rss_kib(d.proc.pid)
        print("RSS before %d KiB, with 150 attackers %d KiB, after %d KiB" % (before, peak, after))
        check(answered == 150, "150 oversize PUTs -> 150 x 413 (%d)" % answered)
        check(peak - before < 32 * 1024, "RSS grew %d KiB < 32 MiB with 150 attackers" %
              (peak - before))
        check(d.request("GET", path)[0] == 200, "GET after the attack -> 200")
    finally:
        d.stop()


# ---- item 4: rate limit keys ----------------------------------------------------------------


def three_puts(d, headers_for):
    signer = Signer()
    return [put(d, signer, TS + i, headers=headers_for(i))[0] for i in range(3)]


def run_rate_limit(root):
    # Loopback is a trusted proxy by default; the proxy appends the client it saw.
    d = Daemon(BINARY, os.path.join(root, "smart"), "pkarr_put_rate_limit: smart\n").start()
    try:
        sts = three_puts(d, lambda i: {"X-Forwarded-For": "203.0.113.%d, 198.51.100.7" % i})
        check(sts == [204, 204, 429],
              "smart: a spoofed left-hand X-Forwarded-For entry does not evade (%s)" % sts)
        sts = three_puts(d, lambda i: {"X-Forwarded-For": "198.51.100.8, 127.0.0.%d" % (i + 2)})
        check(sts == [204, 204, 429],
              "smart: trusted hops are skipped, the client behind them is the key (%s)" % sts)
        sts = three_puts(d, lambda i: {"X-Forwarded-For": "2001:db8:1:2::%x" % (i + 1)})
        check(sts == [204, 204, 429], "smart: three addresses of one /64 share a bucket (%s)" % sts)
        sts = three_puts(d, lambda i: {"X-Forwarded-For": "2001:db8:1:%x::1" % (i + 10)})
        check(sts == [204, 204, 204], "smart: three /64s have a bucket each (%s)" % sts)
    finally:
        d.stop()
    # The peer is not a trusted proxy: its forwarding headers are ignored.
    d = Daemon(BINARY, os.path.join(root, "untrusted"),
               "pkarr_put_rate_limit: smart\ntrusted_proxies: [\"192.0.2.0/24\"]\n").start()
    try:
        sts = three_puts(d, lambda i: {"X-Forwarded-For": "198.51.100.%d" % i,
                                       "X-Real-IP": "198.51.100.%d" % i,
                                       "Forwarded": "for=198.51.100.%d" % i})
        check(sts == [204, 204, 429],
              "smart: headers from a peer outside trusted_proxies are ignored (%s)" % sts)
    finally:
        d.stop()
    d = Daemon(BINARY, os.path.join(root, "prefix"),
               "pkarr_put_rate_limit: smart\npkarr_put_rate_limit_ipv6_prefix: 128\n").start()
    try:
        sts = three_puts(d, lambda i: {"X-Forwarded-For": "2001:db8:1:2::%x" % (i + 1)})
        check(sts == [204, 204, 204],
              "pkarr_put_rate_limit_ipv6_prefix: 128 keys every address (%s)" % sts)
    finally:
        d.stop()


# ---- item 4 (store bounds) and item 7 -------------------------------------------------------


def run_store_bounds(root):
    d = Daemon(BINARY, os.path.join(root, "bounds"),
               "pkarr_put_rate_limit: disabled\nzone_store:\n  max_records: 3\n").start()
    try:
        signers = [Signer() for _ in range(4)]
        sts = [put(d, s, TS)[0] for s in signers[:3]]
        check(sts == [204, 204, 204], "three new keys under max_records 3 -> 204 (%s)" % sts)
        status, h, body = put(d, signers[3], TS)
        check(status == 507 and b'"status":"507"' in body,
              "a fourth new key at the cap -> 507 (%s %r)" % (status, body[:80]))
        check(put(d, signers[0], TS + 1, "https://updated.example./")[0] == 204,
              "an update of a stored key at the cap -> 204")
        status, _, body = d.request("GET", "/pkarr/" + signers[0].z32)
        check(status == 200 and b"updated.example" in body, "the update is served")
        check(d.request("GET", "/pkarr/" + signers[3].z32)[0] == 404, "the refused key is absent")
        status, _, page = d.request("GET", "/")
        check(status == 200 and re.search(rb"signed packets stored</t[dh]>\s*<td>3<", page),
              "the status page shows the maintained count 3")

        now = int(time.time() * 1e6)
        s = Signer()
        status, _, body = put(d, s, now + 2 * 3600 * 10**6)
        check(status == 400 and b"future" in body, "a packet dated 2 h ahead -> 400 (%s)" % status)
        status, _, body = put(d, s, 2**64 - 1)
        check(status == 400, "a packet dated 2^64-1 us -> 400 (%s)" % status)
        check(put(d, signers[1], now + 30 * 60 * 10**6)[0] == 204,
              "a packet dated 30 min ahead (within 1 h) -> 204")
    finally:
        d.stop()


# ---- item 3: full disk ----------------------------------------------------------------------


def fill(path):
    """Fills the filesystem of `path` (bounded by its size): big writes, then small ones so
    that not even a page is left."""
    for name, size in (("fill", 65536), ("fill2", 512)):
        try:
            with open(os.path.join(path, name), "wb") as f:
                while True:
                    f.write(b"\0" * size)
                    f.flush()
        except OSError:
            pass


def unfill(path):
    for name in ("fill", "fill2"):
        try:
            os.remove(os.path.join(path, name))
        except OSError:
            pass


def wait_for(what, cond, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    print("timed out waiting for " + what)
    return False


def healthz_store(d):
    status, _, body = d.request("GET", "/healthz")
    m = re.search(rb'"store":"(\w+)"', body)
    return m.group(1).decode() if status == 200 and m else None


def run_full_disk(root):
    if os.geteuid() != 0:
        print("full_disk: skipped (needs root for a tmpfs)")
        return "skipped"
    mnt = tempfile.mkdtemp(prefix="iroh-fulldisk-")
    if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt]) != 0:
        os.rmdir(mnt)
        print("full_disk: skipped (cannot mount a tmpfs)")
        return "skipped"
    extra = ("pkarr_put_rate_limit: disabled\nenable_dns: true\ndns:\n  bind_addr: 127.0.0.1:0\n"
             "zone_store:\n  path: %s/pkarr.sqlite3\n  eviction_interval_secs: 1\n" % mnt)
    conf_dir = os.path.join(root, "fulldisk")
    try:
        a, b = Signer(), Signer()
        d = Daemon(BINARY, conf_dir, extra).start()
        try:
            check(put(d, a, TS)[0] == 204, "full disk: PUT before the disk fills -> 204")
        finally:
            d.stop()
        fill(mnt)
        # Start on the full disk with a current schema.
        d = Daemon(BINARY, conf_dir, extra).start()
        try:
            check(d.proc.poll() is None, "full disk: the daemon starts")
            check(d.request("GET", "/ping")[0] == 200, "full disk: relay /ping -> 200")
            check(d.request("GET", "/pkarr/" + a.z32)[0] == 200, "full disk: GET stored -> 200")
            status, h, _ = put(d, b, TS)
            check(status in (503, 507), "full disk: PUT -> 503/507 (%s)" % status)
            check(status != 503 or h.get("retry-after", "").isdigit(), "503 has retry-after")
            check(healthz_store(d) == "degraded",
                  "full disk: /healthz store degraded (%s)" % healthz_store(d))
            unfill(mnt)
            ok = wait_for("the store to reopen",
                          lambda: put(d, b, TS + 1)[0] == 204 and healthz_store(d) == "ok")
            check(ok, "space back: PUT -> 204 and /healthz store ok")
            # The disk fills while the store is open.
            fill(mnt)
            c = Signer()
            status, _, _ = put(d, c, TS)
            check(status == 507, "disk full while running: PUT of a new key -> 507 (%s)" % status)
            check(healthz_store(d) == "degraded", "disk full while running: /healthz degraded")
            check(d.request("GET", "/pkarr/" + b.z32)[0] == 200, "disk full while running: GET 200")
            check(d.request("GET", "/ping")[0] == 200, "disk full while running: /ping -> 200")
            unfill(mnt)
            check(put(d, c, TS + 1)[0] == 204 and healthz_store(d) == "ok",
                  "space back: PUT -> 204, /healthz ok")
        finally:
            d.stop()
    finally:
        subprocess.call(["umount", "-l", mnt])
        os.rmdir(mnt)


def main():
    global BINARY
    BINARY = sys.argv[1]
    parts = sys.argv[2:] or ["body_limit", "rate_limit", "store_bounds", "full_disk"]
    root = scratch_dir("pkarr-hostile")
    skipped = 0
    try:
        for part in parts:
            print("== " + part, flush=True)
            if globals()["run_" + part](root) == "skipped":
                skipped += 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    if skipped == len(parts):
        return 77
    print("all hostile-input lookup checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
