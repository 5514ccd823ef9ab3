"""The limit reference of the file benchmark: ``socket.sendfile`` between two processes.

``python plain_send_file.py FILE DEST`` starts a receiver child process (this file with
``--serve DEST``) listening on 127.0.0.1, connects to it, sends an 8-byte size and then the file
with ``socket.sendfile`` (zero-copy); the receiver writes exactly that many bytes into
``DEST/<name>`` with ``recv_into`` a 1 MiB buffer, closes the file and answers one byte. The time
runs from the connect until that answer (like ``send_file``: connection, data, the receiver's
confirmation). No authentication, no temporary file, no checks: what the machine can do. A
1 MiB warm-up transfer comes first. Prints one JSON line. Imports only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

BUF = 1 << 20


def serve(dest: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print("ready", listener.getsockname()[1], flush=True)
        buf = memoryview(bytearray(BUF))
        while True:
            conn, _ = listener.accept()
            with conn:
                head = conn.recv(8, socket.MSG_WAITALL)
                if len(head) < 8:
                    return  # the sender is done
                size = int.from_bytes(head, "big")
                name = conn.recv(256, socket.MSG_WAITALL).rstrip(b"\0").decode()
                fd = os.open(os.path.join(dest, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                             0o644)
                got = 0
                while got < size:
                    n = conn.recv_into(buf, min(BUF, size - got))
                    if not n:
                        raise SystemExit("sender closed early")
                    view = buf[:n]
                    while view:
                        view = view[os.write(fd, view):]
                    got += n
                os.close(fd)
                conn.sendall(b"k")


def transfer(port: int, path: str) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        sock.sendall(size.to_bytes(8, "big"))
        sock.sendall(os.path.basename(path).encode().ljust(256, b"\0"))
        sock.sendfile(f)
        if sock.recv(1) != b"k":
            raise SystemExit("no confirmation")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?")
    parser.add_argument("dest")
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.dest)
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve", args.dest],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline().split()[1])
        warm = os.path.join(os.path.dirname(args.file), "warm-up.bin")
        with open(warm, "wb") as f:
            f.write(os.urandom(1 << 20))
        transfer(port, warm)
        seconds = transfer(port, args.file)
        socket.create_connection(("127.0.0.1", port)).close()  # tells the receiver to stop
        child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    size = os.path.getsize(args.file)
    got = os.path.getsize(os.path.join(args.dest, os.path.basename(args.file)))
    if got != size:
        raise SystemExit(f"received {got} of {size} bytes")
    print(json.dumps({"impl": "socket.sendfile", "version": sys.version.split()[0], "file": "",
                      "bytes": size, "seconds": seconds, "mb_per_s": size / seconds / 1e6}),
          flush=True)


if __name__ == "__main__":
    main()
