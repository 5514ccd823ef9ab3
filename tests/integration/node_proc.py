"""A node in a process of its own, driven by the integration tests.

Starts ``pycos.netpycos.Pycos`` with the options given, prints ``ready <addr> <port> <name>``,
then serves commands read from stdin, one JSON list per line (``["peer", "127.0.0.1", 4000]``),
answering each with a line ``reply <json>``. Peer-status changes are printed as they happen,
as ``event <json>`` lines with the wall-clock time. Logging goes to stderr.

Commands: peers, stats, name, bound_port (the TCP port the node listens on, when it advertises
another one with --ext-port), peer ADDR PORT, peer_host HOST UDP_PORT, close_peer ADDR PORT,
locate NAME TIMEOUT, ping ADDR PORT PAYLOAD, burn SECONDS (a task computing without yielding),
finish, terminate; file transfer: send_file ADDR PORT PATH [DIR OVERWRITE TIMEOUT], del_file ADDR
PORT NAME [DIR TIMEOUT], dest_path (options --dest-path, --max-file-size); remote tasks, channels
and RCI (see remote_services.py): r_serve, r_allow MODULE.CLASS, r_tally KEY; remote modules
(see proxy_services.py): p_serve, p_stats, p_unregister, p_hold, p_call.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from typing import Any

_out_lock = threading.Lock()


def emit(kind: str, value: Any) -> None:
    with _out_lock:
        sys.stdout.write(f"{kind} {json.dumps(value)}\n")
        sys.stdout.flush()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--name")
    p.add_argument("--secret", default="")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tcp-port", type=int, default=0)
    p.add_argument("--udp-port", type=int, default=0)
    p.add_argument("--ext-host", help="address to advertise instead of the bound one")
    p.add_argument("--ext-port", type=int, default=0,
                   help="TCP port to advertise instead of the bound one (a proxy's, a NAT's)")
    p.add_argument("--peer", action="append", default=[], help="ADDR:PORT to connect to")
    p.add_argument("--discover", action="store_true")
    p.add_argument("--heartbeat", type=float, default=None)
    p.add_argument("--peer-timeout", type=float, default=None)
    p.add_argument("--handshake-timeout", type=float, default=None)
    p.add_argument("--max-frame-size", type=int, default=None)
    p.add_argument("--certfile")
    p.add_argument("--keyfile")
    p.add_argument("--cafile")
    p.add_argument("--proto-version", type=int, default=None,
                   help="pretend to speak only this protocol version")
    add_file_options(p)
    return p.parse_args()


def make_node(args: argparse.Namespace) -> Any:
    if args.proto_version is not None:
        import pycos.proto.connection as connection

        connection.SUPPORTED_VERSIONS = (args.proto_version, args.proto_version)
    import pycos.netpycos as netpycos
    from pycos.net.location import Location

    kwargs: dict[str, Any] = {}
    for opt, key in (("heartbeat", "heartbeat_interval"), ("peer_timeout", "peer_timeout"),
                     ("handshake_timeout", "handshake_timeout"),
                     ("max_frame_size", "max_frame_size")):
        if getattr(args, opt) is not None:
            kwargs[key] = getattr(args, opt)
    peers = []
    for item in args.peer:
        host, _, port = item.rpartition(":")
        peers.append(Location(host, int(port)))
    kwargs.update(file_kwargs(args))
    return netpycos.Pycos(host=args.host, tcp_port=args.tcp_port, udp_port=args.udp_port or None,
                          name=args.name, secret=args.secret, discover_peers=args.discover,
                          peers=peers, certfile=args.certfile, keyfile=args.keyfile,
                          cafile=args.cafile, ext_host=args.ext_host, ext_port=args.ext_port,
                          **kwargs)


def status_task(task: Any = None) -> Any:
    task.set_daemon()
    while True:
        msg = yield task.receive()
        state = "online" if msg.status == msg.Online else "offline"
        emit("event", {"status": state, "name": msg.name, "location": repr(msg.location),
                       "t": time.time()})


def burn(seconds: float, task: Any = None) -> Any:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:  # never yields: the node's service must keep going
        n += 1
    return n
    yield  # a generator function


def run_task(fn: Any, *args: Any, timeout: float = 30.0) -> Any:
    import pycos

    task = pycos.Task(fn, *args)
    return task.value(timeout=timeout)


def command(node: Any, cmd: list[Any]) -> Any:
    from pycos.net.location import Location

    op, args = cmd[0], cmd[1:]
    if op == "peers":
        return sorted(repr(loc) for loc in node.peers())
    if op == "stats":
        return node.stats()
    if op == "name":
        return node.name
    if op == "bound_port":
        return node.node.listener.getsockname()[1]
    if op == "peer":
        loc = Location(args[0], int(args[1]))
        return run_task(lambda task=None: (yield node.peer(loc)))
    if op == "peer_host":
        return run_task(lambda task=None: (yield node.peer(args[0], udp_port=int(args[1]))))
    if op == "close_peer":
        loc = Location(args[0], int(args[1]))
        return run_task(lambda task=None: (yield node.close_peer(loc)))
    if op == "locate":
        found = run_task(lambda task=None: (yield node.locate(args[0], args[1])))
        return None if found is None else repr(found)
    if op == "ping":
        loc = Location(args[0], int(args[1]))

        def ping(task: Any = None) -> Any:
            try:
                return (yield node.request(loc, "ping", args[2], 5.0))
            except Exception as exc:  # report the failure to the test
                return f"error: {type(exc).__name__}: {exc}"

        return run_task(ping)
    if op == "burn":
        return run_task(burn, float(args[0]), timeout=float(args[0]) + 30)
    if op in FILE_COMMANDS:
        return FILE_COMMANDS[op](node, *args)
    if op in REMOTE_COMMANDS:
        return REMOTE_COMMANDS[op](node, *args)
    if op.startswith("p_"):
        from proxy_services import COMMANDS as PROXY_COMMANDS  # beside this file

        return PROXY_COMMANDS[op](node, *args)
    raise ValueError(f"unknown command {op!r}")


# ---------------------------------------------------------------------- file transfer
def add_file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dest-path")
    p.add_argument("--max-file-size", type=int, default=None)
    p.add_argument("--file-idle", type=float, default=None)


def file_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = {"dest_path": args.dest_path, "max_file_size": args.max_file_size}
    if args.file_idle is not None:
        kwargs["file_idle"] = args.file_idle
    return kwargs


def _send_file(node: Any, addr: str, port: int, path: str, dir: Any = None,
               overwrite: bool = False, timeout: Any = None) -> Any:
    """send_file; an os.stat_result comes back as {"stat": [size, mode, mtime_ns]}."""
    from pycos.net.location import Location

    loc = Location(addr, int(port))
    result = run_task(lambda task=None: (yield node.send_file(loc, path, dir, overwrite,
                                                              timeout)), timeout=120)
    if isinstance(result, int):
        return result
    return {"stat": [result.st_size, result.st_mode, result.st_mtime_ns]}


def _del_file(node: Any, addr: str, port: int, name: str, dir: Any = None,
              timeout: Any = None) -> Any:
    from pycos.net.location import Location

    loc = Location(addr, int(port))
    return run_task(lambda task=None: (yield node.del_file(loc, name, dir, timeout)))


def _dest_path(node: Any) -> str:
    return str(node.dest_path)


FILE_COMMANDS: dict[str, Any] = {"send_file": _send_file, "del_file": _del_file,
                                 "dest_path": _dest_path}


# ---------------------------------------------------------------------- remote tasks / RCI
def _remote_commands() -> dict[str, Any]:
    from remote_services import COMMANDS  # beside this file

    return COMMANDS


REMOTE_COMMANDS: dict[str, Any] = {"r_serve": lambda node: _remote_commands()["r_serve"](node),
                                   "r_allow": lambda node, name: _remote_commands()["r_allow"](
                                       node, name),
                                   "r_tally": lambda node, key: _remote_commands()["r_tally"](
                                       node, key)}


def main() -> None:
    args = parse()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    node = make_node(args)
    import pycos

    node.peer_status(pycos.Task(status_task))
    emit("ready", [node.location.addr, node.location.port, node.name])
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd[0] in ("finish", "terminate"):
            emit("reply", "bye")
            getattr(node, cmd[0])()
            return
        try:
            result = command(node, cmd)
        except Exception as exc:  # report to the test, keep serving
            result = f"error: {type(exc).__name__}: {exc}"
        emit("reply", result)
    node.terminate()


if __name__ == "__main__":
    main()
