"""TCP echo on asyncio streams: one server, C client tasks, R round trips of S bytes each.

The asyncio counterpart of ``pycos_echo.py``, same arrangement (one event loop, one process,
127.0.0.1): ``asyncio.start_server`` runs an echo coroutine per connection (``read`` up to
1 KiB, ``write`` + ``drain`` it back, until end of stream); each client coroutine opens a
connection, then does R round trips (``write`` + ``drain`` S bytes, ``readexactly(S)``),
timing each one. Reports round trips per second over the span from the first client's first
send to the last client's last reply, and the 50th / 99th percentile latency. A smaller session
runs first as a warm-up. asyncio sets TCP_NODELAY on its TCP connections itself.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _benchlib import LOOPBACK, emit, parse_args, percentile


async def echo(reader, writer):
    while True:
        data = await reader.read(1024)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def client(port, rounds, size, stats):
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    msg = bytes(i % 251 for i in range(size))
    lat = []
    clock = time.perf_counter
    reply = b""
    start = clock()
    for _ in range(rounds):
        t0 = clock()
        writer.write(msg)
        await writer.drain()
        reply = await reader.readexactly(size)
        lat.append(clock() - t0)
    end = clock()
    if reply != msg:
        raise AssertionError("echo differs from what was sent")
    writer.close()
    await writer.wait_closed()
    stats.append((start, end, lat))


async def session(clients, rounds, size):
    server = await asyncio.start_server(echo, LOOPBACK, 0, backlog=clients)
    port = server.sockets[0].getsockname()[1]
    stats = []
    async with server:
        await asyncio.gather(*(client(port, rounds, size, stats) for _ in range(clients)))
    span = max(s[1] for s in stats) - min(s[0] for s in stats)
    lat = sorted(x for s in stats for x in s[2])
    return {"seconds": span, "round_trips_per_s": clients * rounds / span,
            "p50_us": percentile(lat, 50) * 1e6, "p99_us": percentile(lat, 99) * 1e6}


async def driver(clients, rounds, size, warmup, limit):
    async with asyncio.timeout(limit):
        await session(min(clients, 10), warmup, size)
        return await session(clients, rounds, size)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], clients=50, rounds=1_000, size=64, warmup=200,
                      limit=120)
    result = asyncio.run(driver(args.clients, args.rounds, args.size, args.warmup, args.limit))
    emit("echo", asyncio, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
