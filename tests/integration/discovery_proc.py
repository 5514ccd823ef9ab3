"""A discovery participant process for the namespace tests and the benchmark (not a test).

Runs one ``pycos.net.discovery.Discovery`` on a private scheduler and reports on stdout, one
line each, flushed::

    ready <name> <udp_port> <t> <addr,addr...>   started (t: time.time() after announcing)
    peer <name> <host> <tcp_port> <t>           first time a peer name is heard from that host
    stats dropped=<n> peers=<n>                 answer to the "stats" command

Commands on stdin, one per line: ``announce``, ``contact <host> <udp_port> [relay]``,
``stats``, ``quit``. The process ends on ``quit``, at end of input (its parent went away), or
after ``--lifetime`` seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time

import pycos
from pycos.net.discovery.discovery import Discovery
from pycos.net.discovery.interfaces import choose_addresses


def _say(*words: object) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def _commands(disc: Discovery, heard: set[tuple[str, str]], lock: threading.Lock,
              done: threading.Event) -> None:
    """Serve the commands read from stdin; set ``done`` at ``quit`` or end of input."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "announce":
            disc.announce()
        elif words[0] == "contact":
            disc.contact(words[1], int(words[2]), relay=words[3:] == ["relay"])
        elif words[0] == "stats":
            with lock:
                _say(f"stats dropped={disc.dropped} peers={len(heard)}")
    done.set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--udp-port", type=int, required=True)
    ap.add_argument("--tcp-port", type=int, default=7000)
    ap.add_argument("--host", default=None, help="as the node's host argument")
    ap.add_argument("--secret", default="netns-test")
    ap.add_argument("--no-broadcast", action="store_true")
    ap.add_argument("--multicast", action="store_true")
    ap.add_argument("--no-announce", action="store_true", help="do not announce at start")
    ap.add_argument("--contact", action="append", default=[], help="HOST,PORT[,relay]")
    ap.add_argument("--lifetime", type=float, default=60.0)
    args = ap.parse_args()

    sched = pycos.Pycos.private()
    heard: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def on_peer(host: str, tcp_port: int, incarnation: bytes, name: str) -> None:
        with lock:
            if (name, host) in heard:
                return
            heard.add((name, host))
        _say("peer", name, host, tcp_port, repr(time.time()))

    addrs = choose_addresses(args.host)
    disc = Discovery(sched, secret=args.secret, name=args.name,
                     incarnation=secrets.token_bytes(16), tcp_port=args.tcp_port,
                     udp_port=args.udp_port, bind_addrs=addrs, ext_host=None, on_peer=on_peer,
                     broadcast=not args.no_broadcast, multicast=args.multicast)
    disc.start()
    if not args.no_announce:
        disc.announce()
    for spec in args.contact:
        host, port, *relay = spec.split(",")
        disc.contact(host, int(port), relay=relay == ["relay"])
    _say("ready", args.name, disc.udp_port, repr(time.time()), ",".join(addrs))

    done = threading.Event()
    threading.Thread(target=_commands, args=(disc, heard, lock, done), daemon=True).start()
    done.wait(args.lifetime)
    disc.close()
    sched.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
