#!/usr/bin/python3
"""Two iroh-relay daemons on one PostgreSQL (zone_store.backend: postgres, issue 15 item 5).

usage: pkarr_postgres_test.py <iroh-relay> two_nodes|race|outage|sigkill

Each run starts its own PostgreSQL 15 cluster (pg_cluster.sh: initdb + pg_ctl in a temporary
directory, 127.0.0.1 on a free port) and removes it at the end. Scenarios:
  two_nodes  npm pkarr publishes on A; B serves the same bytes on GET /pkarr and answers kdig for
             _iroh.<z32>.irohdns.example.; a newer packet PUT on A replaces the one B has cached
             (the LISTEN/NOTIFY delay is printed; generous bound 5 s, target < 1 s)
  race       concurrent PUTs of different timestamps for the same keys on both nodes end with the
             newest on both; same timestamp: the greater DNS bytes win (spec §2.4)
  outage     PostgreSQL stopped: PUT gets 5xx with retry-after (never 204), DNS and GET still
             answer cached names, /healthz says degraded; PostgreSQL back: PUT 204 within 15 s
             without a restart, /healthz ok again
  sigkill    SIGKILL of A under PUT load: every acknowledged packet is served by B
Loopback only; every wait is bounded in time.
"""
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKARR_DIR = os.path.join(HERE, "..", "pkarr")
sys.path.insert(0, PKARR_DIR)
from pkarr_testlib import Daemon, Signer, verify_payload  # noqa

CLUSTER = os.path.join(HERE, "pg_cluster.sh")
ORIGIN = "irohdns.example."
FAILURES = []


def check(label, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + label + ("" if ok else " " + str(detail)[:600]))
    if not ok:
        FAILURES.append(label)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, root):
        self.dir = os.path.join(root, "pg")
        self.port = free_port()

    def start(self):
        # fsync off: the tests kill daemons, not the machine; commits still reach the WAL.
        subprocess.run([CLUSTER, "start", self.dir, str(self.port), "fsync=off"], check=True,
                       timeout=120)

    def stop(self):
        subprocess.run([CLUSTER, "stop", self.dir], check=True, timeout=120)

    def destroy(self):
        subprocess.run([CLUSTER, "destroy", self.dir], timeout=120)

    def url(self):
        return "postgresql://postgres@127.0.0.1:%d/postgres" % self.port


