"""Ping-pong on asyncio: two tasks bounce one message through two ``asyncio.Queue``s.

The asyncio counterpart of ``pycos_pingpong.py``: one round trip is two ``put_nowait`` and two
``await get()``, each ``get`` blocking. Reports round trips/s.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _benchlib import emit, parse_args


async def ponger(inbox, outbox):
    while True:
        msg = await inbox.get()
        if msg is None:
            return
        outbox.put_nowait(msg)


async def driver(n, warmup):
    to_pong, to_driver = asyncio.Queue(), asyncio.Queue()
    pong = asyncio.create_task(ponger(to_pong, to_driver))
    for i in range(warmup):
        to_pong.put_nowait(i)
        await to_driver.get()
    reply = None
    start = time.perf_counter()
    for i in range(n):
        to_pong.put_nowait(i)
        reply = await to_driver.get()
    elapsed = time.perf_counter() - start
    to_pong.put_nowait(None)
    await pong
    if reply != n - 1:
        raise AssertionError(f"last reply {reply!r}, expected {n - 1}")
    return {"seconds": elapsed, "round_trips_per_s": n / elapsed}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=200_000, warmup=2_000)
    result = asyncio.run(driver(args.n, args.warmup))
    emit("pingpong", asyncio, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
