#!/usr/bin/python3
"""The iroh-relay binary's metrics listener scraped by real Prometheus tooling.

1. Relay traffic from the raw-socket client of relay_wire_test.py (two endpoints, datagrams both
   ways, one to an unknown destination).
2. `promtool check metrics` on a real scrape of /metrics; names and values checked in the text;
   the status page (/) and /healthz of the same binary.
3. A real `prometheus` (Debian package) as an unprivileged process with a temporary storage
   directory on a loopback port, configured with deploy/prometheus/prometheus.yml and alerts.yml
   (only the target and the intervals changed), must report up == 1, nonzero relay counters and
   the alert rules through its HTTP API.

    /usr/bin/python3 prometheus_test.py --relay /path/to/iroh-relay --deploy /path/to/deploy
"""

import argparse
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import nacl.signing
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relay_wire_test as wire  # noqa: E402  (the raw relay client)

ARGS = None
WAIT = 60  # seconds: bound of every wait on a process


def http(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, dict(r.headers), r.read()


def wait_for(what, pred, timeout=WAIT, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def samples(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class Relay:
    def __init__(self, workdir):
        self.workdir = workdir
        self.port = wire.free_port()
        self.log_path = os.path.join(workdir, "relay.log")
        config = os.path.join(workdir, "relay.yaml")
        with open(config, "w") as f:
            f.write(f"http_bind_addr: 127.0.0.1:{self.port}\n"
                    "metrics_bind_addr: 127.0.0.1:0\n"
                    "enable_metrics: true\n"
                    "enable_stun: false\n"
                    f"data_dir: {os.path.join(workdir, 'data')}\n")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([ARGS.relay, "--config", config], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=workdir)
        self.metrics = wait_for("the metrics listener", self.metrics_address, timeout=20)

    def metrics_address(self):
        if self.proc.poll() is not None:
            with open(self.log_path) as f:
                raise AssertionError(f"relay exited:\n{f.read()}")
        with open(self.log_path, errors="replace") as log:
            for line in log:
                if "listening metrics on " in line:
                    return line.rsplit(" ", 1)[1].strip()
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


class PrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="prometheus-test-")
        os.chmod(cls.workdir, 0o755)
        wire.BLAKE3 = wire.build_blake3(cls.workdir)
        cls.relay = Relay(cls.workdir)
        wire.TARGET = cls.relay
        cls.prometheus = None

    @classmethod
    def tearDownClass(cls):
        if cls.prometheus and cls.prometheus.poll() is None:
            cls.prometheus.terminate()
            try:
                cls.prometheus.wait(timeout=15)
            except subprocess.TimeoutExpired:
                cls.prometheus.kill()
                cls.prometheus.wait(timeout=10)
        cls.relay.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def push_traffic(self):
        a, b = wire.connected(self), wire.connected(self)
        for i in range(20):
            a.send_datagram(b.id, b"x" * 1000)
            self.assertEqual(b.ws.recv_message(), b"\x06" + a.id + b"\x00" + b"x" * 1000)
            b.send_datagram(a.id, b"y" * 500)
            self.assertEqual(a.ws.recv_message(), b"\x06" + b.id + b"\x00" + b"y" * 500)
        a.send_datagram(bytes(nacl.signing.SigningKey.generate().verify_key), b"lost")
        a.ping()  # the drop is counted before the Pong
        return a, b

    def test_1_scrape_passes_promtool(self):
        self.clients = self.push_traffic()
        # Sent-side counters are bumped when the write completes, possibly just after the client
        # read the bytes: scrape until they caught up (bounded).
        def scraped():
            result = http(f"http://{self.relay.metrics}/metrics")
            return result if samples(result[2].decode())["relayserver_send_packets_sent_total"] >= 40 else None
        status, headers, body = wait_for("40 datagrams counted as sent", scraped, timeout=10)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                               timeout=30)
        self.assertEqual(check.returncode, 0,
                         f"promtool check metrics:\n{check.stdout.decode()}{check.stderr.decode()}")
        s = samples(body.decode())
        self.assertEqual(s["relayserver_send_packets_sent_total"], 40)
        self.assertEqual(s["relayserver_bytes_sent_total"], 20 * 1000 + 20 * 500)
        self.assertEqual(s["relayserver_bytes_recv_total"], 20 * 1000 + 20 * 500 + 4)
        self.assertEqual(s['relayserver_packets_dropped_total{reason="unknown_destination"}'], 1)
        self.assertEqual(s["relayserver_clients_connected"], 2)
        self.assertGreaterEqual(s["relayserver_handshake_duration_seconds_count"], 2)
        print(f"promtool check metrics: OK on {len(body)} bytes, {len(s)} samples")
        # Anything but /metrics is 404.
        with self.assertRaises(urllib.error.HTTPError) as e:
            http(f"http://{self.relay.metrics}/")
        self.assertEqual(e.exception.code, 404)

    def test_2_status_page_and_healthz(self):
        base = f"http://127.0.0.1:{self.relay.port}"
        status, headers, body = http(base + "/")
        self.assertEqual(status, 200)
        self.assertTrue(body.startswith(
            b'<html><body>\n<h1>Iroh Relay</h1>\n<p>\n'
            b'  This is an <a href="https://iroh.computer/">Iroh</a> Relay server.\n</p>\n'))
        self.assertIn(b"<th align=\"left\">metrics</th><td>on</td>", body)
        self.assertIn(b"<th align=\"left\">relay</th><td>on</td>", body)
        status, headers, body = http(base + "/healthz")
        health = json.loads(body)
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["git_hash"], "unknown")
        self.assertIsInstance(health["uptime_secs"], int)

    def test_3_prometheus_scrapes_the_relay(self):
        cls = type(self)
        promdir = os.path.join(self.workdir, "prometheus")
        os.mkdir(promdir)
        with open(os.path.join(ARGS.deploy, "prometheus", "prometheus.yml")) as f:
            config = yaml.safe_load(f)
        config["global"]["scrape_interval"] = "1s"
        config["global"]["evaluation_interval"] = "1s"
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "iroh-relay")
        job["static_configs"][0]["targets"] = [self.relay.metrics]
        with open(os.path.join(promdir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f)
        shutil.copy(os.path.join(ARGS.deploy, "prometheus", "alerts.yml"), promdir)
        port = wire.free_port()
        command = ["prometheus", f"--config.file={promdir}/prometheus.yml",
                   f"--storage.tsdb.path={promdir}/data", f"--web.listen-address=127.0.0.1:{port}"]
        preexec = None
        if os.geteuid() == 0:  # unprivileged, like the Debian service
            nobody = pwd.getpwnam("nobody")
            os.chown(promdir, nobody.pw_uid, nobody.pw_gid)
            for name in os.listdir(promdir):
                os.chown(os.path.join(promdir, name), nobody.pw_uid, nobody.pw_gid)

            def preexec():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
        log = open(os.path.join(self.workdir, "prometheus.log"), "wb")
        cls.prometheus = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          preexec_fn=preexec, cwd=promdir)
        api = f"http://127.0.0.1:{port}/api/v1"

        def query(promql):
            if cls.prometheus.poll() is not None:
                with open(os.path.join(self.workdir, "prometheus.log")) as f:
                    raise AssertionError("prometheus exited:\n" + f.read())
            _, _, body = http(f"{api}/query?" + urllib.parse.urlencode({"query": promql}))
            result = json.loads(body)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        try:
            wait_for("up == 1", lambda: query('up{job="iroh-relay"}') == 1)
            self.push_traffic()
            sent = wait_for("relayserver_bytes_sent_total >= 30000",
                            lambda: (query('relayserver_bytes_sent_total{job="iroh-relay"}') or 0)
                            >= 30000 and query('relayserver_bytes_sent_total{job="iroh-relay"}'))
            packets = query('relayserver_send_packets_sent_total{job="iroh-relay"}')
            drops = query('sum(relayserver_packets_dropped_total{job="iroh-relay"})')
            self.assertGreater(packets, 0)
            self.assertGreater(drops, 0)
            _, _, body = http(f"{api}/rules")
            groups = json.loads(body)["data"]["groups"]
            rules = [r["name"] for g in groups for r in g["rules"]]
            self.assertIn("IrohRelayDown", rules)
            down = [r for g in groups for r in g["rules"] if r["name"] == "IrohRelayDown"][0]
            self.assertEqual(down["health"], "ok")
            print(f"prometheus: up=1, relayserver_bytes_sent_total={sent:.0f}, "
                  f"relayserver_send_packets_sent_total={packets:.0f}, "
                  f"sum(relayserver_packets_dropped_total)={drops:.0f}, {len(rules)} alert rules")
        finally:
            log.close()


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relay", required=True)
    parser.add_argument("--deploy", required=True)
    ARGS, rest = parser.parse_known_args()
    ARGS.relay = os.path.abspath(ARGS.relay)
    # A missing tool fails the test and names its package (tests/require-tools.sh).
    require = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "require-tools.sh")
    if subprocess.run([require, "prometheus", "promtool"]).returncode != 0:
        sys.exit(1)
    program = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    sys.exit(0 if program.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
