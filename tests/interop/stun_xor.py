#!/usr/bin/env python3
"""Raw RFC 8489 STUN over UDP, standard library only.

  stun_xor.py check HOST PORT
      Sends a Binding request from a connected socket, decodes XOR-MAPPED-ADDRESS (address AND
      port) and exits 0 only if it equals the socket's own local address (true on loopback, where
      nothing translates). Prints "xor-mapped A:P local A:P".
  stun_xor.py wrong-port-server HOST SECONDS
      A deliberately broken STUN server for negative tests: answers every Binding request with
      the sender's address but port + 1. Prints "listening <port>", serves for SECONDS.
"""
import ipaddress
import os
import socket
import struct
import sys
import time

MAGIC = 0x2112A442
XOR_MAPPED = 0x0020


def xor_address(family, port, addr_bytes, txid):
    """Encodes/decodes (the operation is its own inverse) the XOR-MAPPED-ADDRESS value."""
    xport = port ^ (MAGIC >> 16)
    key = struct.pack("!I", MAGIC) + txid
    xaddr = bytes(a ^ k for a, k in zip(addr_bytes, key))
    return struct.pack("!BBH", 0, family, xport) + xaddr


def parse_xor_mapped(msg, txid):
    if len(msg) < 20:
        raise ValueError("short message")
    mtype, mlen, cookie = struct.unpack("!HHI", msg[:8])
    if mtype != 0x0101 or cookie != MAGIC or msg[8:20] != txid:
        raise ValueError(f"not our success response (type {mtype:#06x})")
    pos = 20
    while pos + 4 <= 20 + mlen:
        atype, alen = struct.unpack("!HH", msg[pos:pos + 4])
        value = msg[pos + 4:pos + 4 + alen]
        if atype == XOR_MAPPED:
            family = value[1]
            port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
            n = 4 if family == 1 else 16
            key = struct.pack("!I", MAGIC) + txid
            addr = bytes(a ^ k for a, k in zip(value[4:4 + n], key))
            return str(ipaddress.ip_address(addr)), port
        pos += 4 + ((alen + 3) & ~3)
    raise ValueError("no XOR-MAPPED-ADDRESS")


def check(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.connect((host, port))
        local = s.getsockname()[:2]
        for _ in range(3):
            txid = os.urandom(12)
            s.send(struct.pack("!HHI", 0x0001, 0, MAGIC) + txid)
            try:
                msg = s.recv(2048)
            except socket.timeout:
                continue
            addr, mport = parse_xor_mapped(msg, txid)
            print(f"xor-mapped {addr}:{mport} local {local[0]}:{local[1]}")
            return 0 if (ipaddress.ip_address(addr), mport) == (ipaddress.ip_address(local[0]),
                                                                local[1]) else 1
    print("no answer (3 tries)")
    return 1


def wrong_port_server(host, seconds):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        print(f"listening {s.getsockname()[1]}", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg, peer = s.recvfrom(2048)
            except socket.timeout:
                break
            if len(msg) < 20 or struct.unpack("!H", msg[:2])[0] != 0x0001:
                continue
            txid = msg[8:20]
            ip = ipaddress.ip_address(peer[0])
            value = xor_address(1 if ip.version == 4 else 2, (peer[1] + 1) & 0xFFFF, ip.packed,
                                txid)
            attr = struct.pack("!HH", XOR_MAPPED, len(value)) + value
            s.sendto(struct.pack("!HHI", 0x0101, len(attr), MAGIC) + txid + attr, peer)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], int(sys.argv[3])))
    if len(sys.argv) == 4 and sys.argv[1] == "wrong-port-server":
        sys.exit(wrong_port_server(sys.argv[2], float(sys.argv[3])))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