class Node(Daemon):
    def __init__(self, binary, data_dir, cluster, log_name="relay.log"):
        yaml = ("pkarr_put_rate_limit: disabled\n"
                "zone_store:\n  backend: postgres\n  postgres_url: \"%s\"\n"
                "  eviction_interval_secs: 1\n"
                "enable_dns: true\n"
                "dns:\n  bind_addr: \"127.0.0.1:0\"\n  origins: [\"%s\", \".\"]\n  rrl_rate: 0\n"
                % (cluster.url(), ORIGIN))
        super().__init__(binary, data_dir, yaml, log_name)
        self.dns_port = None

    def start(self, timeout=20):
        super().start(timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.findall(r"dns: listening on udp 127\.0\.0\.1:(\d+)", self.log_text())
            if m:
                self.dns_port = int(m[-1])
                return self
            time.sleep(0.05)
        raise RuntimeError("no DNS listener:\n" + self.log_text())

    def get(self, z32):
        status, _, body = self.request("GET", "/pkarr/" + z32)
        return status, body

    def put(self, signer, payload):
        return self.request("PUT", "/pkarr/" + signer.z32, payload)

    def health(self):
        status, _, body = self.request("GET", "/healthz")
        m = re.search(rb'"store":"(\w+)"', body)
        return m.group(1).decode() if status == 200 and m else None

    def kdig(self, z32):
        out = subprocess.run(["kdig", "+timeout=5", "+retry=0", "@127.0.0.1", "-p",
                              str(self.dns_port), "_iroh.%s.%s" % (z32, ORIGIN), "TXT"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout + out.stderr


def wait_for(predicate, timeout, step=0.01):
    """Polls until predicate() is truthy; returns (value, seconds waited) or (None, timeout)."""
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None, timeout
        time.sleep(step)


def now_us():
    return int(time.time() * 1e6)


def two_nodes(binary, root, cluster):
    a = Node(binary, os.path.join(root, "a"), cluster).start()
    b = Node(binary, os.path.join(root, "b"), cluster).start()
    try:
        # npm pkarr publishes on A (tests/interop/pkarr/pkarr_interop.mjs, pkarr@1.3.0).
        out = subprocess.run(["node", os.path.join(PKARR_DIR, "pkarr_interop.mjs"), "publish",
                              "http://127.0.0.1:%d/pkarr" % a.port],
                             capture_output=True, text=True, timeout=60, cwd=PKARR_DIR)
        if not check("npm pkarr publishes on A", out.returncode == 0, out.stdout + out.stderr):
            return
        import json
        published = json.loads(out.stdout)
        z32, payload = published["z32"], bytes.fromhex(published["payload_hex"])
        status, body = b.get(z32)
        check("B serves the JS packet byte for byte", status == 200 and body == payload, status)
        answer = b.kdig(z32)
        check("kdig on B: _iroh.<z32>.%s TXT" % ORIGIN,
              "NOERROR" in answer and "relay=https://relay.example./" in answer, answer)

        # Coherence: B has the packet cached; a newer one PUT on A must replace it on B.
        delays = []
        signers = [Signer() for _ in range(10)]
        for i, s in enumerate(signers):
            old = s.record_payload(now_us(), ["relay=https://old%d.example./" % i])
            a.put(s, old)
            b.get(s.z32)  # cached on B now
            b.kdig(s.z32)
            new = s.record_payload(now_us(), ["relay=https://new%d.example./" % i])
            status = a.put(s, new)[0]
            got, waited = wait_for(lambda: b.get(s.z32) == (200, new), 5.0)
            check("newer packet from A served by B (key %d, %.0f ms)" % (i, waited * 1000),
                  status == 204 and got, status)
            delays.append(waited)
        delays.sort()
        print("coherence delay A PUT -> B GET over %d keys: median %.1f ms, max %.1f ms" %
              (len(delays), delays[len(delays) // 2] * 1000, delays[-1] * 1000))
        answer = b.kdig(signers[0].z32)
        check("kdig on B answers the newer packet", "new0.example" in answer, answer)
        check("/healthz store ok on both", a.health() == "ok" and b.health() == "ok",
              (a.health(), b.health()))
    finally:
        a.stop()
        b.stop()


def race(binary, root, cluster):
    a = Node(binary, os.path.join(root, "a"), cluster).start()
    b = Node(binary, os.path.join(root, "b"), cluster).start()
    try:
        signers = [Signer() for _ in range(8)]
        base = now_us()
        # 24 versions per key, sent by 8 threads to A and B in interleaved (shuffled) order.
        versions = {s.z32: [s.record_payload(base + t * 7, ["v=%d" % t]) for t in range(24)]
                    for s in signers}
        newest = {z: v[-1] for z, v in versions.items()}
        jobs = [(s, versions[s.z32][t]) for t in reversed(range(24)) for s in signers]
        jobs = jobs[1::2] + jobs[0::2]
        statuses = []
        lock = threading.Lock()

        def worker(index):
            node = a if index % 2 == 0 else b
            for s, payload in jobs[index::8]:
                status = node.put(s, payload)[0]
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check("all %d concurrent PUTs answered 204" % len(jobs),
              statuses.count(204) == len(jobs), sorted(set(statuses)))
        wrong = [z for z in newest for n in (a, b) if n.get(z) != (200, newest[z])]
        check("newest packet everywhere after the race (%d keys, 2 nodes)" % len(newest),
              not wrong, wrong)

        # §2.4 tie: same timestamp, different DNS bytes: the greater bytes win, in either order.
        s = Signer()
        ts = now_us()
        p1 = s.record_payload(ts, ["v=aaa"])
        p2 = s.record_payload(ts, ["v=bbb"])
        big = max(p1, p2, key=lambda p: p[72:])
        small = p1 if big is p2 else p2
        a.put(s, big)
        b.put(s, small)
        check("tie rule: the greater DNS bytes stay", a.get(s.z32) == (200, big) and
              b.get(s.z32) == (200, big))
        # Older never replaces newer, on the other node either.
        older = s.record_payload(ts - 1000, ["v=older"])
        status = b.put(s, older)[0]
        check("older PUT on B: 204, ignored on both", status == 204 and
              a.get(s.z32) == (200, big) and b.get(s.z32) == (200, big), status)
    finally:
        a.stop()
        b.stop()


def outage(binary, root, cluster):
    a = Node(binary, os.path.join(root, "a"), cluster).start()
    b = Node(binary, os.path.join(root, "b"), cluster).start()
    try:
        s = Signer()
        payload = s.record_payload(now_us(), ["relay=https://cached.example./"])
        check("PUT before the outage", a.put(s, payload)[0] == 204)
        check("DNS on A before the outage", "cached.example" in a.kdig(s.z32))
        check("GET on B before the outage", b.get(s.z32) == (200, payload))

        cluster.stop()
        fresh = Signer()
        statuses = set()
        retry_after = True
        for i in range(5):
            status, headers, _ = a.put(fresh, fresh.record_payload(now_us(), ["v=%d" % i]))
            statuses.add(status)
            retry_after = retry_after and (status != 503 or "retry-after" in headers)
        check("PUTs while PostgreSQL is down: 5xx, never 204", all(500 <= x < 600 for x in statuses),
              statuses)
        check("503 carries retry-after", retry_after)
        answer = a.kdig(s.z32)
        check("DNS on A still answers the cached name", "NOERROR" in answer and
              "cached.example" in answer, answer)
        check("GET on B still serves the cached packet", b.get(s.z32) == (200, payload))
        degraded, _ = wait_for(lambda: a.health() == "degraded" and b.health() == "degraded", 10,
                               0.1)
        check("/healthz says degraded on both", degraded, (a.health(), b.health()))

        cluster.start()
        later = s.record_payload(now_us(), ["relay=https://after.example./"])
        ok, waited = wait_for(lambda: a.put(s, later)[0] == 204, 15, 0.25)
        check("PUT succeeds %.1f s after PostgreSQL is back (bound 15 s)" % waited, ok)
        served, waited = wait_for(lambda: b.get(s.z32) == (200, later), 10, 0.05)
        check("B serves the post-outage packet (%.2f s)" % waited, served)
        healthy, _ = wait_for(lambda: a.health() == "ok" and b.health() == "ok", 15, 0.1)
        check("/healthz ok again on both", healthy, (a.health(), b.health()))
    finally:
        a.stop()
        b.stop()


def sigkill(binary, root, cluster):
    a = Node(binary, os.path.join(root, "a"), cluster).start()
    b = Node(binary, os.path.join(root, "b"), cluster).start()
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()
    base = now_us()

    def worker(index):
        signers = [Signer() for _ in range(32)]
        conn = None
        for n in range(5000):
            if stop.is_set():
                break
            s = signers[n % len(signers)]
            payload = s.record_payload(base + n, ["relay=https://w%d.example./" % index])
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
                conn.request("PUT", "/pkarr/" + s.z32, body=payload)
                res = conn.getresponse()
                res.read()
            except (OSError, http.client.HTTPException):
                break  # A died mid-request: that PUT was never acknowledged
            if res.status == 204:
                with lock:
                    acked[s.z32] = (payload, s.public)

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        a.kill()
        stop.set()
        for t in threads:
            t.join(30)
        print("acknowledged keys before SIGKILL of A: %d" % len(acked))
        if not check("the load got going", len(acked) >= 50, len(acked)):
            return
        missing, older = [], []
        conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
        for z32, (payload, public) in acked.items():
            conn.request("GET", "/pkarr/" + z32)
            res = conn.getresponse()
            body = res.read()
            if res.status != 200:
                missing.append(z32)
            elif body != payload and not (body[64:72] > payload[64:72] and
                                          verify_payload(public, body)):
                # A newer PUT may have committed without its 204 reaching us: fine.
                older.append(z32)
        conn.close()
        check("B serves every acknowledged packet (%d keys)" % len(acked),
              not missing and not older, "%d missing, %d older" % (len(missing), len(older)))
    finally:
        stop.set()
        a.stop()
        b.stop()


def main():
    binary, scenario = sys.argv[1], sys.argv[2]
    tools = [os.path.join(HERE, "..", "..", "require-tools.sh"), "kdig"]
    if scenario == "two_nodes":
        tools.append("node")
    if subprocess.run(tools).returncode != 0:
        return 1
    if scenario == "two_nodes" and not os.path.isdir(os.path.join(PKARR_DIR, "node_modules",
                                                                  "pkarr")):
        print("FAIL: tests/interop/pkarr/node_modules missing: scripts/setup runs npm install")
        return 1
    root = tempfile.mkdtemp(prefix="iroh-pkarr-pg-")
    os.chmod(root, 0o755)  # the cluster directory below it belongs to `postgres` when root
    cluster = Cluster(root)
    try:
        cluster.start()
        {"two_nodes": two_nodes, "race": race, "outage": outage, "sigkill": sigkill}[scenario](
            binary, root, cluster)
    except Exception as e:  # noqa: BLE001 - reported as a failure with the daemons' logs
        check("scenario ran", False, repr(e))
        for name in ("a", "b"):
            log = os.path.join(root, name, "relay.log")
            if os.path.exists(log):
                print("---- %s log ----\n%s" % (name, open(log, errors="replace").read()[-3000:]))
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
