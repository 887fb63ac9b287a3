#!/usr/bin/python3
"""The reference programs' own TOML files run the iroh-relay binary (issue 17, docs/migrating.md).

1. iroh-dns-server's config.dev.toml (tests/unit/config/reference/), moved to free loopback ports and
   with [mainline] off: `iroh-relay --dns-config dev.toml` serves PUT/GET /pkarr on [http], the
   same over [https] (self-signed certificate for localhost), DNS over UDP and TCP on [dns] and
   metrics on [metrics]; the relay endpoint refuses everyone. As shipped (mainline enabled) it
   is refused at start naming the key.
2. `--config relay.toml --dns-config dns.toml`: lookup on the relay's listener; a DNS [http]
   listener elsewhere serves lookup on a listener of its own (lookup_listeners).
3. The relay's HTTPS listener with its manual certificate and the DNS server's [https] on another
   port with its own self-signed one (TOML), and the YAML lookup_listeners.https with a manual
   certificate of its own: different certificates served, pkarr PUT/GET and /healthz there.

usage: toml_configs.py <iroh-relay>   (Debian's python3: dnspython, nacl)
"""
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pkarr"))
from pkarr_testlib import Signer, scratch_dir  # noqa: E402

try:
    import dns.message
    import dns.query
    import dns.rdatatype
except ImportError as e:  # pragma: no cover
    print(f"FAIL: {e}: Debian package python3-dnspython (scripts/setup installs it)")
    sys.exit(1)

BINARY = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
DEV_TOML = os.path.join(HERE, "..", "unit", "config", "reference", "iroh-dns-server.config.dev.toml")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (DNS listens on both)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


class Relay:
    def __init__(self, work, args, name):
        self.log_path = os.path.join(work, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BINARY] + args, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def wait_exit(self, timeout=15):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(15) is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def request(port, method, path, body=None, tls=False):
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body)
        cert = conn.sock.getpeercert(True) if tls else None  # before the server may close
        res = conn.getresponse()
        return res.status, res.read(), cert
    finally:
        conn.close()


def publish_and_resolve(http_port, dns_port, label):
    signer = Signer()
    payload = signer.record_payload(int(time.time() * 1_000_000), ["relay=https://r.example./"])
    status, _, _ = request(http_port, "PUT", "/pkarr/" + signer.z32, payload)
    check(status == 204, f"{label}: PUT /pkarr -> 204 (got {status})")
    status, body, _ = request(http_port, "GET", "/pkarr/" + signer.z32)
    check(status == 200 and body == payload, f"{label}: GET /pkarr returns the packet ({status})")
    q = dns.message.make_query(f"_iroh.{signer.z32}.irohdns.example.", dns.rdatatype.TXT)
    for proto, send in (("udp", dns.query.udp), ("tcp", dns.query.tcp)):
        try:
            r = send(q, "127.0.0.1", port=dns_port, timeout=5)
            texts = [b"".join(rr.strings) for rrset in r.answer for rr in rrset]
            check(texts == [b"relay=https://r.example./"], f"{label}: DNS {proto} TXT answer {texts}")
        except Exception as e:  # noqa: BLE001
            check(False, f"{label}: DNS {proto} query: {e}")
    return signer, payload


def der_fingerprint(der):
    import hashlib
    return hashlib.sha256(der).hexdigest() if der else ""


def subject_of(der):
    pem = ssl.DER_cert_to_PEM_cert(der) if der else ""
    return subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem,
                          capture_output=True, text=True).stdout.strip()


