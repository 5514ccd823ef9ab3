"""The reference for large values: ``np.ones(N)`` sent as pickle protocol 5 over a socket.

``python pickle5_socket.py`` is the client: it starts this same file with ``--role server``
(a plain TCP server on a free port of 127.0.0.1), then asks ``--reps`` times (after one
warm-up) for a fresh ``np.ones(--big)``: the server makes it, pickles it with protocol 5 and
its buffer out of band, and writes the pickle's length, the buffer's length, the pickle and the
raw buffer; the client reads them into a ``bytearray`` each and unpickles. No framing, no
authentication, no integrity check: the floor that ``pycos.proxy``'s bulk values are compared
with. Prints one JSON line: ``big_s`` (median seconds per value) and ``big_bytes``. Every
socket wait is bounded; the server exits when its standard input closes and is killed at the
end. Imports the standard library, numpy and ``_benchlib``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import statistics
import sys
import time

import numpy as np
from _benchlib import LOOPBACK, serving

TIMEOUT = 120.0


def serve(size: int) -> None:
    listener = socket.create_server((LOOPBACK, 0))
    print("ready", listener.getsockname()[1], flush=True)
    listener.settimeout(30)
    conn, _ = listener.accept()
    conn.settimeout(TIMEOUT)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while conn.recv(1):
        arr = np.ones(size)
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(arr, protocol=5, buffer_callback=buffers.append)
        raw = buffers[0].raw()
        conn.sendall(len(data).to_bytes(8, "little") + raw.nbytes.to_bytes(8, "little") + data)
        conn.sendall(raw)
        del arr, raw, buffers
    os._exit(0)


def recv_exactly(sock: socket.socket, buf: bytearray) -> None:
    view = memoryview(buf)
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise RuntimeError("the server closed the connection")
        got += n


def fetch(sock: socket.socket, size: int) -> float:
    start = time.perf_counter()
    sock.sendall(b"x")
    header = bytearray(16)
    recv_exactly(sock, header)
    data = bytearray(int.from_bytes(header[:8], "little"))
    buf = bytearray(int.from_bytes(header[8:], "little"))
    recv_exactly(sock, data)
    recv_exactly(sock, buf)
    arr = pickle.loads(data, buffers=[buf])
    elapsed = time.perf_counter() - start
    if arr.shape != (size,) or float(arr[-1]) != 1.0:
        raise RuntimeError("wrong array")
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--big", type=int, default=2**25, help="float64 elements")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    if args.role == "server":
        serve(args.big)
        return 0
    with serving(__file__, "--big", str(args.big), isolated=False) as port, \
            socket.create_connection((LOOPBACK, int(port)), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fetch(sock, args.big)
        big_s = statistics.median(fetch(sock, args.big) for _ in range(args.reps))
    print(json.dumps({"big_s": big_s, "big_bytes": args.big * 8, "impl": "pickle5-socket",
                      "numpy": np.__version__}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
