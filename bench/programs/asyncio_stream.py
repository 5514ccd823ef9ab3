"""One-way stream on asyncio: a sender process pushes N bytes to a coroutine; reports MB/s.

The asyncio counterpart of ``pycos_stream.py``, with the event loop's socket calls (the closest
match of ``AsyncSocket``): the coroutine accepts the connections of ``_stream_sender.py`` (a
separate process, 127.0.0.1) with ``loop.sock_accept`` and reads each stream to its end, one
method per connection: ``loop.sock_recv_into`` a reused B-byte buffer, and
``loop.sock_recv(B)``. ``mb_per_s`` is the ``recv_into`` figure. MB is 10**6 bytes; the time
runs from the accept to the end of the stream; a smaller stream is read first and not counted.
Each timed method runs ``--rounds`` times (rounds interleaved) and its median time is reported.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

from _benchlib import LOOPBACK, emit, parse_args, reap, spawn_helper, stream_plan, stream_rates

METHODS = ("recv_into", "recv")


async def read_stream(loop, conn, method, bufsize):
    total = 0
    if method == "recv_into":
        view = memoryview(bytearray(bufsize))
        while True:
            n = await loop.sock_recv_into(conn, view)
            if not n:
                break
            total += n
    else:
        while True:
            data = await loop.sock_recv(conn, bufsize)
            if not data:
                break
            total += len(data)
    return total


async def receive(listener, method, bufsize, expected):
    loop = asyncio.get_running_loop()
    conn, _addr = await loop.sock_accept(listener)
    with conn:
        start = time.perf_counter()
        total = await read_stream(loop, conn, method, bufsize)
        elapsed = time.perf_counter() - start
    if total != expected:
        raise AssertionError(f"{method}: received {total} bytes, expected {expected}")
    return elapsed


async def driver(size, bufsize, warmup, chunk, rounds, limit):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setblocking(False)
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    plan = stream_plan(METHODS, rounds)
    sender = spawn_helper("_stream_sender.py", port, chunk, warmup, *([size] * len(plan)))
    timings = []
    try:
        async with asyncio.timeout(limit):
            await receive(listener, METHODS[0], bufsize, warmup)
            for method in plan:
                timings.append((method, await receive(listener, method, bufsize, size)))
    finally:
        listener.close()
        status = reap(sender)
    if status != 0:
        raise AssertionError(f"the sender process exited with status {status}")
    metrics = stream_rates(size, timings)
    metrics["mb_per_s"] = metrics["mb_per_s_recv_into"]
    return metrics


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], size=1 << 30, bufsize=1 << 20, warmup=64 << 20,
                      chunk=1 << 20, rounds=5, limit=120)
    result = asyncio.run(driver(args.size, args.bufsize, args.warmup, args.chunk, args.rounds,
                                args.limit))
    emit("stream", asyncio, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
