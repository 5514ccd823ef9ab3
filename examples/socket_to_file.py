"""Receive a stream over a socket and store it in a file, without blocking other tasks.

A sender task streams 8 MiB over TCP; the receiver writes each chunk to a disk file through
``AsyncFile`` (regular files cannot be polled, so their reads and writes run on a worker thread
while the scheduler keeps serving sockets). The file is then read back with ``AsyncFile`` and
its checksum compared with the sender's.

Run: ``python examples/socket_to_file.py`` (binds 127.0.0.1; uses a temporary directory).
"""

import hashlib
import os
import socket
import tempfile

import pycos
from pycos import AsyncSocket
from pycos.asyncfile import AsyncFile

SIZE = 8 * 1024 * 1024


def sender(address, task=None):
    sock = AsyncSocket(socket.socket())
    yield sock.connect(address)
    digest = hashlib.sha256()
    block = bytes(range(256)) * 256  # 64 KiB
    for _ in range(SIZE // len(block)):
        digest.update(block)
        yield sock.sendall(block)
    sock.close()
    return digest.hexdigest()


def receiver(listener, path, task=None):
    conn, _address = yield listener.accept()
    out = AsyncFile(open(path, "wb"))
    received = 0
    while True:
        chunk = yield conn.recv(256 * 1024)
        if not chunk:
            break
        yield out.write(chunk, full=True)
        received += len(chunk)
    out.close()
    conn.close()
    return received


def checksum(path, task=None):
    digest = hashlib.sha256()
    with AsyncFile(open(path, "rb")) as f:
        while True:
            data = yield f.read(1024 * 1024)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


def main(directory, task=None):
    path = os.path.join(directory, "received.bin")
    listener = AsyncSocket(socket.socket())
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    recv_task = pycos.Task(receiver, listener, path)
    sent_digest = yield pycos.Task(sender, listener.getsockname()).finish()
    received = yield recv_task.finish()
    listener.close()
    print(f"received {received} bytes into {os.path.basename(path)}")
    file_digest = yield pycos.Task(checksum, path).finish()
    print("checksums match" if file_digest == sent_digest else "CHECKSUM MISMATCH")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        pycos.Task(main, tmp).value()
