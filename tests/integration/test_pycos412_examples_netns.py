"""pycos 4.12.2's own example programs, run unchanged against this repository's package.

The programs come from pycos 4.12.2's sdist, fetched from the package index at test time into a
cache (``tests/compat/fetch.py``; ``PYCOS412_EXAMPLES`` may name a copy instead): its
``py3.7/examples``, the files pip installs on Python >= 3.7. They are never stored here.

Each scenario runs on a private LAN of its own (``netns.Lan``: hosts ``10.200.1.<i>`` behind a
bridge, in namespaces this module creates), because the networked examples find each other by
UDP broadcast on port 9705 and the others bind fixed ports (8010, 3456) on every interface;
nothing is sent on the machine's own interfaces. A program runs as ``python -u <example>`` inside
a host namespace, with this checkout first on ``PYTHONPATH``, from a scratch directory (the
examples directory for ``hotswap.py``, which opens its sibling by a relative name) and with
``TMPDIR`` inside the test's temporary directory. Where a program reads commands, the test types
them (stdin) after the output that shows the program is ready for them. Stdout and stderr are
read as one stream (the release logs on stdout, this package on stderr). Every wait has a
deadline; at the end each program is stopped (end of input, then terminate, then kill) and any
process left in the scenario's namespaces is killed.

"Pass" means what each example is written to show: exit status 0 where the program ends by
itself, and the lines it must print (values checked: sums, checksums, message sets). Examples
not run are listed in ``NOT_RUN`` with the reason; a test checks that every example file is
either run or listed.

``PYCOS_EXAMPLES_REFERENCE=1`` runs the same scenarios on the released pycos 4.12.2
(``bench/.venv-ref``) instead of this checkout: a check of the scenarios themselves. There each
program gets a private UTS namespace whose host name is its LAN address (pycos 4.12 without the
optional ``netifaces`` takes its address from the host name), and the few places where the
release itself differs on Python 3.11 are noted where they are checked.

Skipped, with the reason, when namespaces cannot be created or the examples cannot be fetched.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from compat.fetch import FetchError, examples_or_skip, reference_python  # noqa: E402
from netns import Lan, netns_unavailable  # noqa: E402

if not sys.platform.startswith("linux"):
    pytest.skip("network namespaces are a Linux feature", allow_module_level=True)
_WHY = netns_unavailable()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)

#: Seconds to wait for one expected output, or for a program to end.
WAIT = 20.0
REFERENCE = os.environ.get("PYCOS_EXAMPLES_REFERENCE", "") not in ("", "0")
#: Extra seconds for the first test, which may download the examples (or build the venv).
SETUP_TIME = 300 if REFERENCE else 120

#: Every example of pycos 4.12.2 that is not run here, with the reason.
NOT_RUN: dict[str, str] = {
    **{name: "needs dispycos, which is not part of this package" for name in (
        "dispycos_client1.py", "dispycos_client2.py", "dispycos_client3.py",
        "dispycos_client4.py", "dispycos_client5.py", "dispycos_client7.py",
        "dispycos_client8.py", "dispycos_client9_node.py", "dispycos_client9_server.py",
        "dispycos_client10.py", "dispycos_kbd_int.py", "dispycos_live_analytics.py",
        "dispycos_live_analytics_channel.py", "dispycos_mas.py", "dispycos_mem_servers.py",
        "dispycos_remote_scheduler.py")},
    "dispycos_client5_proc.py": "helper program that dispycos_client5.py runs on dispycos "
                                "servers (dispycos is not part of this package)",
    "dispycos_cloud_computing.py": "needs dispycos and Amazon EC2 nodes reached over ssh",
    "dispycos_ssh_ec2.py": "needs dispycos and Amazon EC2 nodes reached over ssh port forwarding",
    "dispycos_httpd1.py": "needs dispycos and its httpd module, watched in a web browser",
    "dispycos_httpd2.py": "needs dispycos and its httpd module, watched in a web browser",
}
# hotswap_funcs.py (loaded by hotswap.py) and node_update_script.py (run by rps_node_server.py
# for its client) are not programs of their own; their scenarios list them.


# ---------------------------------------------------------------------- running programs
class Program:
    """A program inside a host namespace; stdout and stderr are gathered as one text.

    Output is read in raw chunks (not lines), so prompts written without a newline are seen.
    """

    def __init__(self, argv: list[str], name: str, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self._popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, cwd=cwd, env=env)
        self._text = ""
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        fd = self._popen.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                self._text += decoder.decode(chunk, final=not chunk)
                if not chunk:
                    self._eof = True
                self._cond.notify_all()
            if not chunk:
                return

    @property
    def text(self) -> str:
        """Everything the program wrote so far (stdout and stderr)."""
        with self._cond:
            return self._text

    @property
    def running(self) -> bool:
        return self._popen.poll() is None

    @property
    def status(self) -> int | None:
        """The exit status, or None while it runs."""
        return self._popen.poll()

    def wait_for(self, pred: Callable[[str], bool], what: str, timeout: float = WAIT) -> str:
        """Wait until ``pred(text)`` holds; AssertionError with the output on timeout or if the
        program ends first. Returns the text."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self._text):
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(
                        f"{self.name}: {what} not seen within {timeout} s "
                        f"(exit status {self._popen.poll()}); output:\n{self._text}")
                self._cond.wait(min(left, 0.5))
            return self._text

    def wait_text(self, needle: str, timeout: float = WAIT, count: int = 1) -> str:
        """Wait until ``needle`` occurs ``count`` times in the output."""
        return self.wait_for(lambda t: t.count(needle) >= count,
                             f"{needle!r}" + (f" x{count}" if count > 1 else ""), timeout)

    def wait_re(self, pattern: str, timeout: float = WAIT, count: int = 1) -> list[re.Match]:
        """Wait until ``pattern`` (multiline) matches ``count`` times; the matches."""
        rx = re.compile(pattern, re.M)
        text = self.wait_for(lambda t: len(rx.findall(t)) >= count,
                             f"/{pattern}/" + (f" x{count}" if count > 1 else ""), timeout)
        return list(rx.finditer(text))

    def send(self, line: str) -> None:
        """Type one line on the program's standard input."""
        assert self._popen.stdin is not None
        try:
            self._popen.stdin.write(line.encode() + b"\n")
            self._popen.stdin.flush()
        except OSError as exc:  # it has ended
            raise AssertionError(f"{self.name}: cannot type {line!r} ({exc}; exit status "
                                 f"{self._popen.poll()}); output:\n{self.text}") from None

    def close_input(self) -> None:
        """End of input."""
        if self._popen.stdin is not None and not self._popen.stdin.closed:
            try:
                self._popen.stdin.close()
            except OSError:
                pass

    def interrupt(self) -> None:
        """Send SIGINT (as Ctrl-C would)."""
        self._popen.send_signal(signal.SIGINT)

    def wait_exit(self, timeout: float = WAIT) -> int:
        """Wait for the program to end; its exit status. Its output is read by then, unless a
        process it started still holds the output open (then what came within 2 s)."""
        try:
            status = self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not end within {timeout} s; output:\n"
                                 f"{self.text}") from None
        self._reader.join(2)
        return status

    def end(self) -> None:
        """End the program: end of input, then terminate, then kill."""
        self.close_input()
        for action in (None, self._popen.terminate, self._popen.kill):
            if self._popen.poll() is not None:
                break
            if action is not None:
                action()
            try:
                self._popen.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def release(self) -> None:
        """After :meth:`end` (and after anything it started is gone): stop reading."""
        self._reader.join(5)
        if self._popen.stdout is not None:
            self._popen.stdout.close()


