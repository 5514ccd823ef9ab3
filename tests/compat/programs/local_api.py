"""Observe pycos's local API the way a pycos 4.12 program uses it (no networking).

Run unchanged by both this package and the released pycos 4.12.2 (``test_side_by_side``), which
compares what they print. Each observation is one line ``@ key => value``; any other output
(pycos 4.12 logs on stdout) is ignored. An observation whose code fails prints
``@ key => error <ExceptionType>: <message>``. Ends with ``@ done``.
"""

import io
import re
import socket
import sys
import time
import traceback

import pycos


def observe(key, fn):
    """Print ``@ key => fn()``, or the error fn raised."""
    try:
        value = fn()
    except Exception as exc:  # the output records what failed
        traceback.print_exc(file=sys.stderr)
        value = f"error {type(exc).__name__}: {exc}"
    print(f"@ {key} => {value}", flush=True)


print(f"# pycos {pycos.__version__} {pycos.__file__}", flush=True)

# ------------------------------------------------------------------ Location before netpycos
observe("Location exists before import pycos.netpycos", lambda: hasattr(pycos, "Location"))


def location_facts(tag):
    def loc(port=9705):
        return pycos.Location("127.0.0.1", port)

    observe(f"{tag} Location repr", lambda: repr(loc()))
    observe(f"{tag} Location addr, port", lambda: (loc().addr, loc().port))
    observe(f"{tag} Location with port '9705': port", lambda: repr(loc("9705").port))
    observe(f"{tag} Location with port '9705' == with 9705", lambda: loc("9705") == loc())
    observe(f"{tag} their hashes equal", lambda: hash(loc("9705")) == hash(loc()))
    observe(f"{tag} one key in a dict", lambda: len({loc(): 1, loc("9705"): 2}))
    observe(f"{tag} != other port", lambda: loc() != loc(9706))


location_facts("before import:")


# ------------------------------------------------------------------ Singleton
def singleton_class():
    class Settings(metaclass=pycos.Singleton):
        def __init__(self, value=0):
            self.value = value

    return Settings


def singleton():
    settings = singleton_class()
    first, second = settings(1), settings(2)
    return first is second, second.value


def singleton_discard():
    settings = singleton_class()
    first = settings()
    pycos.Singleton.discard(settings)
    return settings(3) is not first


observe("Singleton: same instance, first value kept", singleton)
observe("Singleton.discard makes a new instance", singleton_discard)

# ------------------------------------------------------------------ serialize
DATA = {"a": [1, 2.5, "x", b"y", None, True], "t": (1, 2), "s": {3}, "n": {"k": -7}}


def serialize_round_trip():
    blob = pycos.serialize(DATA)
    return type(blob).__name__, pycos.deserialize(blob) == DATA


observe("serialize gives, deserialize restores", serialize_round_trip)

# ------------------------------------------------------------------ config
observe("config.MsgTimeout", lambda: repr(pycos.config.MsgTimeout))
observe("config.NetPort", lambda: repr(pycos.config.NetPort))


# ------------------------------------------------------------------ Struct
def struct_fields():
    s = pycos.Struct(a=1, b="two")
    s.a = 3
    return s.a, s.b


def struct_new_attribute():
    s = pycos.Struct(a=1)
    try:
        s.c = 4
    except AttributeError:
        return "AttributeError"
    return f"accepted, reads {s.c}"


observe("Struct fields, assignment", struct_fields)
observe("Struct: assigning a new attribute", struct_new_attribute)
observe("Struct missing attribute reads as", lambda: repr(pycos.Struct(a=1).missing))

# ------------------------------------------------------------------ SysTask, Logger
observe("SysTask exists", lambda: hasattr(pycos, "SysTask"))
observe("Logger levels", lambda: [pycos.Logger.DEBUG, pycos.Logger.INFO, pycos.Logger.WARNING,
                                  pycos.Logger.ERROR, pycos.Logger.CRITICAL])
observe("pycos.logger.level", lambda: pycos.logger.level)
observe("pycos.logger.level is Logger.INFO", lambda: pycos.logger.level == pycos.Logger.INFO)


def own_logger():
    buf = io.StringIO()
    log = pycos.Logger("x", stream=buf)
    first_level = log.level
    log.info("hello %s", 42)
    log.debug("hidden")
    log.setLevel(pycos.Logger.DEBUG)
    log.debug("shown")
    log.warning("warned")
    lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? ", "<time> ", line)
             for line in buf.getvalue().splitlines()]
    return first_level, lines


observe("Logger('x', stream=buf): level, lines", own_logger)


# ------------------------------------------------------------------ recvall / recv_msg types
def framed_pair(task=None):
    listener = pycos.AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = pycos.AsyncSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    client.settimeout(10)
    yield client.connect(listener.getsockname())
    conn, _ = yield listener.accept()
    conn.settimeout(10)
    yield conn.send_msg(b"framed")
    yield conn.sendall(b"rawbytes")
    msg = yield client.recv_msg()
    raw = yield client.recvall(8)
    for sock in (conn, client, listener):
        sock.close()
    return [(type(msg).__name__, bytes(msg)), (type(raw).__name__, bytes(raw))]


observe("recv_msg / recvall give", lambda: pycos.Task(framed_pair).value(timeout=15))


# ------------------------------------------------------------------ atexit and terminate
def forever(task=None):
    yield task.sleep(3600)


def terminate_runs_atexit():
    scheduler = pycos.Pycos.instance()
    calls = []
    scheduler.atexit(10, calls.append, "priority 10")
    scheduler.atexit(1, calls.append, "priority 1")
    pycos.Task(forever)  # not a daemon: terminate() must not wait for it
    start = time.monotonic()
    scheduler.terminate()
    return calls, time.monotonic() - start < 5


observe("terminate() runs atexit functions (order), promptly", terminate_runs_atexit)
print("@ done", flush=True)
