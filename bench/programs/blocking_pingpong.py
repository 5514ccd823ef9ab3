"""Round trips over plain blocking TCP sockets between two processes: the limit reference.

``python blocking_pingpong.py`` is the client: it starts this same file with ``--role server``
as a second process (an echo server on 127.0.0.1), connects, warms up, then times ``--n``
sequential round trips of a ``--size``-byte message (``sendall``, then receive exactly that
many bytes back), each one with ``time.perf_counter()``. It prints one JSON line:
``rtt_p50_us``, ``rtt_p99_us`` (nearest rank) and ``round_trips_per_s`` (round trips over the
whole timed span).

No framework: both ends are truly blocking sockets with TCP_NODELAY, so each hop is one
``send`` and one ``recv`` system call. The kernel bounds every call to 60 s (SO_RCVTIMEO /
SO_SNDTIMEO) instead of ``settimeout``, which would make Python poll before each call; the
timed loop also stops after ``--seconds``. The server process is always killed at the end.
Imports only the standard library (and ``_benchlib`` beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import time

from _benchlib import LOOPBACK, kernel_timeouts, percentile

TIMEOUT = 60.0


# ---------------------------------------------------------------------- server
def recv_exactly(conn: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``conn`` (fewer only at the end of the stream)."""
    data = conn.recv(size)
    while 0 < len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            break
        data += more
    return data


def serve(size: int) -> None:
    with socket.create_server((LOOPBACK, 0)) as listener:
        listener.settimeout(TIMEOUT)
        print("ready", listener.getsockname()[1], flush=True)
        conn, _addr = listener.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kernel_timeouts(conn, TIMEOUT)
        while True:
            data = recv_exactly(conn, size)
            if len(data) < size:
                return
            conn.sendall(data)


# ---------------------------------------------------------------------- client
def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start this file as the server; the process and what it announced after ``ready``."""
    cmd = [sys.executable, "-E", "-s", os.path.abspath(__file__), "--role", "server", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = ""
    if select.select([proc.stdout], [], [], 30)[0]:
        line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"server did not start (said {line!r})")
    return proc, line.split(None, 1)[1].strip()


def measure(port: int, args: argparse.Namespace) -> dict[str, float]:
    message = bytes(i % 256 for i in range(args.size))
    with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kernel_timeouts(sock, TIMEOUT)

        def round_trip() -> None:
            sock.sendall(message)
            if recv_exactly(sock, args.size) != message:
                raise RuntimeError("echo differs from the message")

        for _ in range(args.warmup):
            round_trip()
        lat = []
        start = time.perf_counter()
        stop = start + args.seconds
        for _ in range(args.n):
            t0 = time.perf_counter()
            round_trip()
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            if t1 > stop:
                break
        elapsed = time.perf_counter() - start
    lat.sort()
    return {"rtt_p50_us": percentile(lat, 50) * 1e6, "rtt_p99_us": percentile(lat, 99) * 1e6,
            "round_trips_per_s": len(lat) / elapsed, "round_trips": len(lat)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("client", "server"), default="client")
    p.add_argument("--n", type=int, default=20_000, help="timed round trips")
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--size", type=int, default=32, help="message bytes")
    p.add_argument("--seconds", type=float, default=60.0, help="stop the timed loop after this")
    args = p.parse_args()
    if args.role == "server":
        serve(args.size)
        return 0
    server, port = start_server("--size", str(args.size))
    try:
        result = measure(int(port), args)
    finally:
        server.kill()
        server.wait(10)
    result.update(impl="blocking", version=sys.version.split()[0], size=args.size)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
