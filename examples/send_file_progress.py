"""Send a file to another node, with a progress bar.

This process is the sending node. It starts the receiving node as a process of its own (this
same file with ``--receiver DEST``) on 127.0.0.1 with discovery off; both use the same secret.
``yield node.send_file(loc, path, dir="incoming", progress=bar)`` copies the file into the
receiver's ``dest_path`` + ``incoming``; ``bar(sent, total)`` is called on this node's scheduler
as the bytes go out. The bytes travel on a connection of their own, straight from the page cache
(``os.sendfile``); the receiver writes them to a temporary file that it renames into place only
once everything arrived, so nobody there ever sees half a file.

Sending the same file again answers 1 (same size, mode and time: nothing to do); ``del_file``
removes it and the ``incoming`` directory it leaves empty.

Run: ``python examples/send_file_progress.py [--size-mib 64]`` (finishes by itself).
"""

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pycos
import pycos.netpycos as netpycos

# The parent makes a secret; the receiver process inherits it. Nodes with another secret are
# refused.
SECRET = os.environ.setdefault("PYCOS_EXAMPLE_SECRET", secrets.token_hex(16))


# ---------------------------------------------------------------- the receiving node
def receiver_main(dest):
    node = netpycos.Pycos(host="127.0.0.1", discover_peers=False, secret=SECRET,
                          dest_path=dest)
    print(f"ready {node.location.port}", flush=True)
    sys.stdin.read()  # until the sender closes our stdin
    node.terminate()


# ---------------------------------------------------------------- the sending node
class ProgressBar:
    """``bar(sent, total)``: redraws one line on a terminal, else prints every quarter."""

    def __init__(self, width=40):
        self.width = width
        self.next_quarter = 0
        self.tty = sys.stdout.isatty()

    def __call__(self, sent, total):
        done = sent / total if total else 1.0
        if self.tty:
            filled = int(done * self.width)
            print(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%} "
                  f"{sent >> 20} of {total >> 20} MiB", end="\n" if sent == total else "",
                  flush=True)
            return
        while self.next_quarter <= 4 and done >= self.next_quarter / 4:
            print(f"progress: {self.next_quarter * 25}%", flush=True)
            self.next_quarter += 1


def sender(loc, path, dest, task=None):
    node = pycos.Pycos.instance()
    size = os.path.getsize(path)
    start = time.perf_counter()
    status = yield node.send_file(loc, path, dir="incoming", progress=ProgressBar())
    took = time.perf_counter() - start
    print(f"sent {os.path.basename(path)} ({size >> 20} MiB) in {took:.2f} s: status {status}")
    received = os.path.join(dest, "incoming", os.path.basename(path))
    same = sha256(received) == sha256(path)
    print("checksums match" if same else "checksums DIFFER")
    status = yield node.send_file(loc, path, dir="incoming")
    print(f"sending it again: status {status} (the same file is already there)")
    status = yield node.del_file(loc, path, dir="incoming")
    gone = not os.path.exists(os.path.join(dest, "incoming"))
    print(f"del_file: status {status}; the incoming directory is "
          f"{'gone' if gone else 'still there'}")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sender_main(size_mib):
    work = tempfile.mkdtemp(prefix="send-file-example-")
    dest = os.path.join(work, "receiver")
    path = os.path.join(work, "payload.bin")
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    child = subprocess.Popen([sys.executable, __file__, "--receiver", dest],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline().split()[1])
        node = netpycos.Pycos(host="127.0.0.1", discover_peers=False, secret=SECRET,
                              dest_path=os.path.join(work, "sender"))
        pycos.Task(sender, netpycos.Location("127.0.0.1", port), path, dest).value(timeout=60)
        node.terminate()
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="send a file to another node")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--receiver", metavar="DEST", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
    else:
        sender_main(args.size_mib)
