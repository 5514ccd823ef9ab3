"""The limit reference of the file benchmark: ``socket.sendfile`` between two processes.

``python plain_send_file.py FILE DEST`` starts a receiver child process (this file with
``--serve DEST``) listening on 127.0.0.1, connects to it, sends an 8-byte size and then the file
with ``socket.sendfile`` (zero-copy); the receiver writes exactly that many bytes into
``DEST/<name>`` with ``recv_into`` a 1 MiB buffer, closes the file and answers one byte. The time
runs from the connect until that answer (like ``send_file``: connection, data, the receiver's
confirmation). No authentication, no temporary file, no checks: what the machine can do. A
1 MiB warm-up transfer comes first. Prints one JSON line. Imports only the standard library.

With ``--hmac`` it is the limit *with integrity*: the sender also computes HMAC-SHA256 of the
file (from a map of each part just sent, on a second thread, as ``send_file`` does) and sends
the 32-byte tag after the data; the receiver hashes every buffer it receives and compares the
tags before it answers.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import mmap
import os
import socket
import subprocess
import sys
import threading
import time

BUF = 1 << 20
CHUNK = 8 << 20
KEY = b"bench key: the same at both ends".ljust(32)


def serve(dest: str, with_mac: bool) -> None:
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
                mac = hmac.new(KEY, digestmod=hashlib.sha256)
                got = 0
                while got < size:
                    n = conn.recv_into(buf, min(BUF, size - got))
                    if not n:
                        raise SystemExit("sender closed early")
                    view = buf[:n]
                    if with_mac:
                        mac.update(view)
                    while view:
                        view = view[os.write(fd, view):]
                    got += n
                os.close(fd)
                if with_mac and not hmac.compare_digest(conn.recv(32, socket.MSG_WAITALL),
                                                        mac.digest()):
                    raise SystemExit("the tags differ")
                conn.sendall(b"k")


def _hash_file(mac: hmac.HMAC, fd: int, parts: list[tuple[int, int]],
               ready: threading.Semaphore) -> None:
    while True:
        ready.acquire()
        start, n = parts.pop(0)
        if n < 0:
            return
        base = start - start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(fd, start + n - base, prot=mmap.PROT_READ, offset=base) as mapped:
            view = memoryview(mapped)
            mac.update(view[start - base:])
            view.release()


def transfer(port: int, path: str, with_mac: bool) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        sock.sendall(size.to_bytes(8, "big"))
        sock.sendall(os.path.basename(path).encode().ljust(256, b"\0"))
        if with_mac:
            mac = hmac.new(KEY, digestmod=hashlib.sha256)
            parts: list[tuple[int, int]] = []
            ready = threading.Semaphore(0)
            hasher = threading.Thread(target=_hash_file, args=(mac, f.fileno(), parts, ready))
            hasher.start()
            sent = 0
            while sent < size:
                n = os.sendfile(sock.fileno(), f.fileno(), sent, min(CHUNK, size - sent))
                parts.append((sent, n))
                ready.release()
                sent += n
            parts.append((0, -1))
            ready.release()
            hasher.join()
            sock.sendall(mac.digest())
        else:
            sock.sendfile(f)
        if sock.recv(1) != b"k":
            raise SystemExit("no confirmation")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?")
    parser.add_argument("dest")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--hmac", action="store_true", help="the limit with integrity")
    args = parser.parse_args()
    if args.serve:
        serve(args.dest, args.hmac)
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve", args.dest,
                              *(["--hmac"] if args.hmac else [])],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline().split()[1])
        warm = os.path.join(os.path.dirname(args.file), "warm-up.bin")
        with open(warm, "wb") as f:
            f.write(os.urandom(1 << 20))
        transfer(port, warm, args.hmac)
        seconds = transfer(port, args.file, args.hmac)
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
    impl = "sendfile+hmac" if args.hmac else "socket.sendfile"
    print(json.dumps({"impl": impl, "version": sys.version.split()[0], "file": "",
                      "bytes": size, "seconds": seconds, "mb_per_s": size / seconds / 1e6}),
          flush=True)


if __name__ == "__main__":
    main()
