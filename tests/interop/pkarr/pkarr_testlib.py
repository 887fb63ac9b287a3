"""Shared helpers of the pkarr script tests: run iroh-relay on loopback, sign packets (PyNaCl).

Runs with Debian's /usr/bin/python3 (python3-nacl). Every wait is bounded.
"""
import http.client
import os
import re
import signal
import struct
import subprocess
import tempfile
import time

import nacl.signing

Z32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"


def z32_encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big")
    nbits = len(data) * 8
    pad = (5 - nbits % 5) % 5
    bits <<= pad
    n = (nbits + pad) // 5
    return "".join(Z32_ALPHABET[(bits >> (5 * (n - 1 - i))) & 31] for i in range(n))


def dns_txt_message(z32: str, strings, ttl=30) -> bytes:
    """Answer-only DNS message (id 0, flags 0x8000), one TXT RR per string at _iroh.<z32>,
    names compressed like iroh does."""
    out = bytearray(struct.pack(">HHHHHH", 0, 0x8000, 0, len(strings), 0, 0))
    name_offset = None
    for s in strings:
        if name_offset is None:
            name_offset = len(out)
            out += b"\x05_iroh" + bytes([len(z32)]) + z32.encode() + b"\x00"
        else:
            out += struct.pack(">H", 0xC000 | name_offset)
        data = s.encode()
        out += struct.pack(">HHIH", 16, 1, ttl, len(data) + 1) + bytes([len(data)]) + data
    return bytes(out)


class Signer:
    def __init__(self, seed: bytes = None):
        self.key = nacl.signing.SigningKey(seed) if seed else nacl.signing.SigningKey.generate()
        self.public = bytes(self.key.verify_key)
        self.z32 = z32_encode(self.public)

    def payload(self, timestamp_us: int, dns: bytes) -> bytes:
        """Relay payload: signature || timestamp (BE) || dns."""
        message = b"3:seqi%de1:v%d:" % (timestamp_us, len(dns)) + dns
        signature = self.key.sign(message).signature
        return signature + struct.pack(">Q", timestamp_us) + dns

    def record_payload(self, timestamp_us: int, strings) -> bytes:
        return self.payload(timestamp_us, dns_txt_message(self.z32, strings))


def verify_payload(public: bytes, payload: bytes) -> bool:
    if not 72 <= len(payload) <= 1072:
        return False
    signature, ts, dns = payload[:64], struct.unpack(">Q", payload[64:72])[0], payload[72:]
    message = b"3:seqi%de1:v%d:" % (ts, len(dns)) + dns
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
        return True
    except Exception:
        return False


class Daemon:
    """iroh-relay on 127.0.0.1:<ephemeral> with the given extra YAML, state in `data_dir`."""

    def __init__(self, binary, data_dir, extra_yaml="", log_name="relay.log"):
        self.binary = binary
        self.data_dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        self.config = os.path.join(data_dir, "relay.yaml")
        self.log_path = os.path.join(data_dir, log_name)
        with open(self.config, "w") as f:
            f.write(
                "http_bind_addr: 127.0.0.1:0\nenable_metrics: false\nenable_relay: true\n"
                "enable_pkarr: true\ndata_dir: %s\nlog_level: info\n%s" % (data_dir, extra_yaml)
            )
        self.proc = None
        self.port = None

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        start_offset = self.log.tell()
        self.proc = subprocess.Popen([self.binary, "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("iroh-relay exited with %d:\n%s" % (self.proc.returncode,
                                                                       self.log_text()))
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                m = re.search(rb"listening http on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            time.sleep(0.05)
        raise RuntimeError("iroh-relay did not start:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            conn.close()


def scratch_dir(name):
    return tempfile.mkdtemp(prefix="iroh-%s-" % name)
