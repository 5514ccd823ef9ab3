"""One-way stream on pycos: a sender process pushes N bytes to a receiving task; reports MB/s.

Runs unchanged on this repository's pycos and on pycos 4.12.2. The sender is
``_stream_sender.py`` (plain blocking sockets, a separate process, 127.0.0.1); this program's
task accepts its connections and reads each stream to its end with one method per connection:

* ``recv_into``: ``yield sock.recv_into(buffer, B)`` into one reused B-byte buffer; only where
  ``AsyncSocket`` has an asynchronous ``recv_into`` (this repository's pycos; 4.12.2 has not);
* ``recv``: ``yield sock.recv(B)``, a new bytes object per call;
* ``recvall``: ``yield sock.recvall(B)``, exactly B bytes per call.

Each method reads ``--rounds`` streams (the methods take turns) and its median time counts.
``mb_per_s`` is the best the implementation offers: ``recv_into`` where it exists, otherwise
the faster of ``recv`` / ``recvall`` in the same run. MB is 10**6 bytes; the time runs from
``accept`` returning to the end of the stream. A smaller stream (``--warmup`` bytes) is read
first and not counted.
"""

from __future__ import annotations

import socket
import sys
import time

from _benchlib import (
    LOOPBACK,
    await_result,
    emit,
    parse_args,
    reap,
    spawn_helper,
    stream_plan,
    stream_rates,
)

import pycos

HAS_RECV_INTO = hasattr(pycos.AsyncSocket, "recv_into")
METHODS = (("recv_into",) if HAS_RECV_INTO else ()) + ("recv", "recvall")


def read_stream(conn, method, bufsize):
    total = 0
    if method == "recv_into":
        view = memoryview(bytearray(bufsize))
        while True:
            n = yield conn.recv_into(view, bufsize)
            if not n:
                break
            total += n
    elif method == "recv":
        while True:
            data = yield conn.recv(bufsize)
            if not data:
                break
            total += len(data)
    else:
        while True:
            data = yield conn.recvall(bufsize)
            total += len(data)
            if len(data) < bufsize:
                break
    return total


def receive(listener, method, bufsize, expected, task=None):
    conn, _addr = yield listener.accept()
    start = time.perf_counter()
    total = yield read_stream(conn, method, bufsize)
    elapsed = time.perf_counter() - start
    conn.close()
    if total != expected:
        raise AssertionError(f"{method}: received {total} bytes, expected {expected}")
    return elapsed


def driver(size, bufsize, warmup, chunk, rounds, task=None):
    listener = pycos.AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    plan = stream_plan(METHODS, rounds)
    sender = spawn_helper("_stream_sender.py", port, chunk, warmup, *([size] * len(plan)))
    timings = []
    try:
        yield receive(listener, METHODS[0], bufsize, warmup)
        for method in plan:
            elapsed = yield receive(listener, method, bufsize, size)
            timings.append((method, elapsed))
    finally:
        listener.close()
        status = reap(sender)
    if status != 0:
        raise AssertionError(f"the sender process exited with status {status}")
    metrics = stream_rates(size, timings)
    metrics["mb_per_s"] = metrics.get("mb_per_s_recv_into") or max(
        metrics["mb_per_s_recv"], metrics["mb_per_s_recvall"])
    return metrics


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], size=1 << 30, bufsize=1 << 20, warmup=64 << 20,
                      chunk=1 << 20, rounds=5, limit=120)
    task = pycos.Task(driver, args.size, args.bufsize, args.warmup, args.chunk, args.rounds)
    result = await_result(task, args.limit)
    if not isinstance(result, dict):
        print(f"benchmark task failed: {result!r}", file=sys.stderr)
        return 1
    emit("stream", pycos, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
