"""Spawning on asyncio: ``create_task`` N coroutines that each yield once and end; tasks/s.

The asyncio counterpart of ``pycos_spawn.py``: each task does ``await asyncio.sleep(0)`` once,
and the last one to end resolves a future the driver awaits.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _benchlib import emit, parse_args


async def one(state):
    await asyncio.sleep(0)
    state[0] -= 1
    if state[0] == 0:
        state[1].set_result(None)


async def spawn(n):
    state = [n, asyncio.get_running_loop().create_future()]
    start = time.perf_counter()
    for _ in range(n):
        asyncio.create_task(one(state))
    created = time.perf_counter()
    await state[1]
    end = time.perf_counter()
    return created - start, end - start


async def driver(n, warmup):
    await spawn(warmup)
    create, total = await spawn(n)
    return {"seconds": total, "tasks_per_s": n / total, "create_only_per_s": n / create}


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], n=100_000, warmup=2_000)
    result = asyncio.run(driver(args.n, args.warmup))
    emit("spawn", asyncio, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