def make_cert(work, name):
    key, crt = os.path.join(work, name + ".key"), os.path.join(work, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name, "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


def lookup_over_own_https(r, relay_https, lookup_https, dns_port, label, lookup_cn):
    started = (r.wait_for(r"dns: listening on udp") and r.wait_for(r"listening https on")
               and r.wait_for(r"listening lookup-https on"))
    check(bool(started), f"{label}: daemon started" + ("" if started else r.text()[-300:]))
    if not started:
        return
    status, _, relay_cert = request(relay_https, "GET", "/ping", tls=True)
    check(status == 200, f"{label}: relay /ping over its HTTPS ({status})")
    signer = Signer()
    payload = signer.record_payload(int(time.time() * 1_000_000), ["relay=https://r.example./"])
    status, _, lookup_cert = request(lookup_https, "PUT", "/pkarr/" + signer.z32, payload,
                                     tls=True)
    check(status == 204, f"{label}: PUT /pkarr on the lookup HTTPS listener -> 204 ({status})")
    status, body, _ = request(lookup_https, "GET", "/pkarr/" + signer.z32, tls=True)
    check(status == 200 and body == payload, f"{label}: GET /pkarr there ({status})")
    status, _, _ = request(lookup_https, "GET", "/healthz", tls=True)
    check(status == 200, f"{label}: /healthz there ({status})")
    check(der_fingerprint(relay_cert) != der_fingerprint(lookup_cert),
          f"{label}: the two listeners serve different certificates")
    check("relay.example" in subject_of(relay_cert),
          f"{label}: relay certificate {subject_of(relay_cert)}")
    check(lookup_cn in subject_of(lookup_cert),
          f"{label}: lookup certificate {subject_of(lookup_cert)}")
    q = dns.message.make_query(f"_iroh.{signer.z32}.irohdns.example.", dns.rdatatype.TXT)
    try:
        res = dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=5)
        texts = [b"".join(rr.strings) for rrset in res.answer for rr in rrset]
        check(texts == [b"relay=https://r.example./"], f"{label}: DNS answers the PUT ({texts})")
    except Exception as e:  # noqa: BLE001
        check(False, f"{label}: DNS query: {e}")


def own_https_check(work, relays):
    relay_crt, relay_key = make_cert(work, "relay.example")
    relay_https, lookup_https, dns_port, relay_http = (free_port() for _ in range(4))
    relay_toml = os.path.join(work, "relay-tls.toml")
    with open(relay_toml, "w") as f:
        f.write(f'http_bind_addr = "127.0.0.1:{relay_http}"\nenable_metrics = false\n'
                f'[tls]\ncert_mode = "Manual"\nhttps_bind_addr = "127.0.0.1:{relay_https}"\n'
                f'hostname = "relay.example"\nmanual_cert_path = "{relay_crt}"\n'
                f'manual_key_path = "{relay_key}"\n')
    dns_toml = os.path.join(work, "dns-tls.toml")
    with open(dns_toml, "w") as f:
        f.write(f'data_dir = "{work}/tls-data"\n'
                f'[https]\nport = {lookup_https}\nbind_addr = "127.0.0.1"\n'
                'domains = ["localhost"]\ncert_mode = "self_signed"\n'
                f'[dns]\nport = {dns_port}\nbind_addr = "127.0.0.1"\n'
                'default_soa = "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600"\n'
                'default_ttl = 900\norigins = ["irohdns.example.", "."]\n'
                '[metrics]\ndisabled = true\n')
    r = Relay(work, ["--config", relay_toml, "--dns-config", dns_toml], "own-https")
    relays.append(r)
    lookup_over_own_https(r, relay_https, lookup_https, dns_port, "own [https] (TOML)",
                          "localhost")
    r.stop()

    # The YAML equivalent: lookup_listeners.https with a manual certificate of its own.
    lookup_crt, lookup_key = make_cert(work, "dns.example")
    relay_https, lookup_https, dns_port, relay_http = (free_port() for _ in range(4))
    yaml_path = os.path.join(work, "relay.yaml")
    with open(yaml_path, "w") as f:
        f.write(f'http_bind_addr: "127.0.0.1:{relay_http}"\nenable_metrics: false\n'
                f'data_dir: "{work}/yaml-data"\n'
                f'tls:\n  cert_mode: manual\n  https_bind_addr: "127.0.0.1:{relay_https}"\n'
                f'  manual_cert_path: "{relay_crt}"\n  manual_key_path: "{relay_key}"\n'
                'enable_pkarr: true\nenable_dns: true\n'
                f'dns:\n  bind_addr: "127.0.0.1:{dns_port}"\n  origins: ["irohdns.example.", "."]\n'
                'lookup_listeners:\n  https:\n'
                f'    https_bind_addr: "127.0.0.1:{lookup_https}"\n    cert_mode: manual\n'
                f'    hostname: dns.example\n    cert_dir: "{work}"\n')
    r = Relay(work, ["--config", yaml_path], "own-https-yaml")
    relays.append(r)
    lookup_over_own_https(r, relay_https, lookup_https, dns_port, "lookup_listeners (YAML)",
                          "dns.example")
    r.stop()


