"""Observe pycos's networked API the way a pycos 4.12 program uses it: names after
``import pycos.netpycos``, and two nodes on 127.0.0.1.

``python net_api.py UDP_A UDP_B DEST`` runs the first node (UDP port ``UDP_A``, files under
``DEST/a``) and starts a second one, this same file run as ``net_api.py child UDP_B SECRET
DEST/b``, with the same interpreter and flags. Both have ``discover_peers=False``; the first
reaches the second with ``peer('127.0.0.1', udp_port=UDP_B)``, so nothing is broadcast and
every datagram and connection stays on loopback. Every wait has a timeout.

Run unchanged by both this package and the released pycos 4.12.2 (``test_side_by_side``), which
compares what they print. Each observation is one line ``@ key => value``; other output is
ignored. A failing observation prints ``@ key => error <ExceptionType>: <message>``. Ends with
``@ done``.
"""

import collections
import importlib
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
import traceback

import pycos


def netpycos():
    """The pycos.netpycos module. The program's own machinery takes its names from there, so
    that a name missing from ``pycos`` itself fails only the observation about that name."""
    return sys.modules["pycos.netpycos"]


def show(key, value):
    print(f"@ {key} => {value}", flush=True)


def observe(key, fn):
    """Print ``@ key => fn()``, or the error fn raised."""
    try:
        value = fn()
    except Exception as exc:  # the output records what failed
        traceback.print_exc(file=sys.stderr)
        value = f"error {type(exc).__name__}: {exc}"
    show(key, value)


def failure(exc):
    traceback.print_exc(file=sys.stderr)
    return f"error {type(exc).__name__}: {exc}"


class Point:
    """A class of the program's own (both nodes run this file, so both define it)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self):
        return hash((self.x, self.y))

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


Pair = collections.namedtuple("Pair", "left right")


def node_options(udp_port, secret, dest, name=None):
    options = {"host": "127.0.0.1", "udp_port": udp_port, "tcp_port": 0,
               "discover_peers": False, "secret": secret, "dest_path": dest}
    if name:
        options["name"] = name
    return options


# ====================================================================== the second node
def child_main(udp_port, secret, dest):
    net = importlib.import_module("pycos.netpycos")
    node = net.Pycos(**node_options(udp_port, secret, dest, name="child"))

    def short(task=None):
        yield task.sleep(0)
        return "short done"

    def echo(task=None):
        task.register("echo")
        while True:
            msg = yield task.receive()
            if msg[0] == "echo":  # ('echo', reply_to, value): send value back
                msg[1].send(msg[2])
            elif msg[0] == "ended":  # a reference to a task of this node that has ended
                ended = pycos.Task(short)
                yield ended.finish(timeout=10)
                msg[1].send(ended)
            elif msg[0] == "allow":  # accept this program's own classes from the network
                if hasattr(pycos, "serialize_allow"):
                    pycos.serialize_allow(Point, Pair)
                msg[1].send("allowed")
            elif msg[0] == "quit":
                break

    pycos.Task(echo)
    print(f"ready {node.location}", flush=True)
    sys.stdin.read()  # until the first node closes it


# ====================================================================== the first node
def start_child(udp_port, secret, dest):
    flags = [flag for flag, on in (("-E", sys.flags.ignore_environment),
                                   ("-s", sys.flags.no_user_site)) if on]
    child = subprocess.Popen([sys.executable, *flags, os.path.abspath(__file__), "child",
                              str(udp_port), secret, dest], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()

    def read():
        for line in child.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # other lines may come first (logs)
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line.startswith("ready "):
            return child, line.split()[1]
    return child, None


def stop_child(child):
    """Close the second node's input; True if it then ends by itself (status 0) within 20 s."""
    try:
        child.stdin.close()
        return child.wait(timeout=20) == 0
    except (OSError, subprocess.TimeoutExpired):
        child.kill()
        child.wait(timeout=10)
        return False


