"""Memory of live asyncio tasks: N tasks each blocked on its own Future; reports RSS bytes/task.

The asyncio counterpart of ``pycos_live.py``. Waiting for a message in asyncio needs an awaitable
per waiter, so each task awaits a Future of its own (the cheapest such object; a Queue per task
costs more). RSS is read after a full garbage collection before the tasks exist (the list that
holds their futures is allocated beforehand) and once all are parked.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _benchlib import emit, parse_args, settled_rss


async def live(state, fut):
    state[0] += 1
    await fut
    state[0] -= 1
    if state[0] == 0:
        state[1].set_result(None)


async def populate(n, slots):
    loop = asyncio.get_running_loop()
    state = [0, loop.create_future()]
    for i in range(n):
        fut = slots[i] = loop.create_future()
        asyncio.create_task(live(state, fut))
    while state[0] < n:  # each task counts itself just before it parks
        await asyncio.sleep(0.01)
    return state


async def release(n, slots, state):
    for i in range(n):
        slots[i].set_result(None)
        slots[i] = None
    await state[1]


async def driver(n, warmup):
    small = [None] * warmup
    await release(warmup, small, await populate(warmup, small))
    slots = [None] * n
    before = settled_rss()
    start = time.perf_counter()
    state = await populate(n, slots)
    elapsed = time.perf_counter() - start
    after = settled_rss()
    await release(n, slots, state)
    return {"rss_before": before, "rss_after": after, "seconds_to_park": elapsed,
            "rss_bytes_per_task": (after - before) / n}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=100_000, warmup=1_000)
    result = asyncio.run(driver(args.n, args.warmup))
    emit("live", asyncio, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
