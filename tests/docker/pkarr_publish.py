#!/usr/bin/python3
"""Publishes a freshly signed pkarr packet with PUT /pkarr/<z32> (address-lookup.md §2, §4.2)
using PyNaCl and dnspython, independently of our C++ codec. Prints the z-base-32 key.

Usage: pkarr_publish.py [--key FILE] [--out FILE] BASE_URL CA_FILE TXT [TXT...]
  BASE_URL e.g. https://localhost:443 or http://127.0.0.1:8001; CA_FILE "-" for plain http.
  --key FILE: the signing key's 32-byte seed; read if FILE exists, else generated and written
    there (publishing again with the same FILE updates the same name).
  --out FILE: write the request body (signature, timestamp, DNS message: what GET /pkarr
    answers for this packet) there.
The packet holds one TXT record per argument at _iroh.<z32>, TTL 30.
"""
import base64
import ssl
import sys
import time
import urllib.request

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import nacl.signing

def z32(data: bytes) -> str:
    """z-base-32: RFC 4648 base32 bit order with another alphabet, no padding."""
    b32 = base64.b32encode(data).decode().rstrip("=")
    return b32.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                       "ybndrfg8ejkmcpqxot1uwisza345h769"))


def main() -> int:
    args = sys.argv[1:]
    opts = {}
    while args and args[0] in ("--key", "--out"):
        opts[args[0]] = args[1]
        args = args[2:]
    base, ca_file, *texts = args
    key = None
    if "--key" in opts:
        try:
            with open(opts["--key"], "rb") as f:
                key = nacl.signing.SigningKey(f.read())
        except FileNotFoundError:
            pass
    if key is None:
        key = nacl.signing.SigningKey.generate()
        if "--key" in opts:
            with open(opts["--key"], "wb") as f:
                f.write(bytes(key))
    name = z32(bytes(key.verify_key))
    msg = dns.message.Message(id=0)
    msg.flags = 0x8000  # QR, as iroh encodes it
    msg.answer.append(dns.rrset.from_text_list(
        f"_iroh.{name}.", 30, dns.rdataclass.IN, dns.rdatatype.TXT, [f'"{t}"' for t in texts]))
    wire = msg.to_wire()
    ts = time.time_ns() // 1000
    signed = f"3:seqi{ts}e1:v{len(wire)}:".encode() + wire
    payload = key.sign(signed).signature + ts.to_bytes(8, "big") + wire
    if "--out" in opts:
        with open(opts["--out"], "wb") as f:
            f.write(payload)
    req = urllib.request.Request(f"{base}/pkarr/{name}", data=payload, method="PUT")
    ctx = None if ca_file == "-" else ssl.create_default_context(cafile=ca_file)
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        if resp.status // 100 != 2:
            print(f"PUT /pkarr/{name}: HTTP {resp.status}", file=sys.stderr)
            return 1
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