def names():
    observe("Location exists before import pycos.netpycos", lambda: hasattr(pycos, "Location"))
    net = importlib.import_module("pycos.netpycos")  # as 'import pycos.netpycos' does
    observe("pycos.Pycos is pycos.netpycos.Pycos", lambda: pycos.Pycos is net.Pycos)
    observe("pycos.Location is pycos.netpycos.Location", lambda: pycos.Location is net.Location)
    for name in ("RPS", "RTI", "PeerStatus"):
        observe(f"pycos.{name} is pycos.netpycos.{name}",
                lambda name=name: getattr(pycos, name) is getattr(net, name))
    observe("pycos.RPS is pycos.RTI", lambda: pycos.RPS is pycos.RTI)
    observe("PeerStatus Online, Offline", lambda: (pycos.PeerStatus.Online,
                                                   pycos.PeerStatus.Offline))
    observe("PeerStatus fields", lambda: vars_of(pycos.PeerStatus(
        pycos.Location("127.0.0.1", 9705), "n", pycos.PeerStatus.Online)))
    observe("pycos.SysTask is a Task class", lambda: issubclass(pycos.SysTask, pycos.Task))
    observe("after import: Location('127.0.0.1', '9705') == Location('127.0.0.1', 9705)",
            lambda: pycos.Location("127.0.0.1", "9705") == pycos.Location("127.0.0.1", 9705))
    observe("after import: their hashes equal",
            lambda: hash(pycos.Location("127.0.0.1", "9705")) ==
            hash(pycos.Location("127.0.0.1", 9705)))
    observe("after import: port of Location('127.0.0.1', '9705')",
            lambda: repr(pycos.Location("127.0.0.1", "9705").port))
    observe("Location('localhost', 9705).addr", lambda: pycos.Location("localhost", 9705).addr)


def vars_of(status):
    return (str(status.location), status.name, status.status)


def idle(task=None):
    msg = yield task.receive(timeout=20)
    return msg


def main_task(node, udp_b, child_location, task=None):
    statuses = pycos.Task(collect_status)
    node.peer_status(statuses)
    yield from with_child(node, statuses, udp_b, child_location, task)


def collect_status(task=None):
    """Gathers PeerStatus messages; ('wait', name, reply_to) asks for the Online status of the
    peer called name, sent to reply_to as soon as it is known."""
    task.set_daemon()
    seen, waiters = [], []
    while True:
        msg = yield task.receive()
        if isinstance(msg, tuple):
            waiters.append(msg)
        else:
            seen.append(msg)
        for waiter in list(waiters):
            found = [s for s in seen if s.name == waiter[1] and
                     s.status == netpycos().PeerStatus.Online]
            if found:
                waiters.remove(waiter)
                waiter[2].send(found[-1])


def wait_online(statuses, name, task):
    """The Online PeerStatus of peer ``name`` (None if not seen within 10 s)."""
    waiter = pycos.Task(receive_one)  # its own task, so a late answer reaches no one else
    statuses.send(("wait", name, waiter))
    return (yield waiter.finish(timeout=12))


def receive_one(task=None):
    return (yield task.receive(timeout=10))


def with_child(node, statuses, udp_b, child_location, task):
    # A node started with discover_peers=False still answers peer() by UDP.
    try:
        reply = yield node.peer("127.0.0.1", udp_port=udp_b)
    except Exception as exc:
        reply = failure(exc)
    show("peer('127.0.0.1', udp_port=P) returns", reply)
    status = yield from wait_online(statuses, "child", task)
    show("peer('127.0.0.1', udp_port=P) reached the discover_peers=False node",
         status is not None)
    if status is None:  # so that the observations below are still made
        addr, port = child_location.rsplit(":", 1)
        yield node.peer(netpycos().Location(addr, int(port)))
        status = yield from wait_online(statuses, "child", task)
        show("fallback: peer(Location(host, tcp_port)) reached it", status is not None)
        if status is None:
            return
    show("its location is on 127.0.0.1", status.location.addr == "127.0.0.1")
    echo = yield pycos.Task.locate("echo", location=status.location, timeout=10)
    show("Task.locate('echo', location)", echo is not None and echo.location == status.location)
    if echo is None:
        return
    yield from task_references(echo, task)
    yield from ended_reference(echo, task)
    yield from own_classes(echo, task, "before serialize_allow")
    echo.send(("allow", task))
    show("the second node allowed Point and Pair", (yield task.receive(timeout=10)))
    if hasattr(pycos, "serialize_allow"):
        pycos.serialize_allow(Point, Pair)
    yield from own_classes(echo, task, "after serialize_allow")
    echo.send(("quit",))


