"""Scale on asyncio: N concurrent connections held on one event loop; time and RSS/conn.

The asyncio counterpart of ``pycos_scale.py``: ``asyncio.start_server`` runs a coroutine per
connection made by ``_scale_clients.py`` (a separate process, 127.0.0.1) that sends a one-byte
greeting, echoes one S-byte message (``readexactly`` + ``write``/``drain``) and then waits in
``read`` until the client closes. Reports the same figures: ``seconds`` from starting the
client process until the N-th exchange is done, ``conns_per_s``, ``accept_seconds`` (until the
N-th connection's coroutine started), and RSS (after a full garbage collection) before the clients
start and while all N connections are open, over N as ``rss_bytes_per_conn`` (socket,
transport, protocol, stream reader and writer, task). A cycle with ``--warmup`` connections
runs first and is not counted.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _benchlib import LOOPBACK, emit, parse_args, raise_nofile, reap, settled_rss, spawn_helper


class Cycle:
    """Counters of one cycle and the events the driver waits for."""

    def __init__(self, count, size):
        self.count = count
        self.size = size
        self.exchanged = 0
        self.open = 0
        self.accepted = 0
        self.accepted_at = 0.0
        self.all_exchanged = asyncio.Event()
        self.all_closed = asyncio.Event()

    async def handle(self, reader, writer):
        self.open += 1
        self.accepted += 1
        if self.accepted == self.count:
            self.accepted_at = time.perf_counter()
        writer.write(b"+")  # the greeting that paces the client's connecting
        await writer.drain()
        data = await reader.readexactly(self.size)
        writer.write(data)
        await writer.drain()
        self.exchanged += 1
        if self.exchanged == self.count:
            self.all_exchanged.set()
        await reader.read(64)  # end of stream once the client lets go
        writer.close()
        self.open -= 1
        if not self.open:
            self.all_closed.set()


async def wait_for(event, proc, deadline):
    """Wait (bounded) for ``event``; fail early if the client process fails."""
    while not event.is_set():
        try:
            await asyncio.wait_for(event.wait(), 0.2)
        except TimeoutError:
            if proc.poll() not in (None, 0) or time.perf_counter() > deadline:
                raise AssertionError(f"gave up; client process status {proc.poll()}") from None


async def cycle(count, size, limit):
    state = Cycle(count, size)
    deadline = time.perf_counter() + limit
    server = await asyncio.start_server(state.handle, LOOPBACK, 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    start = time.perf_counter()
    proc = spawn_helper("_scale_clients.py", port, count, size)
    try:
        await wait_for(state.all_exchanged, proc, deadline)
        elapsed = time.perf_counter() - start
        held = settled_rss()
    except BaseException:
        proc.kill()
        raise
    finally:
        status = reap(proc)  # the clients close every connection
    if status != 0:
        raise AssertionError(f"the client process exited with status {status}")
    await wait_for(state.all_closed, proc, deadline)
    server.close()
    await server.wait_closed()
    return elapsed, state.accepted_at - start, held


async def driver(count, size, warmup, limit):
    await cycle(warmup, size, limit)
    before = settled_rss()
    elapsed, accepting, held = await cycle(count, size, limit)
    return {"seconds": elapsed, "conns_per_s": count / elapsed, "accept_seconds": accepting,
            "rss_before": before,
            "rss_held": held, "rss_bytes_per_conn": (held - before) / count}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], conns=10_000, size=32, warmup=200, limit=120)
    nofile = raise_nofile(args.conns + 64)
    result = asyncio.run(driver(args.conns, args.size, args.warmup, args.limit))
    emit("scale", asyncio, args, nofile_limit=nofile, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
