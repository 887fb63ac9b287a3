#!/usr/bin/python3
"""PUT/GET /pkarr/{z32} of the iroh-relay binary against spec address-lookup.md §4 and §12.

usage: pkarr_http_test.py <iroh-relay>
Every row of §4.2/§4.3, vectors A-C, walk-through steps 1, 2, 8-13, CORS (§4.4), 413, the
newest-wins rule (§2.4), concurrent PUTs, pipelined requests on one connection and the rate
limit (§4.5, simple and smart).
"""
import http.client
import json
import os
import shutil
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkarr_testlib import Daemon, Signer, dns_txt_message, scratch_dir, verify_payload  # noqa

SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
Z32 = "47pjoycnsrfmxikm95jh13y88e8qnhzu5kungjpxyepgt7a8krpy"
TS = 1700000000000000
VECTOR_A = bytes.fromhex(
    "bf66f48d4e7797733813ffee82fb74a33b44da65d148af48d7459d1f794cd69af0cd7caf141e697fe9ed8192f1"
    "e2142a376b3ddb948bf3a201e31e18b96cbd0b00060a24181e4000000080000000000200000000055f69726f68"
    "343437706a6f79636e7372666d78696b6d39356a6831337938386538716e687a75356b756e676a70787965706774"
    "3761386b72707900001000010000001e002a2972656c61793d68747470733a2f2f657563312d312e72656c61792e"
    "6e302e69726f682e6c696e6b2e2fc00c001000010000001e001514616464723d3139322e302e322e31303a343433"
    "33")
VECTOR_C = bytes.fromhex(
    "a7f49c4fd060e7172d353df7ab167657d006fa6319eee0a08a9a5b43b84bdd60fe47c4768710880e6b2b2286ffb5"
    "e47227ecb3a65759fd0d51fb75c994820f0700060a24181e4001000080000000000000000000")
CORS_VARY = "origin, access-control-request-method, access-control-request-headers"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    else:
        print("ok:", what)


def vector_b(signer):
    # Vector A's records with the second owner name written out (JS pkarr / dns-packet style).
    name = b"\x05_iroh" + bytes([52]) + Z32.encode() + b"\x00"
    relay, addr = b"relay=https://euc1-1.relay.n0.iroh.link./", b"addr=192.0.2.10:4433"
    dns = bytes.fromhex("000080000000000200000000")
    for s in (relay, addr):
        dns += name + bytes.fromhex("001000010000001e") + len(s + b"x").to_bytes(2, "big")
        dns += bytes([len(s)]) + s
    return signer.payload(TS, dns)


def json_error(body, status):
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return doc.get("status") == str(status) and "detail" in doc


def cors(headers):
    return headers.get("access-control-allow-origin") == "*" and headers.get("vary") == CORS_VARY