def lookup_sighup_check(work, relays):
    """SIGHUP with a changed dns.toml (issue 17 item 2): a new [https] domain switches the lookup
    listener to that domain's cert_cache files at once; a changed [https] port is kept until a
    restart, with a warning naming the key; the relay's certificate is untouched."""
    relay_crt, relay_key = make_cert(work, "relay.example")
    data = os.path.join(work, "sighup-data")
    cache = os.path.join(data, "cert_cache")
    os.makedirs(cache)
    make_cert(cache, "a.example")
    make_cert(cache, "b.example")
    relay_https, lookup_https, dns_port, relay_http, moved = (free_port() for _ in range(5))
    relay_toml = os.path.join(work, "relay-sighup.toml")
    with open(relay_toml, "w") as f:
        f.write(f'http_bind_addr = "127.0.0.1:{relay_http}"\nenable_metrics = false\n'
                f'[tls]\ncert_mode = "Manual"\nhttps_bind_addr = "127.0.0.1:{relay_https}"\n'
                f'hostname = "relay.example"\nmanual_cert_path = "{relay_crt}"\n'
                f'manual_key_path = "{relay_key}"\n')
    dns_toml = os.path.join(work, "dns-sighup.toml")

    def write_dns(port, domain):
        with open(dns_toml, "w") as f:
            f.write(f'data_dir = "{data}"\n'
                    f'[https]\nport = {port}\nbind_addr = "127.0.0.1"\n'
                    f'domains = ["{domain}"]\ncert_mode = "manual"\n'
                    f'[dns]\nport = {dns_port}\nbind_addr = "127.0.0.1"\n'
                    'default_soa = "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600"\n'
                    'default_ttl = 900\norigins = ["irohdns.example.", "."]\n'
                    '[metrics]\ndisabled = true\n')

    write_dns(lookup_https, "a.example")
    r = Relay(work, ["--config", relay_toml, "--dns-config", dns_toml], "sighup")
    relays.append(r)
    started = r.wait_for(r"dns: listening on udp") and r.wait_for(r"listening lookup-https on")
    check(bool(started), "SIGHUP: daemon started" + ("" if started else r.text()[-300:]))
    if not started:
        return
    _, _, relay_cert = request(relay_https, "GET", "/ping", tls=True)
    _, _, cert = request(lookup_https, "GET", "/healthz", tls=True)
    check("a.example" in subject_of(cert), f"SIGHUP: lookup serves a.example ({subject_of(cert)})")
    write_dns(moved, "b.example")
    r.proc.send_signal(signal.SIGHUP)
    reloaded = r.wait_for(r"reloaded .*dns-sighup.toml|reloaded .*relay-sighup.toml")
    check(bool(reloaded), "SIGHUP: reloaded" + ("" if reloaded else r.text()[-300:]))
    _, _, cert = request(lookup_https, "GET", "/healthz", tls=True)
    check("b.example" in subject_of(cert),
          f"SIGHUP: the new domain's certificate serves ({subject_of(cert)})")
    check("lookup_listeners.https.https_bind_addr changed; it takes effect after a restart"
          in r.text(), "SIGHUP: the [https] port change is kept until a restart, with a warning")
    _, _, relay_after = request(relay_https, "GET", "/ping", tls=True)
    check(der_fingerprint(relay_after) == der_fingerprint(relay_cert),
          "SIGHUP: the relay keeps its own certificate")
    r.stop()


