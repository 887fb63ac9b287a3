#!/usr/bin/python3
"""Byte-level protocol test of the iroh-relay server with a client written from the spec alone.

Nothing here shares code with the C++ implementation: HTTP and RFC 6455 framing are raw sockets,
Ed25519 is PyNaCl (libsodium), BLAKE3 is the official C sources compiled at test time and loaded
with ctypes. The server runs as a child process on 127.0.0.1 (spec: relay.md §2-§6, §12).

    /usr/bin/python3 relay_wire_test.py --relay /path/to/iroh-relay [unittest args]
"""

import argparse
import base64
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import nacl.signing

BLAKE3_DIR = "/usr/share/cargo/registry/blake3-1.3.1/c"
CHALLENGE_CONTEXT = b"iroh-relay handshake v1 challenge signature"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
IO_TIMEOUT = 5.0  # seconds for any single wait on the server
V1, V2 = "iroh-relay-v1", "iroh-relay-v2"
SAME_ID_TEXT = b"Another endpoint connected with the same endpoint id. No more messages will be received."
HEALTHY_TEXT = b"The connection is healthy and has recovered from previous problems"

RELAY_BINARY = None  # set from --relay
WORKDIR = None  # temporary directory of this run
SERVER = None  # the running RelayProcess with the default config
TARGET = None  # the RelayProcess the current test talks to
BLAKE3 = None  # ctypes handle


# ---- BLAKE3 via the official C sources -----------------------------------------------------------


def build_blake3(workdir):
    lib = os.path.join(workdir, "libblake3_test.so")
    sources = [os.path.join(BLAKE3_DIR, f) for f in ("blake3.c", "blake3_dispatch.c", "blake3_portable.c")]
    flags = ["-DBLAKE3_NO_SSE2", "-DBLAKE3_NO_SSE41", "-DBLAKE3_NO_AVX2", "-DBLAKE3_NO_AVX512"]
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", *flags, "-o", lib, *sources],
                   check=True, timeout=120)
    handle = ctypes.CDLL(lib)
    handle.blake3_hasher_init_derive_key.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    handle.blake3_hasher_update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    handle.blake3_hasher_finalize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    return handle


def blake3_derive_key(context, material):
    hasher = ctypes.create_string_buffer(4096)  # sizeof(blake3_hasher) is 1912
    out = ctypes.create_string_buffer(32)
    BLAKE3.blake3_hasher_init_derive_key(hasher, context)
    BLAKE3.blake3_hasher_update(hasher, material, len(material))
    BLAKE3.blake3_hasher_finalize(hasher, out, 32)
    return out.raw


# ---- the server under test ------------------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RelayProcess:
    def __init__(self, binary, workdir, extra_yaml="", env=None):
        self.binary = binary
        self.workdir = workdir
        self.extra_yaml = extra_yaml
        self.env = env
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, "relay.log")

    def start(self):
        last_error = None
        for _ in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            config = os.path.join(self.workdir, "relay.yaml")
            with open(config, "w") as f:
                f.write(f"http_bind_addr: 127.0.0.1:{self.port}\n"
                        "enable_metrics: false\n"
                        "enable_stun: false\n"
                        "log_level: debug\n"
                        f"data_dir: {os.path.join(self.workdir, 'data')}\n" + self.extra_yaml)
            self.log = open(self.log_path, "wb")
            self.proc = subprocess.Popen([self.binary, "--config", config], stdout=self.log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir,
                                         env={**os.environ, **(self.env or {})})
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError as e:
                    last_error = e
                    time.sleep(0.05)
            self.stop()
            last_error = last_error or RuntimeError("relay exited")
        raise RuntimeError(f"relay did not start: {last_error}\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


# ---- raw HTTP ----------------------------------------------------------------------------------


class Response:
    def __init__(self, status, reason, headers, body, rest, head_lines):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lowercase name, value)
        self.body = body
        self.rest = rest  # bytes after the header block (WebSocket frames on a 101)
        self.head_lines = head_lines

    def header(self, name):
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name):
        return [v for n, v in self.headers if n == name.lower()]


def connect():
    sock = socket.create_connection(("127.0.0.1", TARGET.port), timeout=IO_TIMEOUT)
    sock.settimeout(IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed inside the response head: {data!r}")
        data += chunk
        if len(data) > 65536:
            raise ValueError("response head too large")
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    version, status, *reason = lines[0].split(b" ", 2)
    assert version == b"HTTP/1.1", lines[0]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode().strip().lower(), value.decode("latin-1").strip()))
    return int(status), (reason[0].decode() if reason else ""), headers, rest, len(lines) - 1


