"""UDP: an echo server and a client exchanging datagrams, with a timeout for lost replies.

``recvfrom`` gives one datagram and the sender's address; ``sendto`` answers it. UDP may lose
datagrams, so the client sets a timeout and treats ``socket.timeout`` (``TimeoutError``) as
"no answer". To show that path, the server deliberately ignores the datagram ``b"drop me"``.

Run: ``python examples/udp_echo.py`` (binds 127.0.0.1 on a free port).
"""

import socket

import pycos
from pycos import AsyncSocket


def server(sock, task=None):
    while True:
        data, peer = yield sock.recvfrom(2048)
        if data == b"stop":
            break
        if data == b"drop me":
            continue  # as if the network had lost it
        yield sock.sendto(data.upper(), peer)
    sock.close()
    print("server: stopped")


def client(address, task=None):
    sock = AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.settimeout(0.5)
    for text in (b"hello", b"drop me", b"udp works"):
        yield sock.sendto(text, address)
        try:
            reply, _peer = yield sock.recvfrom(2048)
            print(f"client: {text.decode()!r} -> {reply.decode()!r}")
        except TimeoutError:  # socket.timeout is TimeoutError
            print(f"client: {text.decode()!r} -> no reply (timed out)")
    yield sock.sendto(b"stop", address)
    sock.close()


def main(task=None):
    sock = AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind(("127.0.0.1", 0))
    srv = pycos.Task(server, sock)
    yield pycos.Task(client, sock.getsockname()).finish()
    yield srv.finish()


if __name__ == "__main__":
    pycos.Task(main).value()