def main():
    work = scratch_dir("toml-configs")
    relays = []
    try:
        with open(DEV_TOML) as f:
            dev = f.read()
        check("[mainline]\nenabled = true" in dev, "reference config.dev.toml enables mainline")

        # As shipped: refused at start, naming the key.
        shipped = os.path.join(work, "shipped.toml")
        with open(shipped, "w") as f:
            f.write(dev)
        r = Relay(work, ["--dns-config", shipped], "shipped")
        relays.append(r)
        code = r.wait_exit(15)
        check(code == 2 and "shipped.toml:25: mainline.enabled: not supported" in r.text(),
              f"shipped dev config refused at start (exit {code}): {r.text().strip()[-200:]}")

        # Moved to free loopback ports, mainline off.
        http_port, https_port, dns_port, metrics_port = (free_port() for _ in range(4))
        text = (dev.replace("port = 8080", f"port = {http_port}")
                .replace("port = 8443", f"port = {https_port}")
                .replace("port = 5300", f"port = {dns_port}")
                .replace("[mainline]\nenabled = true", "[mainline]\nenabled = false"))
        text = (f'data_dir = "{work}/dns-data"\n' + text +
                f'\n[metrics]\ndisabled = false\nbind_addr = "127.0.0.1:{metrics_port}"\n')
        dev_path = os.path.join(work, "dev.toml")
        with open(dev_path, "w") as f:
            f.write(text)
        r = Relay(work, ["--dns-config", dev_path], "dev")
        relays.append(r)
        started = r.wait_for(r"dns: listening on udp") and r.wait_for(r"listening https on")
        check(bool(started), "dev config: daemon started")
        if started:
            signer, payload = publish_and_resolve(http_port, dns_port, "dev config")
            status, body, cert = request(https_port, "GET", "/pkarr/" + signer.z32, tls=True)
            check(status == 200 and body == payload, f"dev config: GET over [https] ({status})")
            pem = ssl.DER_cert_to_PEM_cert(cert) if cert else ""
            out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-issuer"], input=pem,
                                 capture_output=True, text=True).stdout
            check("CN = localhost" in out or "CN=localhost" in out,
                  f"dev config: self-signed certificate for localhost ({out.strip()})")
            conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
            conn.request("GET", "/metrics")
            res = conn.getresponse()
            metrics = res.read().decode(errors="replace")
            conn.close()
            check(res.status == 200 and "pkarr" in metrics,
                  f"dev config: metrics on [metrics] bind_addr ({res.status})")
            check(os.path.exists(os.path.join(work, "dns-data", "pkarr.sqlite3")),
                  "dev config: store under data_dir")
        r.stop()
        check(r.proc.returncode == 0, f"dev config: SIGTERM exits 0 ({r.proc.returncode})")

        # Both files: lookup on the relay's own listener.
        relay_port, dns_port2 = free_port(), free_port()
        relay_toml = os.path.join(work, "relay.toml")
        with open(relay_toml, "w") as f:
            f.write(f'http_bind_addr = "127.0.0.1:{relay_port}"\nenable_metrics = false\n')
        both = (f'data_dir = "{work}/both-data"\n[http]\nport = {relay_port}\nbind_addr = "127.0.0.1"\n'
                f'[dns]\nport = {dns_port2}\nbind_addr = "127.0.0.1"\n'
                'default_soa = "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600"\n'
                'default_ttl = 900\norigins = ["irohdns.example.", "."]\n'
                '[metrics]\ndisabled = true\n')
        both_path = os.path.join(work, "both.toml")
        with open(both_path, "w") as f:
            f.write(both)
        r = Relay(work, ["--config", relay_toml, "--dns-config", both_path], "both")
        relays.append(r)
        started = r.wait_for(r"dns: listening on udp")
        check(bool(started), "relay.toml + dns.toml: daemon started")
        if started:
            publish_and_resolve(relay_port, dns_port2, "relay.toml + dns.toml")
            status, _, _ = request(relay_port, "GET", "/ping")
            check(status == 200, f"relay.toml + dns.toml: relay /ping ({status})")
        r.stop()

        # A DNS [http] listener that is not the relay's: lookup on a listener of its own.
        own_http = free_port()
        other = both.replace(f"[http]\nport = {relay_port}", f"[http]\nport = {own_http}")
        other_path = os.path.join(work, "other.toml")
        with open(other_path, "w") as f:
            f.write(other)
        r = Relay(work, ["--config", relay_toml, "--dns-config", other_path], "other")
        relays.append(r)
        started = r.wait_for(r"dns: listening on udp") and r.wait_for(r"listening lookup-http on")
        check(bool(started), "own [http]: daemon started" + ("" if started else r.text()[-300:]))
        if started:
            publish_and_resolve(own_http, dns_port2, "own [http]")
            status, _, _ = request(own_http, "GET", "/healthz")
            check(status == 200, f"own [http]: /healthz ({status})")
            status, _, _ = request(own_http, "GET", "/relay")
            check(status == 404, f"own [http]: no relay endpoint there ({status})")
        r.stop()

        # Issue 17 item 2: the relay's HTTPS listener with its own (manual) certificate, the DNS
        # server's [https] on another port with its own self-signed one: both serve, with
        # different certificates, and pkarr PUT/GET works on the lookup listener.
        own_https_check(work, relays)
        lookup_sighup_check(work, relays)
    finally:
        for r in relays:
            r.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"toml configs: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
