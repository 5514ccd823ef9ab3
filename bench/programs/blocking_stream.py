"""One-way stream into a plain blocking socket: the limit reference of the stream benchmark.

No framework: the main thread accepts the connections of ``_stream_sender.py`` (a separate
process, 127.0.0.1) and reads each stream to its end with blocking calls, one method per
connection: ``recv_into`` a reused B-byte buffer and ``recv(B)`` (``recvall`` of the pycos
program is ``recv_into`` here). Each method reads ``--rounds`` streams (the methods take
turns) and its median time counts. ``mb_per_s`` is the ``recv_into`` figure. MB is 10**6 bytes;
the time runs from ``accept`` returning to the end of the stream; a smaller stream is read
first and not counted. The connection is a truly blocking socket (no ``settimeout``, which
would make Python poll before every call); the kernel bounds each call to 60 s instead
(SO_RCVTIMEO), and ``accept`` has a 60 s timeout.
"""

from __future__ import annotations

import socket
import sys
import time
import types

from _benchlib import (
    LOOPBACK,
    emit,
    kernel_timeouts,
    parse_args,
    reap,
    spawn_helper,
    stream_plan,
    stream_rates,
)

METHODS = ("recv_into", "recv")
TIMEOUT = 60.0


#: Stands for the implementation in the result line.
BLOCKING = types.ModuleType("blocking")
BLOCKING.__version__ = sys.version.split()[0]
BLOCKING.__file__ = ""


def read_stream(conn, method, bufsize):
    total = 0
    if method == "recv_into":
        view = memoryview(bytearray(bufsize))
        while True:
            n = conn.recv_into(view, bufsize)
            if not n:
                break
            total += n
    else:
        while True:
            data = conn.recv(bufsize)
            if not data:
                break
            total += len(data)
    return total


def receive(listener, method, bufsize, expected):
    conn, _addr = listener.accept()
    with conn:
        kernel_timeouts(conn, TIMEOUT)
        start = time.perf_counter()
        total = read_stream(conn, method, bufsize)
        elapsed = time.perf_counter() - start
    if total != expected:
        raise AssertionError(f"{method}: received {total} bytes, expected {expected}")
    return elapsed


def run(size, bufsize, warmup, chunk, rounds):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.settimeout(TIMEOUT)
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    plan = stream_plan(METHODS, rounds)
    sender = spawn_helper("_stream_sender.py", port, chunk, warmup, *([size] * len(plan)))
    timings = []
    try:
        receive(listener, METHODS[0], bufsize, warmup)
        for method in plan:
            timings.append((method, receive(listener, method, bufsize, size)))
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
                      chunk=1 << 20, rounds=5)
    result = run(args.size, args.bufsize, args.warmup, args.chunk, args.rounds)
    emit("stream", BLOCKING, args, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
