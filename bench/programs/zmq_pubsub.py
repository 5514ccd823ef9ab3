"""pyzmq PUB/SUB beside topic nodes (a peer system of ``bench_topics.py``; 127.0.0.1 only).

``python zmq_pubsub.py fanout --subs K --n N``: K subscriber processes (this file with
``--role sub``) each SUB-connect to the publisher's PUB socket and subscribe to ``T``; once all
of them have received a warm-up message the publisher sends N ``send_pyobj`` messages of 100
bytes (default high-water marks: PUB drops when a subscriber falls behind, which is counted);
each subscriber times its first to last message. ``late --n N``: N late joiners, each a new SUB
socket that connects and subscribes, says so to the publisher at once, which then publishes one
message: ``losses`` counts those that never arrive (the "slow joiner"). Every receive has a
timeout; children are always killed. Imports the standard library, ``zmq`` and ``_benchlib``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import zmq
from _benchlib import fanout_record, kill_all, readline

PAYLOAD = bytes(range(100))


def role_sub(endpoint: str, n: int) -> None:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    print("ready", flush=True)
    count = 0
    first = last = time.perf_counter()
    while True:
        try:
            msg = sub.recv_pyobj()
        except zmq.Again:
            break
        if msg == "warm":
            continue
        if msg == "end":
            break
        if count == 0:
            first = time.perf_counter()
        count += 1
        last = time.perf_counter()
        if count == n:
            break
    print(json.dumps({"count": count, "seconds": last - first}), flush=True)
    sub.close(0)
    ctx.term()


def fanout(k: int, n: int) -> dict[str, Any]:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.bind("tcp://127.0.0.1:*")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "sub",
                               "--endpoint", endpoint, "--n", str(n)], stdout=subprocess.PIPE,
                              text=True) for _ in range(k)]
    try:
        for p in procs:
            readline(p)
        time.sleep(0.5)  # the slow joiner: give the subscriptions time to arrive
        for _ in range(10):
            pub.send_pyobj("warm")
        start = time.perf_counter()
        for _ in range(n):
            pub.send_pyobj(PAYLOAD)
        publish_s = time.perf_counter() - start
        results = [json.loads(readline(p, 300)) for p in procs]
        return fanout_record(k, n, results, publish_s)
    finally:
        kill_all(procs)
        pub.close(0)
        ctx.term()


def late(n: int) -> dict[str, Any]:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind("tcp://127.0.0.1:*")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    losses = 0
    delays = []
    try:
        for trial in range(n):
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.RCVTIMEO, 50)
            start = time.perf_counter()
            sub.connect(endpoint)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            pub.send_pyobj(trial)  # "subscribed" was said: the publisher sends at once
            try:
                got = sub.recv_pyobj()
                if got != trial:
                    losses += 1
                else:
                    delays.append(time.perf_counter() - start)
            except zmq.Again:
                losses += 1
            sub.close(0)
    finally:
        pub.close(0)
        ctx.term()
    delays.sort()
    return {"trials": n, "losses": losses,
            "join_to_delivery_p50_us": delays[len(delays) // 2] * 1e6 if delays else None}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", nargs="?")
    p.add_argument("--role")
    p.add_argument("--endpoint")
    p.add_argument("--subs", type=int, default=1)
    p.add_argument("--n", type=int, default=100_000)
    a = p.parse_args()
    if a.role == "sub":
        role_sub(a.endpoint, a.n)
    elif a.scenario == "fanout":
        print(json.dumps(fanout(a.subs, a.n)))
    elif a.scenario == "late":
        print(json.dumps(late(a.n)))
    else:
        p.error("give a scenario: fanout or late")


if __name__ == "__main__":
    main()
