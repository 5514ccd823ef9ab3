"""The gateway process of ``bench/bench_swarm.py``: a ``pycos.swarm.Gateway`` on 127.0.0.1.

``python swarm_gateway.py --secret S --dest DIR [--export NAME=DIR] [--marker-dir DIR]``
serves the subroutines ``items(n, size)`` (n items of ``size`` bytes), ``endless(size, tag)``
(items until aborted; its ``finally`` writes the wall-clock time into ``MARKER/tag``),
``noop()`` (a batch) and ``rss()``, exports the folders given and receives uploads and
``send_file`` transfers into ``--dest``. It prints ``ready PORT PID`` and runs until its
standard input is closed. ``--secret ''`` runs without one (``allow_no_secret``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--secret", default="")
    p.add_argument("--dest", required=True)
    p.add_argument("--export", action="append", default=[])
    p.add_argument("--marker-dir")
    args = p.parse_args()
    import pycos.netpycos as netpycos
    from pycos.swarm import Gateway

    netpycos.Pycos(host="127.0.0.1", secret=args.secret, discover_peers=False, udp_port=0,
                   dest_path=args.dest)
    gw = Gateway(exports=dict(e.split("=", 1) for e in args.export), pool_size=8,
                 allow_no_secret=not args.secret, max_window=1 << 16,
                 max_window_bytes=1 << 30)

    def items(n: int, size: int = 100):
        payload = os.urandom(size)
        for i in range(n):
            yield i, payload

    def endless(size: int = 100, tag: str = "endless"):
        payload = os.urandom(size)
        try:
            i = 0
            while True:
                yield i, payload
                i += 1
        finally:
            if args.marker_dir:
                stamp = time.time()
                path = os.path.join(args.marker_dir, tag)
                with open(path + ".tmp", "w") as f:
                    f.write(repr(stamp))
                os.replace(path + ".tmp", path)

    def rss() -> int:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    gw.add_subroutine("items", items)
    gw.add_subroutine("endless", endless)
    gw.add_subroutine("noop", lambda: None)
    gw.add_subroutine("rss", rss)
    gw.start()
    sys.stdout.write(f"ready {gw.port} {os.getpid()}\n")
    sys.stdout.flush()
    sys.stdin.read()
    gw.close()


if __name__ == "__main__":
    main()