def http_request(method, path, headers=(), sock=None):
    own = sock is None
    sock = sock or connect()
    try:
        request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{TARGET.port}\r\n"
        for name, value in headers:
            request += f"{name}: {value}\r\n"
        sock.sendall(request.encode("latin-1") + b"\r\n")
        status, reason, hdrs, rest, count = read_head(sock)
        response = Response(status, reason, hdrs, b"", rest, count)
        if status == 101:
            return response, sock
        length = response.header("content-length")
        if method == "HEAD" or status in (204, 304):
            length = "0"
        if length is None:
            assert response.header("transfer-encoding") is None, "chunked responses not expected"
            body = rest
            while True:  # body ends at EOF
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        else:
            body = rest
            while len(body) < int(length):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed inside the body")
                body += chunk
        response.body = body[: int(length)] if length is not None else body
        return response, sock
    finally:
        if own:
            sock.close()


def http_get(path, headers=(), method="GET"):
    return http_request(method, path, headers)[0]


# ---- RFC 6455 client -----------------------------------------------------------------------------


class Closed(Exception):
    pass


def ws_frame(opcode, payload, fin=True, mask=None):
    mask = mask if mask is not None else os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class WsClient:
    def __init__(self, sock, buffered, protocol):
        self.sock = sock
        self.buffer = buffered
        self.protocol = protocol
        self.raw_frames = []  # exact bytes of every server WebSocket frame, for byte checks

    def _fill(self, n):
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError) as e:
                raise Closed(str(e))
            if not chunk:
                raise Closed("EOF")
            self.buffer += chunk

    def _take(self, n):
        self._fill(n)
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def recv_frame(self, timeout=IO_TIMEOUT):
        """One WebSocket frame: (fin, opcode, payload). Server frames must be unmasked."""
        self.sock.settimeout(timeout)
        head = self._take(2)
        fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        if head[0] & 0x70:
            raise AssertionError(f"RSV bits set by the server: {head.hex()}")
        if head[1] & 0x80:
            raise AssertionError("server frame is masked")
        n = head[1] & 0x7F
        ext = b""
        if n == 126:
            ext = self._take(2)
            n = int.from_bytes(ext, "big")
        elif n == 127:
            ext = self._take(8)
            n = int.from_bytes(ext, "big")
        payload = self._take(n)
        self.raw_frames.append(head + ext + payload)
        return fin, opcode, payload

    def recv_message(self, timeout=IO_TIMEOUT):
        """The next binary message (relay frame). Text messages and WS pongs are skipped."""
        deadline = time.monotonic() + timeout
        parts, first_opcode = [], None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no message")
            fin, opcode, payload = self.recv_frame(left)
            if opcode == 0x8:
                raise Closed(f"WebSocket close {payload.hex()}")
            if opcode == 0x9:  # answer WS pings like a library would
                self.send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode != 0x0:
                first_opcode, parts = opcode, []
            parts.append(payload)
            if fin:
                if first_opcode == 0x1:
                    continue
                if first_opcode != 0x2:
                    raise AssertionError(f"unexpected opcode {first_opcode}")
                return b"".join(parts)

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(ws_frame(opcode, payload, fin))

    def send(self, message):
        self.send_frame(0x2, message)

    def send_raw(self, data):
        self.sock.sendall(data)

    def expect_closed(self, timeout=IO_TIMEOUT):
        """The server closes the connection (TCP EOF/RST, maybe after a WS Close) in time."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("server did not close the connection")
                self.recv_message(left)
        except Closed:
            return
        except socket.timeout:
            raise AssertionError("server did not close the connection")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def upgrade_headers(protocols=f"{V2}, {V1}", key=None):
    key = key or base64.b64encode(os.urandom(16)).decode()
    return key, [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                 ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", protocols)]


def ws_connect(testcase, protocols=f"{V2}, {V1}", expect=V2, extra_headers=(), path="/relay"):
    key, headers = upgrade_headers(protocols)
    sock = connect()
    testcase.addCleanup(sock.close)
    response, _ = http_request("GET", path, [*headers, *extra_headers], sock=sock)
    testcase.assertEqual(response.status, 101, response.body)
    testcase.assertEqual(response.header("sec-websocket-accept"), accept_key(key))
    testcase.assertEqual(response.header_all("sec-websocket-protocol"), [expect])
    testcase.assertEqual((response.header("upgrade") or "").lower(), "websocket")
    testcase.assertEqual((response.header("connection") or "").lower(), "upgrade")
    testcase.assertLessEqual(response.head_lines, 25, "iroh accepts at most 25 header lines")
    testcase.assertIsNone(response.header("sec-websocket-extensions"))
    # No body: whatever follows the head must be WebSocket frames (§3.3).
    if response.rest:
        testcase.assertEqual(response.rest[0], 0x82, f"bytes after the 101 head: {response.rest[:32].hex()}")
    return WsClient(sock, response.rest, expect)


# ---- relay protocol --------------------------------------------------------------------------------


class Endpoint:
    """A relay client with its Ed25519 key."""

    def __init__(self, testcase, key=None, protocols=f"{V2}, {V1}", expect=V2, headers=(),
                 path="/relay"):
        self.key = key or nacl.signing.SigningKey.generate()
        self.id = bytes(self.key.verify_key)
        self.ws = ws_connect(testcase, protocols, expect, headers, path)
        self.t = testcase

    def read_challenge(self):
        msg = self.ws.recv_message()
        self.t.assertEqual(len(msg), 17, f"ServerChallenge must be 17 bytes: {msg.hex()}")
        self.t.assertEqual(msg[0], 0x00)
        return msg[1:]

    def client_auth(self, challenge):
        signature = self.key.sign(blake3_derive_key(CHALLENGE_CONTEXT, challenge)).signature
        return b"\x01" + self.id + b"\x40" + signature

    def handshake(self):
        self.ws.send(self.client_auth(self.read_challenge()))
        self.t.assertEqual(self.ws.recv_message(), b"\x02")
        return self

    def ping(self, data=None):
        """Ping -> Pong with the same bytes; also proves nothing else was queued before it."""
        data = data or os.urandom(8)
        self.ws.send(b"\x09" + data)
        self.t.assertEqual(self.ws.recv_message(), b"\x0a" + data)

    def send_datagram(self, dst, contents, ecn=0, segment_size=None):
        if segment_size is None:
            self.ws.send(b"\x04" + dst + bytes([ecn]) + contents)
        else:
            self.ws.send(b"\x05" + dst + bytes([ecn]) + segment_size.to_bytes(2, "big") + contents)


def connected(testcase, key=None, protocols=f"{V2}, {V1}", expect=V2):
    endpoint = Endpoint(testcase, key, protocols, expect).handshake()
    # After a Pong the server has certainly registered the endpoint.
    endpoint.ping()
    return endpoint


# ---- tests ---------------------------------------------------------------------------------------


class RelayTestCase(unittest.TestCase):
    """Blames a server crash on the test that caused it, then restarts the server for the rest."""

    @classmethod
    def relay(cls):
        return SERVER

    def setUp(self):
        global TARGET
        TARGET = server = self.relay()
        if not server.alive():
            log = server.log_tail()
            server.stop()
            server.start()
            self.fail(f"relay was found dead, crashed after the previous test (restarted):\n{log}")
        # Cleanups run last-in first-out: this one runs after every client socket is closed, so
        # a crash on connection teardown is blamed on this test too.
        self.addCleanup(self.check_server_alive)

    def check_server_alive(self):
        server = self.relay()
        # A round trip and a short grace give the server time to process the closed connections.
        try:
            http_get("/ping")
        except OSError:
            pass
        try:
            server.proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        if not server.alive():
            log = server.log_tail()
            server.stop()
            server.start()
            self.fail(f"relay died (restarted for the next tests):\n{log}")


class TestVectors(RelayTestCase):
    """The client's own crypto against the spec vectors (§12.1), so failures below are the server's."""

    def test_blake3_challenge_message(self):
        self.assertEqual(blake3_derive_key(CHALLENGE_CONTEXT, bytes(range(16))).hex(),
                         "b7b16e505d2cb5dbaf494800092c3b05a6c45d8d3fd4f1b888c6a77240b876c0")

    def test_client_auth_k42(self):
        key = nacl.signing.SigningKey(b"\x2a" * 32)
        signature = key.sign(blake3_derive_key(CHALLENGE_CONTEXT, bytes(range(16)))).signature
        frame = b"\x01" + bytes(key.verify_key) + b"\x40" + signature
        self.assertEqual(frame.hex(),
                         "01197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61"
                         "40a28b5ebc6a930b5d80ad5aca2a8e48ad4a064e699c0866674c8b8e61a5f4ea94"
                         "0ee8b9f06732930250ac0735555abe77e8df740165edc3163be432f0e4f3cf0f")

    def test_accept_key_and_masking(self):
        self.assertEqual(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertEqual(ws_frame(0x2, b"\x09" + b"\x2a" * 8, mask=bytes.fromhex("11223344")).hex(),
                         "828911223344180819" "6e3b08196e3b")


class TestHttp(RelayTestCase):
    def test_ping(self):
        r = http_get("/ping")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("access-control-allow-origin"), "*")
        self.assertEqual(r.body, b"")

    def test_generate_204_challenge(self):
        r = http_get("/generate_204", [("X-Iroh-Challenge", "ts_relay.example.com")])
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("x-iroh-response"), "response ts_relay.example.com")
        self.assertEqual(r.body, b"")

    def test_generate_204_invalid_challenges(self):
        for challenge in ("bad challenge!", "x" * 64, "a/b"):
            r = http_get("/generate_204", [("X-Iroh-Challenge", challenge)])
            self.assertEqual(r.status, 204, challenge)
            self.assertIsNone(r.header("x-iroh-response"), challenge)
        r = http_get("/generate_204")
        self.assertEqual(r.status, 204)
        self.assertIsNone(r.header("x-iroh-response"))
        longest = "y" * 63
        r = http_get("/generate_204", [("X-Iroh-Challenge", longest)])
        self.assertEqual(r.header("x-iroh-response"), "response " + longest)

    def test_not_found(self):
        for method, path in (("GET", "/nope"), ("POST", "/relay"), ("GET", "/relay/"),
                             ("HEAD", "/ping"), ("GET", "/health"), ("POST", "/ping")):
            r = http_get(path, method=method)
            self.assertEqual(r.status, 404, f"{method} {path}")
            if method != "HEAD":
                self.assertEqual(r.body, b"Not Found", f"{method} {path}")

    def test_query_string_ignored_for_routing(self):
        r = http_get("/ping?x=1")
        self.assertEqual(r.status, 200)

    def test_index_and_robots(self):
        r = http_get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        # The reference body; ours may append a status paragraph (cosmetic, no client reads it).
        reference = (b'<html><body>\n<h1>Iroh Relay</h1>\n<p>\n'
                     b'  This is an <a href="https://iroh.computer/">Iroh</a> Relay server.\n'
                     b'</p>\n')
        self.assertTrue(r.body.startswith(reference), r.body)
        # The same page; its status figures (connections, uptime) may change between requests.
        index = http_get("/index.html")
        self.assertEqual(index.status, 200)
        self.assertEqual(index.header("content-type"), "text/html; charset=utf-8")
        self.assertTrue(index.body.startswith(reference), index.body)
        robots = http_get("/robots.txt")
        self.assertEqual(robots.status, 200)
        self.assertEqual(robots.body, b"User-agent: *\nDisallow: /\n")

    def test_healthz(self):
        r = http_get("/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertIn(b'"status":"ok"', r.body)


class TestUpgrade(RelayTestCase):
    def upgrade_error(self, drop=(), replace=()):
        key, headers = upgrade_headers()
        headers = [(n, v) for n, v in headers if n not in drop]
        replaced = dict(replace)
        headers = [(n, replaced.get(n, v)) for n, v in headers]
        r = http_get("/relay", headers)
        self.assertEqual(r.status, 400, r.body)
        return r

    def test_missing_upgrade(self):
        self.assertEqual(self.upgrade_error(drop=("Upgrade",)).body, b"missing header: upgrade")

    def test_wrong_upgrade(self):
        self.assertEqual(self.upgrade_error(replace=[("Upgrade", "h2c")]).body,
                         b"invalid header value for upgrade: value must be websocket")

    def test_missing_key(self):
        self.assertEqual(self.upgrade_error(drop=("Sec-WebSocket-Key",)).body,
                         b"missing header: sec-websocket-key")

    def test_missing_version(self):
        self.assertEqual(self.upgrade_error(drop=("Sec-WebSocket-Version",)).body,
                         b"missing header: sec-websocket-version")

    def test_wrong_version(self):
        r = self.upgrade_error(replace=[("Sec-WebSocket-Version", "8")])
        self.assertEqual(r.body, b"invalid header value for sec-websocket-version: unsupported "
                                 b"websocket version, only supporting 13")
        self.assertEqual(r.header_all("sec-websocket-version"), ["13"])

    def test_version_header_only_on_version_error(self):
        r = self.upgrade_error(drop=("Sec-WebSocket-Key",))
        self.assertIsNone(r.header("sec-websocket-version"))

    def test_missing_protocol(self):
        self.assertEqual(self.upgrade_error(drop=("Sec-WebSocket-Protocol",)).body,
                         b"missing header: sec-websocket-protocol")

    def test_non_ascii_protocol(self):
        r = self.upgrade_error(replace=[("Sec-WebSocket-Protocol", "iroh-relay-v2\xe9")])
        self.assertEqual(r.body, b"invalid header value for sec-websocket-protocol: header value is "
                                 b"not ascii")

    def test_unsupported_protocol(self):
        r = self.upgrade_error(replace=[("Sec-WebSocket-Protocol", "iroh-relay-v9")])
        self.assertEqual(r.body, b"invalid header value for sec-websocket-protocol: unsupported "
                                 b"relay version: we support iroh-relay-v2, iroh-relay-v1 but you "
                                 b"only provide iroh-relay-v9")

    def test_v2_preferred_regardless_of_order(self):
        for offer in (f"{V2}, {V1}", f"{V1}, {V2}", f"{V1},{V2}", f"foo, {V2}"):
            ws = ws_connect(self, offer, V2)
            ws.close()

    def test_v1_only(self):
        ws = ws_connect(self, f"{V1}", V1)
        ws.close()
        ws = ws_connect(self, f"bar, {V1}", V1)
        ws.close()

    def test_first_bytes_after_101_are_the_challenge_frame(self):
        ws = ws_connect(self)
        msg = ws.recv_message()
        self.assertEqual(ws.raw_frames[0][:2], b"\x82\x11")
        self.assertEqual(len(msg), 17)
        self.assertEqual(msg[0], 0)
        ws.close()


class TestHandshake(RelayTestCase):
    def test_challenges_are_random(self):
        a = Endpoint(self).read_challenge()
        b = Endpoint(self).read_challenge()
        self.assertNotEqual(a, b)

    def test_handshake_and_ping(self):
        endpoint = Endpoint(self).handshake()
        endpoint.ws.send(b"\x09" + bytes.fromhex("0001020304050607"))
        self.assertEqual(endpoint.ws.recv_message(), bytes.fromhex("0a0001020304050607"))
        self.assertEqual(endpoint.ws.raw_frames[-1], bytes.fromhex("82090a0001020304050607"))
        endpoint.ping(b"\x2a" * 8)
        self.assertEqual(endpoint.ws.raw_frames[-1], bytes.fromhex("82090a2a2a2a2a2a2a2a2a"))

    def test_v1_handshake(self):
        connected(self, protocols=V1, expect=V1)

    def test_bad_signature_denied(self):
        endpoint = Endpoint(self)
        auth = bytearray(endpoint.client_auth(endpoint.read_challenge()))
        auth[40] ^= 0x01  # inside the signature
        endpoint.ws.send(bytes(auth))
        self.assertEqual(endpoint.ws.recv_message().hex(),
                         "0311" + b"signature invalid".hex())
        endpoint.ws.expect_closed()

    def test_signature_over_other_challenge_denied(self):
        endpoint = Endpoint(self)
        endpoint.read_challenge()
        endpoint.ws.send(endpoint.client_auth(bytes(16)))
        self.assertEqual(endpoint.ws.recv_message(), bytes.fromhex("0311") + b"signature invalid")
        endpoint.ws.expect_closed()

    def test_wrong_handshake_frame_closes(self):
        endpoint = Endpoint(self)
        endpoint.read_challenge()
        endpoint.ws.send(b"\x09" + bytes(8))  # a Ping instead of ClientAuth
        endpoint.ws.expect_closed()

    def test_truncated_client_auth_closes(self):
        endpoint = Endpoint(self)
        auth = endpoint.client_auth(endpoint.read_challenge())
        endpoint.ws.send(auth[:50])
        endpoint.ws.expect_closed()


class TestRelaying(RelayTestCase):
    def test_forwarding_exact_bytes(self):
        a, b = connected(self), connected(self)
        a.send_datagram(b.id, b"hi")
        self.assertEqual(b.ws.recv_message(), b"\x06" + a.id + b"\x00" + b"hi")
        # ECN CE and a batch keep their fields (§5.3); upper ECN bits are not forwarded.
        a.send_datagram(b.id, b"Hello World!", ecn=3)
        self.assertEqual(b.ws.recv_message(), b"\x06" + a.id + b"\x03Hello World!")
        a.send_datagram(b.id, b"Hello World!", ecn=3, segment_size=6)
        self.assertEqual(b.ws.recv_message(), b"\x07" + a.id + b"\x03\x00\x06Hello World!")
        a.send_datagram(b.id, b"x", ecn=0xFD)
        self.assertEqual(b.ws.recv_message(), b"\x06" + a.id + b"\x01x")
        # Nothing came back to the sender: its next message is the Pong.
        a.ping()
        # And the other direction.
        b.send_datagram(a.id, bytes(range(256)) * 4)
        self.assertEqual(a.ws.recv_message(), b"\x06" + b.id + b"\x00" + bytes(range(256)) * 4)

    def test_large_datagram(self):
        a, b = connected(self), connected(self)
        contents = os.urandom(65502)
        a.send_datagram(b.id, contents)
        self.assertEqual(b.ws.recv_message(), b"\x06" + a.id + b"\x00" + contents)

    def test_fragmented_message_is_reassembled(self):
        a, b = connected(self), connected(self)
        frame = b"\x04" + b.id + b"\x00" + b"fragmented"
        a.ws.send_frame(0x2, frame[:10], fin=False)
        a.ws.send_frame(0x0, frame[10:20], fin=False)
        a.ws.send_frame(0x0, frame[20:], fin=True)
        self.assertEqual(b.ws.recv_message(), b"\x06" + a.id + b"\x00fragmented")

    def test_send_to_self(self):
        a = connected(self)
        a.send_datagram(a.id, b"me")
        self.assertEqual(a.ws.recv_message(), b"\x06" + a.id + b"\x00me")

    def test_unknown_destination_dropped_silently(self):
        a = connected(self)
        a.send_datagram(bytes(nacl.signing.SigningKey.generate().verify_key), b"lost")
        a.ping()

    def test_endpoint_gone_after_sender_disconnects(self):
        a, b = connected(self), connected(self)
        a.send_datagram(b.id, b"hello")
        self.assertEqual(b.ws.recv_message(), b"\x06" + a.id + b"\x00hello")
        a.ws.close()
        self.assertEqual(b.ws.recv_message(), b"\x08" + a.id)
        self.assertEqual(b.ws.raw_frames[-1], b"\x82\x21\x08" + a.id)

    def test_no_endpoint_gone_without_traffic(self):
        a, b = connected(self), connected(self)
        a.ws.close()
        # Nothing is owed to b: its next message is the Pong.
        b.ping()

    def test_duplicate_id_v2(self):
        key = nacl.signing.SigningKey.generate()
        first = connected(self, key)
        second = connected(self, key)
        self.assertEqual(first.ws.recv_message(), b"\x0d\x01")
        self.assertEqual(first.ws.raw_frames[-1], b"\x82\x02\x0d\x01")
        # Traffic goes to the newer connection; the older stays open and answers pings.
        other = connected(self)
        other.send_datagram(second.id, b"new")
        self.assertEqual(second.ws.recv_message(), b"\x06" + other.id + b"\x00new")
        first.ping()
        # When the active one leaves, the older becomes active again (LIFO) and hears Healthy.
        second.ws.close()
        self.assertEqual(first.ws.recv_message(), b"\x0d\x00")
        other.send_datagram(first.id, b"old")
        self.assertEqual(first.ws.recv_message(), b"\x06" + other.id + b"\x00old")

    def test_duplicate_id_v1_gets_health_text(self):
        key = nacl.signing.SigningKey.generate()
        first = connected(self, key, protocols=V1, expect=V1)
        connected(self, key, protocols=V1, expect=V1)
        message = first.ws.recv_message()
        self.assertEqual(message, b"\x0b" + SAME_ID_TEXT)
        self.assertEqual(len(message), 89)

    def test_malformed_frame_closes_only_that_client(self):
        a, b, c = connected(self), connected(self), connected(self)
        for bad in (b"\x3f" + bytes(8),       # unknown type
                    b"\x02",                  # handshake type after the handshake
                    b"\x06" + b.id + b"\x00x",  # a server-to-client type
                    b"\x09" + bytes(7),       # short Ping
                    b"\x04" + bytes(10)):     # datagram shorter than the key
            victim = connected(self)
            victim.ws.send(bad)
            victim.ws.expect_closed()
        a.ws.send(b"\x3f" + bytes(8))
        a.ws.expect_closed()
        # Everyone else keeps working.
        b.ping()
        c.send_datagram(b.id, b"still here")
        self.assertEqual(b.ws.recv_message(), b"\x06" + c.id + b"\x00still here")
        b.send_datagram(c.id, b"yes")
        self.assertEqual(c.ws.recv_message(), b"\x06" + b.id + b"\x00yes")

    def test_text_messages_are_ignored(self):
        a = connected(self)
        a.ws.send_frame(0x1, b"hello text")
        a.ping()

    def test_ws_ping_answered(self):
        a = connected(self)
        a.ws.send_frame(0x9, b"wsping")
        a.ws.sock.settimeout(IO_TIMEOUT)
        fin, opcode, payload = a.ws.recv_frame()
        self.assertEqual((fin, opcode, payload), (True, 0xA, b"wsping"))
        a.ping()


class TestAccess(RelayTestCase):
    """access.shared_token, with IROH_RELAY_ACCESS_TOKEN replacing the file's list (§6.9)."""

    process = None

    @classmethod
    def setUpClass(cls):
        cls.process = RelayProcess(RELAY_BINARY, tempfile.mkdtemp(dir=WORKDIR),
                                   extra_yaml="access:\n  shared_token: [file-token]\n",
                                   env={"IROH_RELAY_ACCESS_TOKEN": "env-token"})
        cls.process.start()

    @classmethod
    def tearDownClass(cls):
        cls.process.stop()

    @classmethod
    def relay(cls):
        return cls.process

    def authenticate(self, headers=(), path="/relay"):
        endpoint = Endpoint(self, headers=headers, path=path)
        endpoint.ws.send(endpoint.client_auth(endpoint.read_challenge()))
        return endpoint, endpoint.ws.recv_message()

    def assert_denied(self, headers=(), path="/relay"):
        endpoint, reply = self.authenticate(headers, path)
        self.assertEqual(reply.hex(), "030e" + b"not authorized".hex(), f"{headers} {path}")
        endpoint.ws.expect_closed()

    def assert_allowed(self, headers=(), path="/relay"):
        endpoint, reply = self.authenticate(headers, path)
        self.assertEqual(reply, b"\x02", f"{headers} {path}")
        endpoint.ping()

    def test_no_token_denied(self):
        self.assert_denied()

    def test_bearer_token(self):
        self.assert_allowed([("Authorization", "Bearer env-token")])
        self.assert_allowed([("Authorization", "bearer env-token")])

    def test_query_token(self):
        self.assert_allowed(path="/relay?token=env-token")
        self.assert_allowed(path="/relay?x=1&token=env%2Dtoken")

    def test_environment_replaces_file_tokens(self):
        self.assert_denied([("Authorization", "Bearer file-token")])

    def test_wrong_tokens_denied(self):
        self.assert_denied([("Authorization", "Bearer nope")])
        self.assert_denied([("Authorization", "Basic env-token")])
        self.assert_denied([("Authorization", "Bearer env-token-and-more")])
        self.assert_denied(path="/relay?token=env")


def main():
    global RELAY_BINARY, SERVER, BLAKE3, WORKDIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relay", required=True, help="path of the iroh-relay binary")
    args, rest = parser.parse_known_args()
    RELAY_BINARY = os.path.abspath(args.relay)
    WORKDIR = workdir = tempfile.mkdtemp(prefix="relay-wire-")
    try:
        BLAKE3 = build_blake3(workdir)
        SERVER = RelayProcess(RELAY_BINARY, workdir)
        SERVER.start()
        program = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
        ok = program.result.wasSuccessful()
        if not ok:
            print(f"--- relay log tail ---\n{SERVER.log_tail()}", file=sys.stderr)
    finally:
        if SERVER:
            SERVER.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