def run_main(d):
    signer = Signer(SEED)
    check(signer.z32 == Z32, "z32 of the RFC 8032 test key")
    b = vector_b(signer)
    check(b[:64].hex().startswith("dc97e8a640d969b4"), "vector B signature as in the spec")
    path = "/pkarr/" + Z32

    # §12 step 12 before anything is stored; §4.3 404 row.
    status, h, body = d.request("GET", path)
    check(status == 404 and json.loads(body) == {"status": "404", "detail": None} and cors(h),
          "GET unknown key -> 404 {\"status\":\"404\",\"detail\":null}")
    check(h.get("content-type") == "application/json", "404 JSON content type")

    # Step 1, 2.
    status, h, body = d.request("PUT", path, VECTOR_A)
    check(status == 204 and body == b"" and cors(h), "step 1: PUT vector A -> 204, CORS headers")
    status, h, body = d.request("GET", path)
    check(status == 200 and body == VECTOR_A and len(body) == 229, "step 2: GET -> A payload")
    check(h.get("content-type") == "application/x-pkarr-signed-packet" and cors(h),
          "step 2: content type application/x-pkarr-signed-packet")
    check("cache-control" not in h and "etag" not in h and "last-modified" not in h,
          "GET has no caching headers")
    status, h, body = d.request("GET", path + "?foo=bar", headers={"If-Modified-Since":
                                                                  "Thu, 01 Jan 2099 00:00:00 GMT"})
    check(status == 200 and body == VECTOR_A, "query string and If-Modified-Since ignored")

    # Vector B (same timestamp, lexicographically smaller DNS): A wins in either order.
    status, _, _ = d.request("PUT", path, b)
    check(status == 204, "PUT vector B after A -> 204 (ignored)")
    check(d.request("GET", path)[2] == VECTOR_A, "A still stored after B")

    # Step 8: C (newer, empty packet).
    status, _, _ = d.request("PUT", path, VECTOR_C)
    check(status == 204, "step 8: PUT vector C -> 204")
    check(d.request("GET", path)[2] == VECTOR_C, "step 8: GET returns C")
    # Step 9: A again is older.
    status, _, _ = d.request("PUT", path, VECTOR_A)
    check(status == 204, "step 9: PUT A again -> 204 (older, ignored)")
    check(d.request("GET", path)[2] == VECTOR_C, "step 9: GET still returns C")

    # B then A on a fresh store key: use another signer with the same two packets' shape.
    other = Signer()
    dns_small = dns_txt_message(other.z32, ["relay=https://a.example./"])
    dns_large = dns_txt_message(other.z32, ["relay=https://b.example./"])
    p_small, p_large = other.payload(TS, dns_small), other.payload(TS, dns_large)
    d.request("PUT", "/pkarr/" + other.z32, p_small)
    d.request("PUT", "/pkarr/" + other.z32, p_large)
    check(d.request("GET", "/pkarr/" + other.z32)[2] == p_large,
          "same timestamp: greater DNS bytes replace smaller")
    d.request("PUT", "/pkarr/" + other.z32, other.payload(TS - 1, dns_large + b""))
    check(d.request("GET", "/pkarr/" + other.z32)[2] == p_large,
          "older timestamp never replaces newer")

    # Step 10: flipped signature byte; §4.2 400 rows.
    bad = bytearray(VECTOR_A)
    bad[0] ^= 1
    status, h, body = d.request("PUT", path, bytes(bad))
    check(status == 400 and json_error(body, 400) and b"invalid body payload" in body and cors(h),
          "step 10: bad signature -> 400 JSON invalid body payload")
    status, _, body = d.request("PUT", path, VECTOR_A[:71])
    check(status == 400 and b"invalid body payload" in body, "payload of 71 bytes -> 400")
    too_big = signer.payload(TS + 5, dns_txt_message(Z32, ["x" * 200] * 5))
    check(len(too_big) > 1072, "oversize payload built")
    # 413 before the body is read (issue 19 item 2, the pkarr spec's answer; iroh-dns-server: 400).
    status, _, body = d.request("PUT", path, too_big)
    check(status == 413, "payload > 1072 bytes -> 413")
    status, _, body = d.request("PUT", path, signer.payload(TS + 6, b"\x00\x01garbage"))
    check(status == 400 and b"invalid body payload" in body, "unparsable DNS -> 400")
    status, _, body = d.request("PUT", path, b"")
    check(status == 400 and b"invalid body payload" in body, "empty body -> 400")
    # Step 11: uppercase key; other invalid keys.
    status, h, body = d.request("PUT", "/pkarr/" + Z32.upper(), VECTOR_A)
    check(status == 400 and json_error(body, 400) and b"invalid key" in body,
          "step 11: uppercase key -> 400 invalid key")
    for key in (Z32[:-1], Z32 + "y", "0" * 52, "47pjoycnsrfmxikm95jh13y88e8qnhzu5kungjpxyepgt7a8krpb"):
        status, _, body = d.request("GET", "/pkarr/" + key)
        check(status == 400 and b"invalid key" in body, "GET invalid key %r -> 400" % key)
    # A 52-character z32 string whose bytes are not an Ed25519 point.
    not_point = "y" * 51 + "y"
    status, _, body = d.request("PUT", "/pkarr/" + "n" + not_point[1:], VECTOR_A)
    check(status == 400, "key that is not a curve point -> 400")
    # The daemon checks the point only when the payload fails (issue 15 item 7): the answer must
    # still name the key, whatever is wrong with the body.
    # y = 2 (little-endian bytes 02 00 .. 00): (y^2 - 1) / (d y^2 + 1) is not a square mod p.
    off_curve = "ye" + "y" * 50
    for what, payload in (("a well-formed body", VECTOR_A), ("a too short body", b"x" * 10)):
        status, _, body = d.request("PUT", "/pkarr/" + off_curve, payload)
        check(status == 400 and b"invalid key: not an Ed25519 public key" in body,
              "off-curve key with %s -> 400 invalid key (%r)" % (what, body[:80]))
    # Routing: 404 / 405.
    for p in ("/pkarr/", "/pkarr/" + Z32 + "/", "/pkarr/" + Z32 + "/x"):
        check(d.request("GET", p)[0] == 404, "GET %s -> 404" % p)
    status, h, _ = d.request("POST", path, b"x")
    check(status == 405 and "PUT" in h.get("allow", ""), "POST /pkarr/{z32} -> 405 with Allow")
    status, h, body = d.request("HEAD", path)
    check(status == 200 and body == b"" and h.get("content-length") == str(len(VECTOR_C)),
          "HEAD /pkarr/{z32} -> 200 without body")

    # CORS (§4.4): OPTIONS on any path.
    for p in (path, "/", "/nothing/here", "/dns-query"):
        status, h, body = d.request("OPTIONS", p, headers={
            "Origin": "https://x.example", "Access-Control-Request-Method": "PUT"})
        check(status == 200 and body == b"" and cors(h) and
              h.get("access-control-allow-methods") == "GET,POST,PUT",
              "OPTIONS %s -> 200 with CORS headers" % p)
    status, h, body = d.request("GET", "/healthcheck")
    check(status == 200 and body == b"OK", "GET /healthcheck -> OK")

    # 413 above the largest valid payload, 1072 bytes (issue 19 item 2; iroh-dns-server: 2 MiB);
    # the connection announces the size, the server answers at once.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
               (path, 2 * 1024 * 1024 + 1)).encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    check(reply.startswith(b"HTTP/1.1 413"), "body > 2 MiB -> 413")
    check(d.request("PUT", path, b"\0" * 1073)[0] == 413, "body of 1073 bytes -> 413")
    # Exactly 1072 bytes is read (and rejected as a payload).
    status, _, _ = d.request("PUT", path, b"\0" * 1072)
    check(status == 400, "body of exactly 1072 bytes -> 400 (read, invalid payload)")

    # Concurrent PUTs of distinct keys on keep-alive connections: all 204, all readable.
    signers = [Signer() for _ in range(64)]
    results = {}

    def worker(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
        for sg in chunk:
            payload = sg.record_payload(TS + 10, ["relay=https://c.example./"])
            conn.request("PUT", "/pkarr/" + sg.z32, body=payload)
            res = conn.getresponse()
            res.read()
            results[sg.z32] = (res.status, payload)
        conn.close()

    threads = [threading.Thread(target=worker, args=(signers[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(len(results) == 64 and all(s == 204 for s, _ in results.values()),
          "64 concurrent PUTs on 8 connections -> 204")
    check(all(d.request("GET", "/pkarr/" + z)[2] == p for z, (_, p) in results.items()),
          "every concurrent PUT readable byte for byte")
    # Concurrent PUTs of one key with increasing timestamps: the newest wins.
    one = Signer()
    payloads = [one.record_payload(TS + i, ["relay=https://r%d.example./" % i]) for i in range(40)]

    def put_one(items):
        for p in items:
            d.request("PUT", "/pkarr/" + one.z32, p)

    threads = [threading.Thread(target=put_one, args=(payloads[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(d.request("GET", "/pkarr/" + one.z32)[2] == payloads[-1],
          "concurrent PUTs of one key: the newest timestamp is stored")
    check(verify_payload(one.public, payloads[-1]), "python verifies its own payload")


def read_answers(sock, count):
    """Reads `count` HTTP/1.1 answers (Content-Length bodies) from sock: [(status, body)]."""
    buf, out = b"", []
    while len(out) < count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(buf) >= end + 4 + length:
                out.append((int(head[0].split()[1]), buf[end + 4:end + 4 + length]))
                buf = buf[end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return out


def put_request(z32, payload):
    return (b"PUT /pkarr/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
            % (z32.encode(), len(payload))) + payload


def run_pipelined(d):
    """Pipelined requests on one connection (issue 15 item 7: their answers are written together
    once the buffered requests are served): answered in order, a bad one among them included, an
    answer is not held while the next request is incomplete, and a half-close still gets every
    answer."""
    signers = [Signer() for _ in range(10)]
    payloads = [sg.record_payload(TS + 20, ["relay=https://p.example./"]) for sg in signers]
    wire = b"".join(put_request(sg.z32, p) for sg, p in zip(signers[:5], payloads[:5]))
    wire += put_request(signers[5].z32, b"junk")
    wire += b"".join(put_request(sg.z32, p) for sg, p in zip(signers[6:], payloads[6:]))
    wire += b"GET /pkarr/%s HTTP/1.1\r\nHost: t\r\n\r\n" % signers[0].z32.encode()
    with socket.create_connection(("127.0.0.1", d.port), timeout=20) as s:
        s.sendall(wire)
        answers = read_answers(s, 11)
    check([a[0] for a in answers] == [204] * 5 + [400] + [204] * 4 + [200],
          "11 pipelined requests (one invalid PUT) answered in order (%s)"
          % [a[0] for a in answers])
    check(len(answers) == 11 and answers[10][1] == payloads[0],
          "pipelined GET behind the PUTs returns the first PUT's packet")

    # The second request's body is not there yet: the first answer must not wait for it.
    a, b = Signer(), Signer()
    pa = a.record_payload(TS + 21, ["relay=https://q.example./"])
    pb = b.record_payload(TS + 21, ["relay=https://q.example./"])
    second = put_request(b.z32, pb)
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        s.sendall(put_request(a.z32, pa) + second[:len(second) - 10])
        try:
            first = read_answers(s, 1)
        except socket.timeout:
            first = []
        check([x[0] for x in first] == [204],
              "answer written while the next pipelined request is incomplete")
        s.sendall(second[len(second) - 10:])
        check([x[0] for x in read_answers(s, 1)] == [204], "the completed request is answered")

    # Pipelined, then the client closes its sending side: both answers still arrive.
    c, e = Signer(), Signer()
    with socket.create_connection(("127.0.0.1", d.port), timeout=20) as s:
        s.sendall(put_request(c.z32, c.record_payload(TS + 22, ["relay=https://r.example./"])) +
                  put_request(e.z32, e.record_payload(TS + 22, ["relay=https://r.example./"])))
        s.shutdown(socket.SHUT_WR)
        check([x[0] for x in read_answers(s, 2)] == [204, 204],
              "pipelined PUTs then a half-close: both answered")


def run_rate_limited(d, smart):
    signer = Signer()
    path = "/pkarr/" + signer.z32
    statuses = []
    last = None
    for i in range(3):
        last = d.request("PUT", path, signer.record_payload(TS + i, ["relay=https://x.example./"]))
        statuses.append(last[0])
    check(statuses == [204, 204, 429], "step 13: 3 rapid PUTs -> 204, 204, 429 (%s)" % statuses)
    status, h, body = last
    check(h.get("retry-after", "").isdigit() and h.get("x-ratelimit-after") == h.get("retry-after")
          and body == ("Too Many Requests! Wait for %ss" % h.get("retry-after")).encode()
          and cors(h), "429 body, retry-after and x-ratelimit-after")
    # Counted before validation: an invalid PUT is limited too.
    check(d.request("PUT", path, b"junk")[0] == 429, "invalid PUT is rate limited too")
    check(d.request("GET", path)[0] == 200, "GET is not rate limited")
    hdr = {"X-Forwarded-For": "198.51.100.7, 10.0.0.1"}
    status = d.request("PUT", path, signer.record_payload(TS + 9, ["relay=https://y.example./"]),
                       headers=hdr)[0]
    if smart:
        check(status == 204, "smart: X-Forwarded-For is its own client")
        for h2 in ({"X-Real-IP": "198.51.100.8"}, {"Forwarded": "for=\"[2001:db8::1]:4711\""}):
            st = d.request("PUT", path, signer.record_payload(TS + 10, ["relay=https://z./"]),
                           headers=h2)[0]
            check(st == 204, "smart: %s is its own client" % list(h2)[0])
        sts = [d.request("PUT", path, b"junk", headers=hdr)[0] for _ in range(2)]
        check(sts == [400, 429], "smart: the forwarded client has its own budget (%s)" % sts)
    else:
        check(status == 429, "simple: X-Forwarded-For is ignored")


def main():
    binary = sys.argv[1]
    root = scratch_dir("pkarr-http")
    try:
        d = Daemon(binary, os.path.join(root, "open"), "pkarr_put_rate_limit: disabled\n").start()
        try:
            run_main(d)
            run_pipelined(d)
        finally:
            d.stop()
        for mode in ("simple", "smart"):
            d = Daemon(binary, os.path.join(root, mode), "pkarr_put_rate_limit: %s\n" % mode).start()
            try:
                run_rate_limited(d, mode == "smart")
            finally:
                d.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all pkarr HTTP checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
