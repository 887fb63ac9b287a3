#!/usr/bin/python3
"""Real DNS clients against the iroh-relay binary (spec address-lookup.md §5, §6, §12).

Runs `iroh-relay --config` with enable_pkarr + enable_dns on loopback (ephemeral ports, read from
its log), publishes vector A through PUT /pkarr, then resolves with kdig (UDP, +tcp), dig
(+bufsize=512 -> TC -> TCP retry), dnspython (UDP, TCP, DoH GET and POST via urllib) and checks
the walk-through of §12 steps 3-9 (step 4 as NODATA: RFC 8020), truncation and AXFR refusal.

usage: dns_interop_test.py <iroh-relay binary>   (Debian's python3: dnspython, nacl)
A missing client or Python module fails the test.
"""
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
    import nacl.signing
except ImportError as e:  # pragma: no cover
    print(f"FAIL: {e}: Debian packages python3-dnspython, python3-nacl for /usr/bin/python3 "
          "(scripts/setup installs them)")
    sys.exit(1)

# A missing client fails the test (tests/require-tools.sh names its package).
if subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "require-tools.sh"),
                   "kdig", "dig"]).returncode != 0:
    sys.exit(1)

Z32 = "47pjoycnsrfmxikm95jh13y88e8qnhzu5kungjpxyepgt7a8krpy"
RELAY = "relay=https://euc1-1.relay.n0.iroh.link./"
ADDR = "addr=192.0.2.10:4433"
PAYLOAD_A = bytes.fromhex(
    "bf66f48d4e7797733813ffee82fb74a33b44da65d148af48d7459d1f794cd69af0cd7caf141e697fe9ed8192f1"
    "e2142a376b3ddb948bf3a201e31e18b96cbd0b00060a24181e4000000080000000000200000000055f69726f68"
    "343437706a6f79636e7372666d78696b6d39356a6831337938386538716e687a75356b756e676a70787965706774"
    "3761386b72707900001000010000001e002a2972656c61793d68747470733a2f2f657563312d312e72656c61792e"
    "6e302e69726f682e6c696e6b2e2fc00c001000010000001e001514616464723d3139322e302e322e31303a343433"
    "33")
PAYLOAD_C = bytes.fromhex(
    "a7f49c4fd060e7172d353df7ab167657d006fa6319eee0a08a9a5b43b84bdd60fe47c4768710880e6b2b2286ffb5"
    "e47227ecb3a65759fd0d51fb75c994820f0700060a24181e4001000080000000000000000000")
QUERY_D = bytes.fromhex(
    "000001000001000000000000055f69726f68343437706a6f79636e7372666d78696b6d39356a6831337938386538"
    "716e687a75356b756e676a707879657067743761386b7270790769726f68646e73076578616d706c650000100001")
NAME = f"_iroh.{Z32}.irohdns.example."

Z32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"


def z32_encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big")
    nchars = (len(data) * 8 + 4) // 5
    bits <<= nchars * 5 - len(data) * 8
    return "".join(Z32_ALPHABET[(bits >> (5 * (nchars - 1 - i))) & 31] for i in range(nchars))


passed = 0
failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}")
        if detail:
            print("     " + str(detail).replace("\n", "\n     "))


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def txt_strings(rrset):
    return [b"".join(r.strings).decode() for r in rrset]


def big_packet(signing_key, count, timestamp):
    """A pkarr packet with `count` 80-byte TXT records at _iroh.<z32> (dnspython + nacl)."""
    z = z32_encode(bytes(signing_key.verify_key))
    msg = dns.message.Message(id=0)
    msg.flags = dns.flags.QR
    rrset = msg.find_rrset(msg.answer, dns.name.from_text(f"_iroh.{z}"), dns.rdataclass.IN,
                           dns.rdatatype.TXT, create=True)
    rrset.update_ttl(30)
    for i in range(count):
        rrset.add(dns.rdata.from_text("IN", "TXT", f'"addr=10.0.{i}.1:{10000 + i}{"x" * 60}"'))
    wire = msg.to_wire()
    signable = b"3:seqi%de1:v%d:" % (timestamp, len(wire)) + wire
    sig = signing_key.sign(signable).signature
    return z, sig + timestamp.to_bytes(8, "big") + wire


