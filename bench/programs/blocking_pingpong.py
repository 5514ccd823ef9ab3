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
import socket
import sys

from _benchlib import LOOPBACK, kernel_timeouts, latency_us, pingpong_args, serving, timed_calls

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
def measure(port: int, args: argparse.Namespace) -> dict[str, float]:
    message = bytes(i % 256 for i in range(args.size))
    with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kernel_timeouts(sock, TIMEOUT)

        def round_trip(_i: int = 0) -> None:
            sock.sendall(message)
            if recv_exactly(sock, args.size) != message:
                raise RuntimeError("echo differs from the message")

        for _ in range(args.warmup):
            round_trip()
        lat, elapsed = timed_calls(round_trip, args.n, args.seconds)
    return {**latency_us(lat, "rtt"), "round_trips_per_s": len(lat) / elapsed,
            "round_trips": len(lat)}


def main() -> int:
    args = pingpong_args(__doc__)
    if args.role == "server":
        serve(args.size)
        return 0
    with serving(__file__, "--size", str(args.size)) as port:
        result = measure(int(port), args)
    result.update(impl="blocking", version=sys.version.split()[0], size=args.size)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
