#!/usr/bin/env python3
"""TCP proxy between iroh endpoints and the relay that watches relay Pongs (spec relay.md §6.5).

  pong_proxy.py --listen HOST:PORT --to HOST:PORT --stats FILE [--drop-pong]

Passes bytes both ways unchanged, except that with --drop-pong it removes every server->client
WebSocket message whose relay frame type is Pong (10). Server frames are unmasked (RFC 6455 §5.1),
so they can be parsed and cut without touching the rest of the stream. FILE gets, after every
event, {"upgrades": {client_ip: n}, "pongs_forwarded": n, "pongs_dropped": n}: iroh redials the
relay when its Ping gets no Pong within 5 s, so more than one upgrade per endpoint during a run
means the relay's Pongs did not arrive.
"""
import argparse
import asyncio
import json
import os

PONG = 10
stats = {"upgrades": {}, "pongs_forwarded": 0, "pongs_dropped": 0}


def save(path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, path)


async def client_to_server(reader, writer, peer_ip, stats_file):
    head = b""
    counted = False
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if not counted:
            head += data
            if b"\r\n\r\n" in head:
                counted = True
                lower = head.lower()
                if lower.startswith(b"get /relay") and b"upgrade: websocket" in lower:
                    stats["upgrades"][peer_ip] = stats["upgrades"].get(peer_ip, 0) + 1
                    save(stats_file)
                head = b""
        writer.write(data)
        await writer.drain()


async def server_to_client(reader, writer, drop_pong, stats_file):
    buf = b""
    in_ws = False
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if not in_ws:
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                continue
            if not buf.startswith(b"HTTP/1.1 101"):
                writer.write(buf)  # not an upgrade: pass everything from now on
                await writer.drain()
                buf = b""
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    writer.write(data)
                    await writer.drain()
            writer.write(buf[:end + 4])
            buf = buf[end + 4:]
            in_ws = True
        else:
            buf += data
        out = bytearray()
        while len(buf) >= 2:
            length = buf[1] & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    break
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            if len(buf) < pos + length:
                break
            frame, buf = buf[:pos + length], buf[pos + length:]
            opcode = frame[0] & 0x0F
            is_pong = opcode == 2 and length >= 1 and frame[pos] == PONG
            if is_pong:
                stats["pongs_dropped" if drop_pong else "pongs_forwarded"] += 1
                save(stats_file)
                if drop_pong:
                    continue
            out += frame
        if out:
            writer.write(bytes(out))
            await writer.drain()


async def handle(client_reader, client_writer, target, drop_pong, stats_file):
    peer_ip = client_writer.get_extra_info("peername")[0]
    # The relay may still be starting (it is launched next to the proxy): retry for up to 10 s.
    for _ in range(100):
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
            break
        except OSError:
            await asyncio.sleep(0.1)
    else:
        client_writer.close()
        return
    tasks = [
        asyncio.create_task(client_to_server(client_reader, server_writer, peer_ip, stats_file)),
        asyncio.create_task(server_to_client(server_reader, client_writer, drop_pong, stats_file)),
    ]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
    for w in (client_writer, server_writer):
        w.close()


def host_port(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, type=host_port)
    ap.add_argument("--to", required=True, type=host_port)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--drop-pong", action="store_true")
    args = ap.parse_args()
    save(args.stats)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args.to, args.drop_pong, args.stats), *args.listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
