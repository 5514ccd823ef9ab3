"""Process plumbing shared by the multi-node examples.

Each example runs its other nodes by starting itself again with ``--role ROLE``; these helpers
start those children, relay their output, and stop them (closing a child's stdin tells it to
stop; whatever is still running after a grace period is killed). Not part of the pycos API.
"""

import os
import queue
import subprocess
import sys
import threading

import pycos.netpycos as netpycos

_out = threading.Lock()


def say(text):
    with _out:
        print(text, flush=True)


def start_role(role, *args):
    """Run the running example script again as ``--role ROLE``: another node in a process of
    its own. Its output is printed here, except lines starting with '@', which go to
    ``proc.control``; closing its stdin tells it to stop."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(sys.argv[0]), "--role", role, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    proc.control = queue.Queue()

    def relay():
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("@"):
                proc.control.put(line)
            else:
                say(line)

    proc.relay = threading.Thread(target=relay)
    proc.relay.start()
    return proc


def stop_all(procs):
    """Tell every child to stop, wait a little, kill what is left."""
    for proc in procs:
        proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.relay.join(timeout=5)


def stop_when_parent_closes_stdin(node):
    """A child node stops when its parent closes our stdin (or exits, or is killed)."""
    threading.Thread(target=lambda: (sys.stdin.read(), node.terminate()), daemon=True).start()


def location(text):
    host, _, port = text.rpartition(":")
    return netpycos.Location(host, int(port))
