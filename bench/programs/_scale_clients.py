"""Client process of the scale benchmark (standard library only, plain blocking sockets).

``python _scale_clients.py PORT N SIZE`` raises its descriptor limit, opens N TCP connections
to 127.0.0.1:PORT one after another and keeps them all open. The server greets every connection
it accepts with one byte; the client reads the greeting of connection ``i - WINDOW`` after
opening connection ``i``, so no more than WINDOW connections wait to be accepted and the
kernel's listen queue (``net.core.somaxconn``, often 4096) never overflows (an overflow costs a
one-second SYN retransmission that would swamp the measurement). Once all N are open it sends
SIZE bytes on every connection and reads SIZE bytes back from every one (the server echoes
them). Then it waits until its standard input is closed (by the server program, once it has
taken its measurements), closes every connection and exits. Every socket call has a 60 s
timeout and the wait on standard input is bounded too; a failure exits with status 1 and a
message on standard error.
"""

from __future__ import annotations

import select
import socket
import sys

from _benchlib import raise_nofile

TIMEOUT = 60.0
HOLD_LIMIT = 300.0
WINDOW = 2000
GREETING = b"+"


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def expect(sock: socket.socket, data: bytes) -> None:
    if recv_exactly(sock, len(data)) != data:
        raise ConnectionError(f"received something else than {data[:8]!r}...")


def main() -> int:
    port, count, size = (int(a) for a in sys.argv[1:4])
    raise_nofile(count + 64)
    msg = bytes(i % 251 for i in range(size))
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.settimeout(TIMEOUT)
            sock.connect(("127.0.0.1", port))
            if i >= WINDOW:
                expect(socks[i - WINDOW], GREETING)
        for sock in socks[-WINDOW:]:
            expect(sock, GREETING)
        for sock in socks:
            sock.sendall(msg)
        for sock in socks:
            expect(sock, msg)
        select.select([sys.stdin], [], [], HOLD_LIMIT)  # readable at end of input
    except OSError as exc:
        print(f"scale clients: {exc!r} with {len(socks)} connection(s) open", file=sys.stderr)
        return 1
    finally:
        for sock in socks:
            sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
