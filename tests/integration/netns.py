"""A private test LAN made of Linux network namespaces (test helper, not a test module).

Owns :class:`Lan`: one "switch" namespace holding a bridge, and N "host" namespaces, each with
an ``eth0`` veth whose other end is a port of that bridge. Host ``i`` (1-based) has
``10.200.1.<i>/24`` (broadcast ``10.200.1.255``) and ``fd00:200:1::<i>/64`` on ``eth0``, and
``lo`` up. Every interface is created inside a namespace of the Lan (veth ends are created in
the switch namespace with their peer placed straight into the host namespace), so nothing is
ever added to, or sent on, the machine's own interfaces. Namespace names are unique per Lan
(pid + random suffix) and :meth:`Lan.close` deletes them all, also after a failed setup.

Also owns :class:`Proc`, a child process (usually run inside a host namespace) whose stdout
lines are collected by a thread, so tests wait for a line with a timeout; ``stop`` always ends
it (quit command, then terminate, then kill).

Needs root (``ip netns add``); :func:`netns_unavailable` says why a Lan cannot be made, so tests
can skip with that reason. Imports only the standard library.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["Lan", "Proc", "netns_unavailable", "SUBNET_V4", "SUBNET_V6"]

SUBNET_V4 = "10.200.1"
SUBNET_V6 = "fd00:200:1"
_CMD_TIMEOUT = 10.0


def _run(argv: Sequence[str]) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=_CMD_TIMEOUT,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def netns_unavailable() -> str | None:
    """None when network namespaces can be made here, else the reason they cannot."""
    name = f"pcprobe{os.getpid()}{secrets.token_hex(3)}"
    try:
        _run(["ip", "netns", "add", name])
    except FileNotFoundError:
        return "the 'ip' command is not installed"
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"cannot create network namespaces ('ip netns add' failed: {exc})"
    try:
        _run(["ip", "netns", "del", name])
    except (RuntimeError, subprocess.TimeoutExpired):
        pass
    return None


class Lan:
    """A bridge namespace with ``hosts`` host namespaces attached (context manager).

    Args:
        hosts: number of host namespaces (1..50).
        ipv6: also give each host an IPv6 address (DAD disabled so it is usable at once).
    """

    def __init__(self, hosts: int = 2, ipv6: bool = True) -> None:
        if not 1 <= hosts <= 50:
            raise ValueError(f"hosts must be 1..50, got {hosts}")
        tag = f"{os.getpid()}{secrets.token_hex(3)}"
        self.switch = f"pcsw{tag}"
        self.hosts = [f"pch{i}x{tag}" for i in range(1, hosts + 1)]
        self.ipv6 = ipv6
        self._made: list[str] = []

    # ------------------------------------------------------------------ addresses
    def ipv4(self, i: int) -> str:
        """IPv4 address of host ``i`` (1-based)."""
        return f"{SUBNET_V4}.{i}"

    def ipv6_addr(self, i: int) -> str:
        """IPv6 address of host ``i`` (1-based)."""
        return f"{SUBNET_V6}::{i}"

    @property
    def broadcast(self) -> str:
        """The IPv4 broadcast address of the LAN."""
        return f"{SUBNET_V4}.255"

    def exec_argv(self, i: int, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside host ``i`` (1-based)."""
        return ["ip", "netns", "exec", self.hosts[i - 1], *argv]

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> Lan:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_ns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._made.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _setup(self) -> None:
        sw = self.switch
        self._add_ns(sw)
        _run(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", sw, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"])
        _run(["ip", "-n", sw, "link", "set", "br0", "up"])
        for i, ns in enumerate(self.hosts, 1):
            self._add_ns(ns)
            if self.ipv6:
                for key in ("all", "default"):
                    _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                          f"net.ipv6.conf.{key}.accept_dad=0"])
            port = f"p{i}"
            _run(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                  "netns", ns])
            _run(["ip", "-n", sw, "link", "set", port, "master", "br0", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{self.ipv4(i)}/24", "brd", "+",
                  "dev", "eth0"])
            if self.ipv6:
                _run(["ip", "-n", ns, "addr", "add", f"{self.ipv6_addr(i)}/64", "dev", "eth0",
                      "nodad"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def close(self) -> None:
        """Delete every namespace this Lan made (host ends first, then the switch)."""
        errors = []
        for name in reversed(self._made):
            try:
                _run(["ip", "netns", "del", name])
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                errors.append(str(exc))
        self._made.clear()
        if errors:
            raise RuntimeError("could not delete test namespaces: " + "; ".join(errors))


class Proc:
    """A child process whose stdout lines are gathered in ``lines`` (thread-safe).

    Args:
        argv: the command line (e.g. from :meth:`Lan.exec_argv`).
        name: a label for messages.
    """

    def __init__(self, argv: Sequence[str], name: str = "") -> None:
        self.name = name or argv[-1]
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._popen = subprocess.Popen(list(argv), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, bufsize=1)
        self._stderr: list[str] = []
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_err(self) -> None:
        assert self._popen.stderr is not None
        for line in self._popen.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """What the process wrote on stderr so far."""
        return "".join(self._stderr)

    def wait_for(self, pred: Callable[[list[str]], bool], timeout: float,
                 what: str = "") -> None:
        """Wait until ``pred(lines)`` holds; AssertionError (with the output) on timeout or
        if the process ends first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(
                        f"{self.name}: {what or 'expected output'} not seen in {timeout} s; "
                        f"exit={self._popen.poll()} stdout={self.lines} stderr={self.stderr}")
                self._cond.wait(min(left, 0.2))

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The first line starting with ``prefix`` (waiting for it)."""
        self.wait_for(lambda ls: any(x.startswith(prefix) for x in ls), timeout, prefix)
        with self._cond:
            return next(x for x in self.lines if x.startswith(prefix))

    def send(self, command: str) -> None:
        """Write one command line to the process's stdin."""
        assert self._popen.stdin is not None
        self._popen.stdin.write(command + "\n")
        self._popen.stdin.flush()

    def stop(self, timeout: float = 5.0) -> None:
        """End the process: ``quit`` and end of input, then terminate, then kill."""
        if self._popen.poll() is None:
            try:
                self.send("quit")
                assert self._popen.stdin is not None
                self._popen.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.terminate()
                try:
                    self._popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._popen.kill()
                    self._popen.wait(timeout)
        for stream in (self._popen.stdin, self._popen.stdout, self._popen.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