class Scene:
    """One scenario's LAN, the programs it started, and ways to run and watch them."""

    def __init__(self, lan: Lan, examples: Path, python: list[str], env: dict[str, str],
                 tmp: Path) -> None:
        self.lan = lan
        self.examples = examples
        self.python = python
        self.env = env
        self.tmp = tmp
        self.programs: list[Program] = []

    def ip(self, host: int) -> str:
        return self.lan.ipv4(host)

    def _argv(self, host: int, example: str, args: tuple[str, ...]) -> list[str]:
        argv = [*self.python, str(self.examples / example), *args]
        if REFERENCE:
            # Without the optional 'netifaces' package (not in the reference venv) pycos 4.12
            # takes its address from the host name; in a private UTS namespace the host name is
            # the host's LAN address.
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.ip(host),
                    *argv]
        return self.lan.exec_argv(host, argv)

    def _env(self, tmpdir: Path | None) -> dict[str, str]:
        tmpdir = tmpdir or self.tmp / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        return dict(self.env, TMPDIR=str(tmpdir))

    def start(self, host: int, example: str, *args: str, name: str = "",
              cwd: Path | None = None, tmpdir: Path | None = None) -> Program:
        """Start ``example`` on host ``host`` (1-based); it is stopped when the scenario ends."""
        prog = Program(self._argv(host, example, args), name or example, cwd or self.tmp,
                       self._env(tmpdir))
        self.programs.append(prog)
        return prog

    def run(self, host: int, example: str, *args: str, timeout: float = WAIT,
            cwd: Path | None = None) -> tuple[int, str]:
        """Run ``example`` to its end (no input); (exit status, stdout + stderr)."""
        prog = self.start(host, example, *args, cwd=cwd)
        prog.close_input()
        return prog.wait_exit(timeout), prog.text

    def command(self, host: int, argv: list[str], timeout: float = WAIT) -> str:
        """Run a helper command inside host ``host``; its stdout (fails on error)."""
        proc = subprocess.run(self.lan.exec_argv(host, argv), capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert proc.returncode == 0, f"{argv} failed: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def wait_bound(self, prog: Program, host: int, port: int, proto: str = "tcp",
                   timeout: float = WAIT) -> None:
        """Wait until a socket of host ``host`` listens on (tcp) or is bound to (udp) ``port``;
        fails at once if ``prog``, which is to open it, ends first."""
        flag = {"tcp": "-Hltn", "udp": "-Hlun"}[proto]
        deadline = time.monotonic() + timeout
        while not self.command(host, ["ss", flag, f"sport = :{port}"]).strip():
            if not prog.running:
                raise AssertionError(f"{prog.name} ended (exit status {prog.status}) before "
                                     f"opening {proto} port {port}")
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing on {proto} port {port} of host {host} within "
                                     f"{timeout} s")
            time.sleep(0.05)

    def outputs(self) -> str:
        """The output of every program so far (the last 60 lines of each)."""
        return "\n".join(f"--- {p.name} (exit status {p.status}):\n" +
                         "\n".join(p.text.splitlines()[-60:]) for p in self.programs)

    def close(self) -> None:
        """Stop every program, then kill whatever still runs in the scenario's namespaces
        (e.g. processes a program started and left behind)."""
        for prog in self.programs:
            prog.end()
        for ns in self.lan.hosts:
            proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  timeout=10, check=False)
            for pid in proc.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for prog in self.programs:
            prog.release()