def main():
    relay = sys.argv[1]
    work = tempfile.mkdtemp(prefix="dns-interop.")
    config = os.path.join(work, "relay.yaml")
    with open(config, "w") as f:
        f.write(f"""http_bind_addr: "127.0.0.1:0"
enable_metrics: false
enable_pkarr: true
pkarr_put_rate_limit: disabled
enable_dns: true
dns:
  bind_addr: "127.0.0.1:0"
  origins: ["irohdns.example.", "."]
  default_soa: "dns1.irohdns.example hostmaster.irohdns.example 0 10800 3600 604800 3600"
  rr_a: "127.0.0.1"
  rr_ns: "ns1.irohdns.example."
  tcp_idle_timeout_ms: 1000
  max_tcp_connections: 8
  # Every query comes from 127.0.0.1; RRL has its own test (dns_service_test).
  rrl_rate: 0
data_dir: "{work}/data"
""")
    log_path = os.path.join(work, "relay.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([relay, "--config", config], stdout=log, stderr=subprocess.STDOUT)
    try:
        http_port = dns_port = None
        for _ in range(200):
            text = open(log_path).read()
            m = re.search(r"listening http on 127\.0\.0\.1:(\d+)", text)
            d = re.search(r"dns: listening on udp 127\.0\.0\.1:(\d+)", text)
            if m and d:
                http_port, dns_port = int(m.group(1)), int(d.group(1))
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if not http_port:
            print("FAIL relay did not start\n" + open(log_path).read())
            return 1
        base = f"http://127.0.0.1:{http_port}"
        port = str(dns_port)

        # Step 1: publish vector A.
        status, _, _ = http("PUT", f"{base}/pkarr/{Z32}", PAYLOAD_A)
        check("step 1: PUT /pkarr vector A -> 204", status == 204, status)

        # Step 3 with kdig over UDP and TCP.
        for transport in ([], ["+tcp"]):
            out = run(["kdig", "+timeout=10", "@127.0.0.1", "-p", port, NAME, "TXT"] + transport)
            label = "kdig " + ("+tcp" if transport else "udp")
            check(f"step 3: {label} NOERROR aa", "status: NOERROR" in out and
                  re.search(r"flags: qr aa rd;", out, re.IGNORECASE) is not None, out)
            check(f"step 3: {label} two TXT RRs, TTL 30, as published",
                  re.search(rf"{re.escape(NAME)}\s+30\s+IN\s+TXT\s+\"{re.escape(RELAY)}\"", out)
                  is not None and
                  re.search(rf"{re.escape(NAME)}\s+30\s+IN\s+TXT\s+\"{re.escape(ADDR)}\"", out)
                  is not None and "ANSWER: 2" in out, out)

        # Step 3 with dnspython over UDP and TCP (EDNS 1232 like hickory).
        q = dns.message.make_query(NAME, "TXT", use_edns=0, payload=1232)
        for name, fn in (("udp", dns.query.udp), ("tcp", dns.query.tcp)):
            r = fn(q, "127.0.0.1", port=dns_port, timeout=10)
            check(f"step 3: dnspython {name} NOERROR AA, RA=0, AN=2 NS=0",
                  r.rcode() == 0 and r.flags & dns.flags.AA and not r.flags & dns.flags.RA and
                  len(r.answer) == 1 and len(r.authority) == 0, r)
            check(f"step 3: dnspython {name} answer",
                  r.answer and txt_strings(r.answer[0]) == [RELAY, ADDR] and
                  r.answer[0].ttl == 30 and str(r.answer[0].name) == NAME, r)
        # 0x20 mixed case: question echoed, answers resolve.
        mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(NAME))
        r = dns.query.udp(dns.message.make_query(mixed, "TXT"), "127.0.0.1", port=dns_port,
                          timeout=10)
        check("mixed-case query resolves, question echoed",
              r.rcode() == 0 and r.answer and txt_strings(r.answer[0]) == [RELAY, ADDR] and
              str(r.question[0].name) == mixed, r)

        # Step 4 (RFC 8020): the name exists with another type -> NODATA + SOA of the origin.
        r = dns.query.udp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=dns_port,
                          timeout=10)
        check("step 4: type A -> NOERROR/NODATA, AA, SOA irohdns.example.",
              r.rcode() == 0 and not r.answer and r.flags & dns.flags.AA and
              len(r.authority) == 1 and r.authority[0].rdtype == dns.rdatatype.SOA and
              str(r.authority[0].name) == "irohdns.example.", r)
        r = dns.query.udp(dns.message.make_query("nope." + NAME, "TXT"), "127.0.0.1",
                          port=dns_port, timeout=10)
        check("below _iroh -> NXDOMAIN + SOA", r.rcode() == dns.rcode.NXDOMAIN and
              len(r.authority) == 1, r)

        # Step 5: origin ".".
        out = run(["kdig", "+timeout=10", "@127.0.0.1", "-p", port, f"_iroh.{Z32}.", "TXT"])
        check("step 5: kdig _iroh.<z32>. TXT", "status: NOERROR" in out and
              f'_iroh.{Z32}.\t30\tIN\tTXT\t"{RELAY}"' in out.replace("  ", "\t") or
              (RELAY in out and ADDR in out and "ANSWER: 2" in out), out)

        # Step 6: DoH GET wire format.
        dns_param = base64.urlsafe_b64encode(QUERY_D).rstrip(b"=").decode()
        status, headers, body = http("GET", f"{base}/dns-query?dns={dns_param}",
                                     headers={"Accept": "application/dns-message"})
        headers = {k.lower(): v for k, v in headers.items()}
        ok = status == 200 and headers.get("content-type") == "application/dns-message"
        r = dns.message.from_wire(body) if ok else None
        check("step 6: DoH GET dns-message 200, s-maxage=30, two TXT",
              ok and headers.get("cache-control") == "s-maxage=30" and
              txt_strings(r.answer[0]) == [RELAY, ADDR], (status, headers, body[:80]))
        status, headers, body = http("GET", f"{base}/dns-query?dns={dns_param}")
        check("DoH GET without Accept -> dns-message", status == 200 and
              dns.message.from_wire(body).answer, status)
        # DoH POST (dnspython-built query, random ID, EDNS).
        q = dns.message.make_query(NAME, "TXT", use_edns=0)
        status, headers, body = http("POST", f"{base}/dns-query", q.to_wire(),
                                     {"Content-Type": "application/dns-message",
                                      "Accept": "application/dns-message"})
        headers = {k.lower(): v for k, v in headers.items()}
        r = dns.message.from_wire(body) if status == 200 else None
        check("DoH POST 200, no Cache-Control, answer, ID echoed",
              r is not None and "cache-control" not in headers and r.id == q.id and
              txt_strings(r.answer[0]) == [RELAY, ADDR], (status, headers))

        # Step 7: DoH JSON.
        status, headers, body = http("GET", f"{base}/dns-query?name={NAME}&type=TXT",
                                     headers={"Accept": "application/dns-json"})
        try:
            j = json.loads(body)
        except ValueError:
            j = {}
        check("step 7: DoH JSON Status 0, two answers type 16 TTL 30",
              status == 200 and j.get("Status") == 0 and
              [(a["type"], a["TTL"], a["data"]) for a in j.get("Answer", [])] ==
              [(16, 30, RELAY), (16, 30, ADDR)] and
              j.get("Question") == [{"name": NAME, "type": 16}], (status, body))
        status, _, _ = http("GET", f"{base}/dns-query?dns={dns_param}", headers={"Accept": "*/*"})
        check("DoH Accept */* -> 406", status == 406, status)
        padded = base64.urlsafe_b64encode(QUERY_D).decode()  # 92 bytes: one '='
        status, _, _ = http("GET", f"{base}/dns-query?dns={padded}")
        check("DoH padded base64url -> 400", "=" in padded and status == 400, status)
        status, _, _ = http("GET", f"{base}/dns-query?name={NAME}&type=TXT&rd=yes",
                            headers={"Accept": "application/dns-json"})
        check("DoH JSON rd=yes -> 400", status == 400, status)
        response = bytearray(QUERY_D)
        response[2] |= 0x80
        status, _, _ = http("POST", f"{base}/dns-query", bytes(response))
        check("DoH POST QR=1 -> 400", status == 400, status)

        # Truncation: a packet of another key with 10 TXT records (~900 bytes of answers).
        key = nacl.signing.SigningKey(bytes(range(32)))
        z, payload = big_packet(key, 10, int(time.time() * 1e6))
        status, _, _ = http("PUT", f"{base}/pkarr/{z}", payload)
        check("PUT 10-record packet -> 204", status == 204, status)
        big = f"_iroh.{z}.irohdns.example."
        q = dns.message.make_query(big, "TXT", use_edns=0, payload=512)
        r = dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=10)
        check("EDNS 512: TC=1, whole records only", r.flags & dns.flags.TC and
              len(r.to_wire()) <= 512 and (not r.answer or len(r.answer[0]) < 10), r.flags)
        r = dns.query.tcp(q, "127.0.0.1", port=dns_port, timeout=10)
        check("TCP retry: all 10 records", not r.flags & dns.flags.TC and r.answer and
              len(r.answer[0]) == 10, r)
        out = run(["dig", "@127.0.0.1", "-p", port, "+bufsize=512", big, "TXT"])
        check("dig +bufsize=512: truncated, retried over TCP, 10 answers",
              "Truncated, retrying in TCP mode" in out and "ANSWER: 10" in out, out)
        out = run(["dig", "@127.0.0.1", "-p", port, "+noedns", big, "TXT"])
        check("dig +noedns: 512-byte limit -> TCP retry", "Truncated" in out and
              "ANSWER: 10" in out, out)

        # AXFR refused (kdig and dnspython).
        out = run(["kdig", "+timeout=10", "@127.0.0.1", "-p", port, "AXFR", "irohdns.example."])
        check("kdig AXFR -> REFUSED", "REFUSED" in out, out)
        r = dns.query.tcp(dns.message.make_query("irohdns.example.", "AXFR"), "127.0.0.1",
                          port=dns_port, timeout=10)
        check("dnspython AXFR -> REFUSED", r.rcode() == dns.rcode.REFUSED, r)
        # Outside the origins: with "." as an origin nothing is outside; static apex records.
        r = dns.query.udp(dns.message.make_query("irohdns.example.", "SOA"), "127.0.0.1",
                          port=dns_port, timeout=10)
        check("SOA irohdns.example. + NS in authority", r.rcode() == 0 and r.answer and
              r.answer[0].rdtype == dns.rdatatype.SOA and len(r.authority) == 1, r)

        # TCP framing: three pipelined queries in one write, answered in order.
        queries = [dns.message.make_query(NAME, "TXT") for _ in range(3)]
        with socket.create_connection(("127.0.0.1", dns_port), timeout=10) as s:
            s.sendall(b"".join(struct.pack(">H", len(w)) + w for w in
                               (q.to_wire() for q in queries)))
            ids = []
            for _ in queries:
                length = struct.unpack(">H", recv_exact(s, 2))[0]
                ids.append(dns.message.from_wire(recv_exact(s, length)).id)
        check("TCP: pipelined queries answered in order", ids == [q.id for q in queries], ids)
        # Idle timeout (1 s): the server closes a silent connection (read gives EOF, not our 10 s
        # timeout).
        with socket.create_connection(("127.0.0.1", dns_port), timeout=10) as s:
            try:
                eof = s.recv(1) == b""
            except OSError:
                eof = True
        check("TCP: idle connection closed by the server", eof)
        # max_tcp_connections (8): the 9th concurrent connection is closed at once.
        held = [socket.create_connection(("127.0.0.1", dns_port), timeout=10) for _ in range(8)]
        try:
            with socket.create_connection(("127.0.0.1", dns_port), timeout=10) as s:
                try:
                    rejected = s.recv(1) == b""
                except OSError:
                    rejected = True
        finally:
            for h in held:
                h.close()
        check("TCP: connection over max_tcp_connections closed", rejected)
        # A datagram shorter than a header and a response (QR=1) get no answer; service goes on.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10.0)
            s.sendto(b"\x12\x34\x01", ("127.0.0.1", dns_port))
            response = bytearray(QUERY_D)
            response[2] |= 0x80
            s.sendto(bytes(response), ("127.0.0.1", dns_port))
            s.sendto(QUERY_D, ("127.0.0.1", dns_port))
            first = s.recv(4096)
            s.settimeout(1.0)
            try:
                extra = s.recv(4096)
            except socket.timeout:
                extra = None
        check("UDP: short and QR=1 datagrams dropped, next query answered",
              dns.message.from_wire(first).id == 0 and extra is None, (first[:16], extra))

        # Steps 8 and 9: the empty packet C replaces A; A again is ignored.
        status, _, _ = http("PUT", f"{base}/pkarr/{Z32}", PAYLOAD_C)
        check("step 8: PUT C -> 204", status == 204, status)
        r = dns.query.udp(dns.message.from_wire(QUERY_D), "127.0.0.1", port=dns_port, timeout=10)
        check("step 8: query D -> NXDOMAIN", r.rcode() == dns.rcode.NXDOMAIN, r)
        status, _, _ = http("PUT", f"{base}/pkarr/{Z32}", PAYLOAD_A)
        r = dns.query.tcp(dns.message.from_wire(QUERY_D), "127.0.0.1", port=dns_port, timeout=10)
        check("step 9: PUT A again 204, DNS still NXDOMAIN",
              status == 204 and r.rcode() == dns.rcode.NXDOMAIN, (status, r))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if failed:
            print("relay log:\n" + open(log_path).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
