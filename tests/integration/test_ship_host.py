"""A host node in a process of its own for the code-shipping and console tests (no tests here).

``python tests/integration/test_ship_host.py [options]`` starts ``pycos.netpycos.Pycos`` on
127.0.0.1, optionally opts in to shipped code (``--accept``, with ``--allow-from``,
``--max-source``, ``--no-namespaces``) and serves a console (``--console-tcp`` or
``--console-unix PATH``, ``--max-sessions``), prints ``ready PORT``, then answers commands read
from stdin, one per line, with one JSON line each: ``stats`` (the node's counters, the code
host's and the console's) and ``quit``. It ends when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--secret", default="")
    p.add_argument("--name")
    p.add_argument("--accept", action="store_true")
    p.add_argument("--allow-from", action="append")
    p.add_argument("--max-source", type=int, default=1 << 20)
    p.add_argument("--no-namespaces", action="store_true")
    p.add_argument("--certfile")
    p.add_argument("--keyfile")
    p.add_argument("--cafile")
    p.add_argument("--console-tcp", action="store_true")
    p.add_argument("--console-unix")
    p.add_argument("--max-sessions", type=int, default=8)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")
    import pycos.netpycos as netpycos
    from pycos import console, ship

    node = netpycos.Pycos(host="127.0.0.1", udp_port=0, discover_peers=False,
                          secret=args.secret, name=args.name, certfile=args.certfile,
                          keyfile=args.keyfile, cafile=args.cafile)
    host = None
    if args.accept:
        host = ship.accept_code(allow_from=args.allow_from, max_source=args.max_source,
                                namespaces=not args.no_namespaces)
    server = None
    if args.console_tcp or args.console_unix:
        server = console.ConsoleServer(unix_path=args.console_unix,
                                       max_sessions=args.max_sessions, idle_timeout=60)
        try:
            server.start()
        except console.ConsoleRefused as exc:
            sys.stdout.write(f"refused {json.dumps(str(exc))}\n")
            sys.stdout.flush()
            server = None
    sys.stdout.write(f"ready {node.location.port}\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            out = {"node": node.stats(), "ship": host.stats() if host else None,
                   "console": server.stats() if server else None}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
        elif cmd == "quit":
            break
    if server is not None:
        server.stop()
    node.terminate()


if __name__ == "__main__":
    main()