def _exit_ok(prog: Program, timeout: float = WAIT) -> str:
    """Wait for ``prog`` to end; assert status 0; its output."""
    status = prog.wait_exit(timeout)
    assert status == 0, f"{prog.name} exited with {status}; output:\n{prog.text}"
    return prog.text


def _no_traceback(prog: Program) -> None:
    assert "Traceback" not in prog.text, f"{prog.name} printed a traceback:\n{prog.text}"


def _quit(prog: Program, timeout: float = WAIT) -> str:
    """Type ``quit``; the program must end with status 0. Its output."""
    prog.send("quit")
    return _exit_ok(prog, timeout)


def _ping_until_seen(sender: Program, receiver: Program, tag: str,
                     timeout: float = WAIT) -> str:
    """Type ``<tag>-1``, ``<tag>-2`` … into ``sender`` (one each 0.3 s, at most
    ``timeout``/0.3) until ``receiver`` shows one of them; returns the receiver's text.

    Chat clients show nothing when they have joined, so the first message that goes through
    proves both ends are registered with the server."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline and sender.running and receiver.running:
        n += 1
        sender.send(f"{tag}-{n}")
        next_line = time.monotonic() + 0.3
        try:
            return receiver.wait_text(f"{tag}-", timeout=0.3)
        except AssertionError:
            time.sleep(max(0.0, next_line - time.monotonic()))  # pace: one line per 0.3 s
    raise AssertionError(f"none of {n} lines typed into {sender.name} reached {receiver.name}")


# ---------------------------------------------------------------------- scenarios
SCENARIOS: list[Any] = []
RUN: set[str] = set()


def scenario(sid: str, programs: list[str], hosts: int = 1,
             timeout: float = 90) -> Callable[[Callable[[Scene], None]], Callable[[Scene], None]]:
    """Register a scenario: its id, the example files it runs, the hosts of its LAN."""
    def register(fn: Callable[[Scene], None]) -> Callable[[Scene], None]:
        RUN.update(programs)
        SCENARIOS.append(pytest.param(fn, hosts, id=sid,
                                      marks=pytest.mark.timeout(timeout + SETUP_TIME)))
        return fn
    return register


@scenario("channel", ["channel.py"])
def _channel(scene: Scene) -> None:
    status, out = scene.run(1, "channel.py")
    assert status == 0, out
    sent = [float(x) for x in re.findall(r"^sent (\S+)$", out, re.M)]
    assert len(sent) == 4, out
    total = float(re.search(r"^sum: (\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    prod = float(re.search(r"^prod: (\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert math.isclose(total, math.fsum(sent), abs_tol=1e-5), out
    assert math.isclose(prod, math.prod(sent), rel_tol=1e-4), out


@scenario("tasks", ["tasks.py"])
def _tasks(scene: Scene) -> None:
    status, out = scene.run(1, "tasks.py")
    assert status == 0, out
    starts = {int(m[1]): (float(m[0]), float(m[2])) for m in re.findall(
        r"^(\S+): process (\d+) sleeping for (\S+) seconds$", out, re.M)}
    ends = {int(m[1]): float(m[0]) for m in re.findall(
        r"^(\S+): process (\d+) terminating$", out, re.M)}
    assert set(starts) == set(ends) == set(range(10)), out
    for n, (t0, delay) in starts.items():  # each slept for the time it announced
        assert delay - 0.05 <= ends[n] - t0 <= delay + 2.0, (n, t0, delay, ends[n])


@scenario("client_server", ["client_server.py"])
def _client_server(scene: Scene) -> None:
    status, out = scene.run(1, "client_server.py", timeout=30)
    assert status == 0, out
    got = [tuple(map(int, m)) for m in re.findall(
        r"^Received msg_id (\d+): client (\d+), msg (\d+)$", out, re.M)]
    assert sorted(m[0] for m in got) == list(range(1, 31)), out
    for client in range(10):  # each client's 3 messages, in order
        assert [m[2] for m in got if m[1] == client] == [0, 1, 2], out


@scenario("hotswap", ["hotswap.py", "hotswap_funcs.py"])
def _hotswap(scene: Scene) -> None:
    prog = scene.start(1, "hotswap.py", cwd=scene.examples)
    prog.wait_re(r"received: 1$")
    prog.send("client")  # the client's function becomes client_proc2, counting from 42 by 2
    prog.wait_re(r"  \* \S+: sending 42$")
    prog.send("server")  # the server checks the new function's name, then takes it
    prog.wait_text("new function: server_proc2, 2")
    match = prog.wait_re(r"  \* \S+ received: (\d+),  (log|sqrt)=(\S+)$", timeout=30)[0]
    n, fname, value = int(match[1]), match[2], match[3]
    assert n >= 42 and n % 2 == 0, prog.text
    assert value == f"{getattr(math, fname)(n):.2f}", prog.text
    _quit(prog)
    _no_traceback(prog)


@scenario("udp", ["udp.py"])
def _udp(scene: Scene) -> None:
    status, out = scene.run(1, "udp.py")
    assert status == 0, out
    got = re.findall(r"^Received \"b'client socket: (\d+)'\" from 127\.0\.0\.1:\d+$", out, re.M)
    assert len(got) == 50, out


@scenario("sock_server_client", ["sock_server.py", "sock_client.py"])
def _sock(scene: Scene) -> None:
    server = scene.start(1, "sock_server.py")
    scene.wait_bound(server, 1, 8010)
    status, out = scene.run(1, "sock_client.py")
    assert status == 0, out
    assert sorted(int(x) for x in re.findall(r"^(\d+) connected$", out, re.M)) == list(range(10))
    got = [m.group(1) for m in server.wait_re(r"recieved: b'(\d+): -+/'", count=10)]
    assert sorted(map(int, got)) == list(range(10)), server.text
    for dashes in re.findall(r"recieved: b'\d+: (-+)/'", server.text):
        assert 100 <= len(dashes) <= 300, server.text
    assert "Received 10 messages" in _quit(server)


@scenario("webserver", ["webserver.py"])
def _webserver(scene: Scene) -> None:
    server = scene.start(1, "webserver.py")
    scene.wait_bound(server, 1, 8010)
    client = ("import http.client\n"
              "for _ in range(20):\n"
              "    c = http.client.HTTPConnection('127.0.0.1', 8010, timeout=5)\n"
              "    c.request('GET', '/')\n"
              "    r = c.getresponse()\n"
              "    print(r.status, r.read().decode())\n"
              "    c.close()\n")
    out = scene.command(1, [sys.executable, "-c", client])
    assert out.splitlines() == ["200 Pong!"] * 20, out
    _quit(server)
    _no_traceback(server)


@scenario("socket_afile", ["socket_afile.py"])
def _socket_afile(scene: Scene) -> None:
    data = scene.tmp / "input.txt"
    data.write_text("".join(f"line {i}: {'x' * (i % 70)}\n" for i in range(4000)))
    digest = hashlib.sha1(data.read_bytes()).hexdigest()
    status, out = scene.run(1, "socket_afile.py", str(data))
    assert status == 0, out
    assert f"client sha1 csum: {digest}" in out, out
    assert f"server sha1 csum: {digest}" in out, out
    assert int(re.search(r"^chunks: (\d+)$", out, re.M).group(1)) >= 1  # type: ignore[union-attr]


@scenario("pipe_csum", ["pipe_csum.py"])
def _pipe_csum(scene: Scene) -> None:
    data = scene.tmp / "input.txt"
    data.write_text("".join(f"row {i}\n" for i in range(20000)))
    digest = hashlib.sha1(data.read_bytes()).hexdigest()
    status, out = scene.run(1, "pipe_csum.py", str(data))
    assert status == 0, out
    assert f"communicate sha1sum: b'{digest}  -\\n'" in out, out
    assert f"     feeder sha1sum: b'{digest}  -\\n'" in out, out


@scenario("pipe_grep", ["pipe_grep.py"])
def _pipe_grep(scene: Scene) -> None:
    kinds = ["ERROR in step", "an Error at step", "all fine at step", "no errors in step", "ok"]
    lines = [f"{kinds[i % 5]} {i}\n" for i in range(300)]
    data = scene.tmp / "input.log"
    data.write_text("".join(lines))
    matching = [ln for ln in lines if "error" in ln.lower()]
    expected = [len(matching), sum(len(ln.split()) for ln in matching),
                sum(len(ln.encode()) for ln in matching)]
    status, out = scene.run(1, "pipe_grep.py", str(data))
    assert status == 0, out
    counts = re.findall(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.M)
    assert [list(map(int, c)) for c in counts] == [expected], out


def _chat_pair(scene: Scene, server_name: str) -> None:
    """chat_server*.py on host 1, two chat_client.py on hosts 2 and 3."""
    server = scene.start(1, server_name)
    server.wait_text("server at ")
    a = scene.start(2, "chat_client.py", scene.ip(1), name="client A")
    b = scene.start(3, "chat_client.py", scene.ip(1), name="client B")
    _ping_until_seen(b, a, "ping-B")  # both clients are now registered with the server
    a.send("hello from A")
    # The server formats the bytes that recv_msg returned with '%s'. pycos 4.12 returns a
    # bytearray there; this package deliberately returns bytes (SPEC: recv_msg gives bytes).
    pre, post = map(re.escape, ("bytearray(b'", "')") if REFERENCE else ("b'", "'"))
    b.wait_re(rf"^  \d+ says: {pre}hello from A{post}$")
    assert re.search(rf"^  \d+ says: {pre}ping-B-\d+{post}$", a.text, re.M), a.text
    assert "hello from A" not in a.text  # the server does not echo to the sender
    for client in (a, b):
        _quit(client)
        _no_traceback(client)
    _quit(server)
    _no_traceback(server)


@scenario("chat_server_client", ["chat_server.py", "chat_client.py"], hosts=3)
def _chat(scene: Scene) -> None:
    _chat_pair(scene, "chat_server.py")


@scenario("chat_server2_client", ["chat_server2.py", "chat_client.py"], hosts=3)
def _chat2(scene: Scene) -> None:
    _chat_pair(scene, "chat_server2.py")


@scenario("chat_sock_server_client", ["chat_sock_server.py", "chat_sock_client.py"], hosts=3)
def _chat_sock(scene: Scene) -> None:
    server = scene.start(1, "chat_sock_server.py")
    server.wait_text("Ctrl-C to terminate server")
    a = scene.start(2, "chat_sock_client.py", scene.ip(1), name="client A")
    id_a = a.wait_re(r"^id: (\d+)$")[0][1]
    b = scene.start(3, "chat_sock_client.py", scene.ip(1), name="client B")
    id_b = b.wait_re(r"^id: (\d+)$")[0][1]
    a.wait_text(f"{id_b} joined\n")  # B's arrival was announced, so B now hears broadcasts
    a.send("hello from A")
    b.wait_text(f"{id_a} says: hello from A\n")
    b.send("hi from B")
    a.wait_text(f"{id_b} says: hi from B\n")
    _quit(b)
    a.wait_text(f"{id_b} left\n")
    _quit(a)
    for client in (a, b):
        _no_traceback(client)
    server.interrupt()  # the server ends on Ctrl-C
    _exit_ok(server)


@scenario("chat_chan_server_client", ["chat_chan_server.py", "chat_chan_client.py"], hosts=3,
          timeout=120)
def _chat_chan(scene: Scene) -> None:
    # The server's channel has a transform: "says: " before each line, upper-case lines dropped,
    # 'bye' shown as "left :-(". pycos 4.12.2 on Python >= 3.11 ignores it (it checks the
    # function with inspect.getargspec, which 3.11 removed), so the reference run sees the
    # lines untransformed; this package must apply it. pycos 4.12.2 may also fail here at
    # random: its Task.locate takes the first answer, so the other client's "not here" can beat
    # the server's reply ('Could not locate server'); this package waits for a positive answer
    # (SPEC 3.5).
    says, left = ("", "bye") if REFERENCE else ("says: ", "left :-(")
    server = scene.start(1, "chat_chan_server.py")
    scene.wait_bound(server, 1, 9705, "udp")
    a = scene.start(2, "chat_chan_client.py", name="client A")
    b = scene.start(3, "chat_chan_client.py", name="client B")
    text = _ping_until_seen(b, a, "ping-B", timeout=30)  # both subscribed to the channel
    id_b = re.search(rf"^    (\d+) {says}ping-B-\d+$", text, re.M)
    assert id_b, text
    a.send("SHOUTING IS DROPPED")
    a.send("hello from A")
    id_a = b.wait_re(rf"^    (\d+) {says}hello from A$")[0][1]
    assert id_a != id_b[1], (a.text, b.text)
    if not REFERENCE:
        assert "SHOUTING" not in b.text, b.text
    _quit(a)
    b.wait_text(f"    {id_a} {left}\n")
    _quit(b)
    for client in (a, b):
        _no_traceback(client)
    _quit(server)
    _no_traceback(server)


@scenario("remote_task_server_client", ["remote_task_server.py", "remote_task_client.py"],
          hosts=2)
def _remote_task(scene: Scene) -> None:
    server = scene.start(1, "remote_task_server.py")
    scene.wait_bound(server, 1, 9705, "udp")
    client = scene.start(2, "remote_task_client.py")
    client.close_input()
    _exit_ok(client, 60)
    _no_traceback(client)
    done = server.wait_re(r"  done with msg_id (\d+): client (\d+), msg (\d+)$", count=30)
    got = sorted(tuple(map(int, m.groups())) for m in done)
    assert [m[0] for m in got] == list(range(1, 31)), server.text
    assert sorted(m[1:] for m in got) == [(c, x) for c in range(10) for x in range(3)]
    assert server.text.count("processing msg_id") == 30, server.text
    _quit(server)
    _no_traceback(server)


@scenario("remote_channel_server_client",
          ["remote_channel_server.py", "remote_channel_client.py"], hosts=2)
def _remote_channel(scene: Scene) -> None:
    server = scene.start(1, "remote_channel_server.py")
    scene.wait_bound(server, 1, 9705, "udp")
    client = scene.start(2, "remote_channel_client.py")
    client.close_input()
    out = _exit_ok(client, 60)
    _no_traceback(client)
    assert re.search(rf"^server is at {re.escape(scene.ip(1))}:\d+$", out, re.M), out
    assert out.count("  Delivered to: 2\n") == 10, out
    sender = rf"from sender_proc at {re.escape(scene.ip(2))}:\d+$"
    got = re.findall(rf"^Received \"(.*)\" {sender}", out, re.M)
    assert got == [f"message {x}" for x in range(10)] + ["None"], out
    server.wait_text("Received \"None\"")
    assert " receiver subscribed" in server.text, server.text
    got = re.findall(rf"Received \"(.*)\" {sender}", server.text, re.M)
    assert got == [f"message {x}" for x in range(10)] + ["None"], server.text
    _quit(server)
    _no_traceback(server)


@scenario("rps_monitor_server_client", ["rps_monitor_server.py", "rps_monitor_client.py"],
          hosts=2)
def _rps_monitor(scene: Scene) -> None:
    server = scene.start(1, "rps_monitor_server.py")
    scene.wait_bound(server, 1, 9705, "udp")
    client = scene.start(2, "rps_monitor_client.py")
    client.close_input()
    out = _exit_ok(client, 60)
    assert re.search(rf"^RPS is at {re.escape(scene.ip(1))}:\d+$", out, re.M), out
    # b=0 makes the served task fail; b=1..4 make it return the message it received. The
    # client's monitor logs each end (debug level, which the client sets).
    finished = re.findall(r"RPS \S+ finished with: msg:(\d)$", out, re.M)
    assert sorted(map(int, finished)) == [1, 2, 3, 4], out
    assert len(re.findall(r"RPS \S+ failed with: ", out)) == 1, out
    assert "invalid invocation: 0" in out, out
    assert len(re.findall(r"running rps_server\S* with test\d, \d", server.text)) == 5
    _quit(server)


@scenario("rps_pico_service_client", ["rps_pico_service.py", "rps_pico_client.py"], hosts=2)
def _rps_pico(scene: Scene) -> None:
    server = scene.start(1, "rps_pico_service.py")
    scene.wait_bound(server, 1, 9705, "udp")
    client = scene.start(2, "rps_pico_client.py", "3")
    client.close_input()
    out = _exit_ok(client, 60)
    _no_traceback(client)
    # The client logs at pycos's default level (INFO); each result names its server task.
    assert re.search(rf"pico service RPS is at {re.escape(scene.ip(1))}:\d+$", out, re.M), out
    assert len(re.findall(r"service task: pico_service\S*", out)) == 3, out
    results = re.findall(rf"result: (.+), from: pico_service\S*@{re.escape(scene.ip(1))}:\d+$",
                         out, re.M)
    assert len(results) == 3, out
    for stamp in results:
        time.strptime(stamp, "%a %b %d %H:%M:%S %Y")  # time.asctime() of the server
    _quit(server)
    _no_traceback(server)


@scenario("pico_service_client_task", ["pico_service_task.py", "pico_client_task.py"], hosts=2)
def _pico_task(scene: Scene) -> None:
    server = scene.start(1, "pico_service_task.py")
    scene.wait_bound(server, 1, 9705, "udp")
    client = scene.start(2, "pico_client_task.py")
    client.close_input()
    out = _exit_ok(client, 60)
    _no_traceback(client)
    assert re.search(rf"pico service task is at {re.escape(scene.ip(1))}:\d+$", out, re.M), out
    match = re.search(rf"result: (.+), from: pico_service\S*@{re.escape(scene.ip(1))}:\d+$",
                      out, re.M)
    assert match, out
    time.strptime(match[1], "%a %b %d %H:%M:%S %Y")
    assert "failed to get reply" not in out, out
    _quit(server)
    _no_traceback(server)


@scenario("rps_node_server_client",
          ["rps_node_server.py", "rps_node_client.py", "node_update_script.py"], hosts=2)
def _rps_node(scene: Scene) -> None:
    server_tmp = scene.tmp / "server-tmp"
    server = scene.start(1, "rps_node_server.py", tmpdir=server_tmp)
    server.send("open sesame")  # the authentication string both sides read first
    scene.wait_bound(server, 1, 9705, "udp")
    client = scene.start(2, "rps_node_client.py")
    client.send("open sesame")
    client.close_input()
    out = _exit_ok(client, 60)
    _no_traceback(client)
    assert re.search(rf"RPS server is at {re.escape(scene.ip(1))}:\d+$", out, re.M), out
    # The server received the script by send_file (into dest_path/rps_update_scripts), checked
    # the client's answer to its challenge, ran the script and sent back its output.
    assert re.search(r"script output: b'\S*node_update_script\.py done\\n'", out), out
    assert "script failed" not in out and "Could not" not in out, out
    match = server.wait_re(r"running (\S+) for client: ")[0]
    script = Path(match[1])
    assert script.parent.name == "rps_update_scripts", server.text
    assert script.read_bytes() == (scene.examples / "node_update_script.py").read_bytes()
    _quit(server)
    _no_traceback(server)


@scenario("rps_log_watch_server_client",
          ["rps_log_watch_server.py", "rps_log_watch_client.py"], hosts=2)
def _rps_log_watch(scene: Scene) -> None:
    log = scene.tmp / "auth.log"
    log.write_text("")
    server = scene.start(1, "rps_log_watch_server.py", str(log), "failed")
    scene.wait_bound(server, 1, 9705, "udp")
    client = scene.start(2, "rps_log_watch_client.py")
    server.wait_text("serving client")  # the client found the server and called its RPS
    with log.open("a") as f:
        f.write("sshd: auth failed for alice\nsshd: accepted bob\nsshd: FAILED for carol\n")
    ip = re.escape(scene.ip(1))
    client.wait_re(rf"{ip}: sshd: FAILED for carol$")
    assert re.search(rf"{ip}: sshd: auth failed for alice$", client.text, re.M), client.text
    assert "accepted bob" not in client.text, client.text
    _quit(client)  # closing its RPS reference ends the served task on the server
    _no_traceback(client)
    _quit(server)
    _no_traceback(server)


# ---------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def examples() -> Path:
    return examples_or_skip("pycos")


@pytest.fixture(scope="module")
def interpreter(examples: Path) -> tuple[list[str], dict[str, str]]:
    """The command line prefix running a program, and its environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if REFERENCE:
        try:
            return [str(reference_python()), "-E", "-s", "-u"], base
        except FetchError as exc:
            pytest.skip(str(exc))
    env = dict(base, PYTHONPATH=str(REPO))
    found = subprocess.run([sys.executable, "-c", "import pycos; print(pycos.__file__)"],
                           capture_output=True, text=True, env=env, cwd=examples, timeout=60)
    assert Path(found.stdout.strip()).parent == REPO / "pycos", found
    return [sys.executable, "-u"], env


@pytest.mark.timeout(SETUP_TIME + 60)
def test_every_example_is_run_or_listed(examples: Path) -> None:
    files = {p.name for p in examples.glob("*.py")}
    assert not RUN & set(NOT_RUN), RUN & set(NOT_RUN)
    assert files == RUN | set(NOT_RUN), {"neither run nor listed": files - RUN - set(NOT_RUN),
                                         "not in the release": (RUN | set(NOT_RUN)) - files}


@pytest.mark.parametrize("play, hosts", SCENARIOS)
def test_example(play: Callable[[Scene], None], hosts: int, examples: Path,
                 interpreter: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    python, env = interpreter
    with Lan(hosts=hosts, ipv6=False) as lan:
        scene = Scene(lan, examples, python, env, tmp_path)
        try:
            play(scene)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n\n=== outputs ===\n{scene.outputs()}") from None
        finally:
            scene.close()
