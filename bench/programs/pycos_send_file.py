"""One large ``send_file`` between two nodes on 127.0.0.1, timed.

The very same file runs on this repository's pycos and on pycos 4.12.2 (it uses only API both
have: ``pycos.netpycos.Pycos(...)``, ``location``, ``yield peer(loc)``, ``yield send_file``).
``python pycos_send_file.py FILE DEST`` starts the receiving node as a child process (this file
with ``--serve DEST``), makes it a peer, sends a 1 MiB warm-up file, then times
``send_file(FILE)`` from the call until it returns (for ours that includes opening and
authenticating the transfer's connection, and the receiver's final answer). It checks the
result and the received size and prints one JSON line. Imports the standard library and pycos.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SECRET = "bench files"


def serve(dest: str, udp_port: int) -> None:
    import pycos.netpycos as netpycos

    node = netpycos.Pycos(host="127.0.0.1", udp_port=udp_port, tcp_port=0,
                          discover_peers=False, secret=SECRET, dest_path=dest)
    print("ready", node.location.port, flush=True)
    sys.stdin.read()  # until the sender closes our stdin
    node.terminate()


def send(path: str, dest: str, udp_port: int) -> dict:
    child = subprocess.Popen([sys.executable, __file__, "--serve", dest, "--udp-port",
                              str(udp_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        line = ""
        while not line.startswith("ready "):  # pycos 4.12 logs to standard output too
            line = child.stdout.readline()
            if not line:
                raise SystemExit("the receiving node did not start")
        port = int(line.split()[1])
        import pycos
        import pycos.netpycos as netpycos

        node = netpycos.Pycos(host="127.0.0.1", udp_port=udp_port, tcp_port=0,
                              discover_peers=False, secret=SECRET,
                              dest_path=tempfile.mkdtemp(prefix="bench-files-sender-"))
        loc = netpycos.Location("127.0.0.1", port)
        warm = os.path.join(os.path.dirname(path), "warm-up.bin")
        with open(warm, "wb") as f:
            f.write(os.urandom(1 << 20))

        def run(task=None):
            assert (yield node.peer(loc)) == 0
            for _ in range(100):  # pycos 4.12 answers peer() before the peer is usable
                if loc in node.peers():
                    break
                yield task.sleep(0.05)
            assert (yield node.send_file(loc, warm, timeout=60)) == 0
            start = time.perf_counter()
            result = yield node.send_file(loc, path, timeout=60)
            return result, time.perf_counter() - start

        result, seconds = pycos.Task(run).value()
        node.terminate()
        size = os.path.getsize(path)
        got = os.path.getsize(os.path.join(dest, os.path.basename(path)))
        if result != 0 or got != size:
            raise SystemExit(f"send_file returned {result!r}; received {got} of {size} bytes")
        return {"impl": "pycos", "version": pycos.__version__, "file": pycos.__file__,
                "bytes": size, "seconds": seconds, "mb_per_s": size / seconds / 1e6}
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?")
    parser.add_argument("dest")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--udp-port", type=int, default=0)
    args = parser.parse_args()
    if args.serve:
        serve(args.dest, args.udp_port)
        return
    print(json.dumps(send(args.file, args.dest, args.udp_port)), flush=True)


if __name__ == "__main__":
    main()
