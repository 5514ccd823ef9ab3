"""Sender process of the stream benchmark (standard library only, plain blocking sockets).

``python _stream_sender.py PORT CHUNK SIZE [SIZE ...]`` opens one TCP connection to
127.0.0.1:PORT per SIZE, in order, sends SIZE bytes on it with ``sendall`` of CHUNK-byte slices
of one buffer, then closes it. The sockets stay truly blocking; the kernel bounds every send
and receive to 60 s (SO_SNDTIMEO / SO_RCVTIMEO) and the connect has a 60 s timeout; a failure
exits with status 1 and a message on standard error. The receiving program measures; this one only
pushes bytes as fast as the kernel takes them.
"""

from __future__ import annotations

import socket
import sys

from _benchlib import kernel_timeouts

TIMEOUT = 60.0


def send_stream(port: int, chunk: bytes, size: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        kernel_timeouts(sock, TIMEOUT)  # blocking sends, each bounded by the kernel
        view = memoryview(chunk)
        left = size
        while left >= len(view):
            sock.sendall(view)
            left -= len(view)
        if left:
            sock.sendall(view[:left])
        sock.shutdown(socket.SHUT_WR)
        # wait (bounded) until the receiver has read everything and closed its end
        sock.recv(1)


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    port, chunk_size, *sizes = (int(a) for a in sys.argv[1:])
    chunk = bytes(i % 251 for i in range(chunk_size))
    try:
        for size in sizes:
            send_stream(port, chunk, size)
    except OSError as exc:
        print(f"stream sender: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
