#!/usr/bin/env python3
"""A TCP proxy that adds a one-way delay in each direction, to run the benchmarks at a WAN's RTT.

    python3 bench/latency_proxy.py --delay-ms 12.5 2201 2202 ...   # RTT 25 ms

For every target port given it listens on a free port of 127.0.0.1 and prints one line
`TARGET LISTEN` per port, then `ready`, on stdout. Each connection to LISTEN is forwarded to
127.0.0.1:TARGET; every chunk read in either direction is written on the other side DELAY after
it was read, in order, so the delay is added once per direction without limiting throughput
(no window, no bandwidth cap: latency only). Stops when stdin closes. Python 3 standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copies reader to writer, each chunk `delay` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read_side() -> None:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def write_side() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read_side(), write_side())
    except (ConnectionError, OSError):
        pass


async def handle(target: int, delay: float, client_r, client_w) -> None:
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))
    for w in (client_w, server_w):
        w.close()


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay per direction")
    ap.add_argument("targets", nargs="+", type=int, help="ports on 127.0.0.1 to put the proxy in front of")
    args = ap.parse_args()
    delay = args.delay_ms / 1000
    servers = []
    for target in args.targets:
        server = await asyncio.start_server(
            lambda r, w, t=target: handle(t, delay, r, w), "127.0.0.1", 0, backlog=512
        )
        servers.append(server)
        print(target, server.sockets[0].getsockname()[1], flush=True)
    print("ready", flush=True)
    # Until stdin closes: the driver stops the proxy by closing it (or by a signal).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
