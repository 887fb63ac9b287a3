#!/usr/bin/env python3
"""Decode a capture of the relay's TCP port (run.sh with IROH_INTEROP_PCAP=1) into a readable
per-connection timeline: HTTP requests/responses with headers, then relay frames (handshake,
datagrams, Ping/Pong with round-trip times, anything else verbatim). Diagnostic only; needs tshark.

  pcap_summary.py relay.pcap [--port 3340] [--frames 12]
"""
import argparse
import collections
import subprocess
import sys

FRAME_TYPES = {
    0: "ServerChallenge", 1: "ClientAuth", 2: "ServerConfirmsAuth", 3: "ServerDeniesAuth",
    4: "ClientToRelayDatagram", 5: "ClientToRelayDatagramBatch", 6: "RelayToClientDatagram",
    7: "RelayToClientDatagramBatch", 8: "EndpointGone", 9: "Ping", 10: "Pong", 11: "Health",
    12: "Restarting", 13: "Status",
}
WS_OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ws-ping", 10: "ws-pong"}


def tshark(pcap, port, display_filter, fields):
    cmd = ["tshark", "-r", pcap, "-d", f"tcp.port=={port},http", "-Y", display_filter, "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    return [line.split("\t") for line in out.splitlines()]


def describe(payload_hex, relay_side):
    data = bytes.fromhex(payload_hex) if payload_hex else b""
    if not data:
        return "(empty message)", None
    kind = data[0]
    name = FRAME_TYPES.get(kind, f"unknown type {kind}")
    body = data[1:]
    if kind in (9, 10):
        return f"{name} {body.hex()}", (kind, body.hex())
    if kind in (4, 5, 6, 7):
        seg = f" segment_size={int.from_bytes(body[33:35], 'big')}" if kind in (5, 7) and len(body) >= 35 else ""
        return f"{name} key={body[:4].hex()}.. ecn={body[32] & 3 if len(body) > 32 else '?'}{seg} len={len(data)}", None
    if kind == 13:
        return f"{name} code={body[0] if body else '?'} ({data.hex()})", None
    return f"{name} ({len(data)} bytes: {data[:48].hex()}{'..' if len(data) > 48 else ''})", None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("--port", type=int, default=3340)
    ap.add_argument("--frames", type=int, default=12, help="frames listed verbatim per connection and direction")
    args = ap.parse_args()

    streams = collections.defaultdict(list)
    for row in tshark(args.pcap, args.port, "tcp.flags.syn==1 && tcp.flags.ack==0 || tcp.flags.fin==1 || tcp.flags.reset==1",
                      ["frame.time_relative", "tcp.stream", "ip.src", "tcp.srcport", "tcp.flags.str"]):
        t, s, src, sport, flags = (row + [""] * 5)[:5]
        streams[s].append((float(t), f"{src}:{sport} TCP {flags.strip()}"))
    for row in tshark(args.pcap, args.port, "http", ["frame.time_relative", "tcp.stream", "ip.src",
                                                       "http.request.line", "http.response.line",
                                                       "http.request.method", "http.request.uri",
                                                       "http.response.code", "http.response.phrase"]):
        t, s, src, req_lines, resp_lines, method, uri, code, phrase = (row + [""] * 9)[:9]
        first = f"{method} {uri}" if method else f"HTTP {code} {phrase}"
        headers = (req_lines or resp_lines).replace("\\r\\n", "").split("|")
        streams[s].append((float(t), f"{src} {first}  [" + "; ".join(h.strip() for h in headers if h) + "]"))

    counts = collections.defaultdict(collections.Counter)
    listed = collections.Counter()
    pings = {}
    for row in tshark(args.pcap, args.port, "websocket", ["frame.time_relative", "tcp.stream", "ip.src", "tcp.srcport",
                                                            "websocket.opcode", "data.data"]):
        t, s, src, sport, opcodes, payloads = (row + [""] * 6)[:6]
        ops = [int(o) for o in opcodes.split("|") if o]
        datas = payloads.split("|") if payloads else []
        relay_side = sport == str(args.port)
        direction = "relay->client" if relay_side else "client->relay"
        di = 0
        for op in ops:
            if op == 2:
                hexdata = datas[di] if di < len(datas) else ""
                di += 1
                text, ping = describe(hexdata, relay_side)
                name = text.split(" ")[0]
                counts[(s, direction)][name] += 1
                if ping:
                    kind, token = ping
                    if kind == 9:
                        pings[(s, token)] = (float(t), direction)
                    elif (s, token) in pings:
                        t0, d0 = pings.pop((s, token))
                        text += f"  (answers {d0} Ping after {1000 * (float(t) - t0):.1f} ms)"
                if listed[(s, direction)] < args.frames or name in ("Pong", "Ping", "Status", "EndpointGone",
                                                                     "Restarting", "ServerDeniesAuth") or name.startswith("unknown"):
                    listed[(s, direction)] += 1
                    streams[s].append((float(t), f"{direction} {text}"))
            else:
                counts[(s, direction)][f"ws-{WS_OPCODES.get(op, op)}"] += 1
                streams[s].append((float(t), f"{direction} WebSocket {WS_OPCODES.get(op, op)} message"))

    for s in sorted(streams, key=lambda k: min(t for t, _ in streams[k])):
        print(f"=== TCP stream {s}")
        for t, line in sorted(streams[s], key=lambda x: x[0]):
            print(f"  {t:9.4f}s  {line}")
        for direction in ("client->relay", "relay->client"):
            if counts[(s, direction)]:
                print(f"  totals {direction}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts[(s, direction)].items())))
    for (s, token), (t, d) in sorted(pings.items(), key=lambda x: x[1][0]):
        print(f"UNANSWERED Ping {token} sent {d} at {t:.4f}s on TCP stream {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