def task_references(echo, task):
    """Local task references that travel to the other node and back."""
    other = pycos.Task(idle)
    for label, ref in (("the sending task", task), ("another local task", other)):
        echo.send(("echo", task, ref))
        back = yield task.receive(timeout=10)
        show(f"{label} sent there and back: received", back is not None)
        if back is None:
            continue
        observe(f"{label} sent there and back: == local", lambda b=back, r=ref: b == r)
        observe(f"{label} sent there and back: != local", lambda b=back, r=ref: b != r)
        observe(f"{label} sent there and back: same hash",
                lambda b=back, r=ref: hash(b) == hash(r))
        observe(f"{label} sent there and back: found in a dict",
                lambda b=back, r=ref: {r: 1}.get(b))
    back_other = (yield from echo_value(echo, task, other))
    if back_other is not None:
        back_other.send("via the returned reference")
        show("message via the returned reference reaches the task",
             (yield other.finish(timeout=10)))


def echo_value(echo, task, value):
    echo.send(("echo", task, value))
    return (yield task.receive(timeout=10))


def ended_reference(echo, task):
    echo.send(("ended", task))
    ended = yield task.receive(timeout=10)
    if ended is None:
        show("deliver to an ended remote task returns", "no reference received")
        return
    try:
        result = yield ended.deliver("too late", timeout=5)
    except Exception as exc:
        result = failure(exc)
    show("deliver to an ended remote task returns", result)


def own_classes(echo, task, phase):
    """Objects of this program's own classes sent to the other node and back."""
    for label, value in (("Point", Point(1, 2)), ("namedtuple Pair", Pair(3, 4))):
        for how in ("send", "deliver"):
            key = f"{label} by {how}, {phase}"
            try:
                if how == "send":
                    echo.send(("echo", task, value))
                else:
                    yield echo.deliver(("echo", task, value), timeout=10)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                text = str(exc)
                show(key, f"raises {type(exc).__name__} in the sender; names the class: "
                          f"{type(value).__name__ in text}; names pycos.serialize_allow: "
                          f"{'pycos.serialize_allow' in text}")
                continue
            back = yield task.receive(timeout=10)
            show(key, f"delivered {back!r}; equal: {back == value}; same type: "
                      f"{type(back) is type(value)}")


def wrong_arguments(task=None):
    channel = pycos.Channel("compat_wrong_args")
    results = []
    for label, call in (("subscribe(42)", lambda: channel.subscribe(42)),
                        ("deliver(msg, n=-1)", lambda: channel.deliver("m", n=-1))):
        try:
            results.append((label, (yield call())))
        except Exception as exc:
            results.append((label, f"raises {type(exc).__name__}"))
    return results


def first_main(udp_a, udp_b, dest):
    secret = secrets.token_hex(8)
    try:
        node = netpycos().Pycos(**node_options(udp_a, secret, os.path.join(dest, "a")))
    except Exception as exc:
        show("first node started", failure(exc))
        return
    show("first node started", True)
    observe("dest_path exists as a directory", lambda: os.path.isdir(node.dest_path))

    def assign_dest_path():
        path = os.path.join(node.dest_path, "scripts")
        node.dest_path = path
        return node.dest_path == path, os.path.isdir(path)

    observe("dest_path assigned a subdirectory: taken, created", assign_dest_path)
    observe("scheduler.locations: list of the node's Location", lambda: (
        type(node.locations).__name__, [loc == node.location for loc in node.locations]))
    observe("pycos.Pycos.instance() is the node", lambda: pycos.Pycos.instance() is node)
    observe("default name: the host name", lambda: node.name == socket.gethostname())
    observe("default name: 'host:port' of the node", lambda: node.name == str(node.location))
    observe("wrong arguments", lambda: pycos.Task(wrong_arguments).value(timeout=10))
    child, child_location = start_child(udp_b, secret, os.path.join(dest, "b"))
    show("second node started", child_location is not None)
    try:
        if child_location is not None:
            pycos.Task(main_task, node, udp_b, child_location).value(timeout=120)
    except Exception as exc:
        show("main task", failure(exc))
    finally:  # not in a task: this waits, and a task must not block its scheduler
        show("second node ends by itself once its input is closed", stop_child(child))


if __name__ == "__main__":
    if sys.argv[1] == "child":
        child_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        print(f"# pycos {pycos.__version__} {pycos.__file__}", flush=True)
        names()
        first_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
        print("@ done", flush=True)
