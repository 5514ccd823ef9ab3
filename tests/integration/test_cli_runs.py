"""``python -m pycos`` as people and scripts run it: real processes on 127.0.0.1.

A node runs as ``python -m pycos node`` (and, beside it, a node process of ``node_proc.py``
that makes it a peer); every query is a process of its own, ``python -m pycos peers / ping /
send / diag / version --json``, whose JSON document and exit status are checked: 0 success,
1 failure, 2 usage, 3 unreachable or timeout, 4 authentication refused (EXTRAS §6.1). Bad
inputs each get a clear message and their status. The progress bar of ``send`` is read from a
real terminal, a tmux pane. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import ChildProc, next_matching, started_by

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "cli secret 7f3a"
RUN_TIMEOUT = 30.0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYCOS_SECRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def pycos_cli(*args: Any, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pycos ARGS`` to its end (bounded)."""
    return subprocess.run([sys.executable, "-m", "pycos", *map(str, args)], cwd=cwd,
                          env=env or _env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def run_json(*args: Any, cwd: Path, expect: int = 0, env: dict[str, str] | None = None,
             timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """Run a query with ``--json``: its exit status must be ``expect``; its stdout one JSON
    document, returned."""
    result = pycos_cli(*args, "--json", cwd=cwd, env=env, timeout=timeout)
    assert result.returncode == expect, (f"pycos {' '.join(map(str, args))}: exit "
                                         f"{result.returncode}, expected {expect}\n"
                                         f"stdout: {result.stdout}\nstderr: {result.stderr}")
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    doc["_stderr"] = result.stderr
    return doc


class CliNode(ChildProc):
    """``python -m pycos node --json ...`` in a process of its own; its JSON events are
    collected by a thread."""

    def __init__(self, args: list[Any], cwd: Path, log: Path) -> None:
        super().__init__([sys.executable, "-m", "pycos", "node", "--json", *map(str, args)],
                         log, env=_env(), cwd=cwd, bufsize=1)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.read_lines()
        self.ready = ready = self.wait_event("ready", timeout=15)
        self.name: str = ready["name"]
        self.location: str = ready["location"]
        self.dest_path = Path(ready["dest_path"])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "garbage", "line": line})

    def wait_event(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        return next_matching(
            self.events,
            lambda ev: ev.get("event") == kind and all(ev.get(k) == v for k, v in match.items()),
            timeout, lambda: f"no {kind} event {match} within {timeout} s; log:\n{self.log()}")


@pytest.fixture
def cli_nodes(tmp_path: Path) -> Iterator[Callable[..., CliNode]]:
    yield from started_by(
        lambda n, *args: CliNode(list(args), tmp_path, tmp_path / f"cli-node{n}.log"))


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def read_lines(proc: subprocess.Popen[str], n: int, timeout: float) -> list[str]:
    """The first ``n`` lines ``proc`` writes on stdout, within ``timeout`` seconds."""
    got: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for _ in range(n):
            got.put(proc.stdout.readline())

    threading.Thread(target=read, daemon=True).start()
    lines = []
    deadline = time.monotonic() + timeout
    for _ in range(n):
        try:
            lines.append(got.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"{len(lines)} of {n} lines within {timeout} s: "
                                 f"{lines}") from None
    return lines


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- tests
def test_node_peers_ping_version(cli_nodes: Any, node_procs: Any, secret_file: Path,
                                 tmp_path: Path) -> None:
    a = cli_nodes("--secret-file", secret_file, "--name", "cli-a",
                  "--dest-path", tmp_path / "dest")
    assert a.location.startswith("127.0.0.1:")
    cmdline = Path(f"/proc/{a.proc.pid}/cmdline").read_bytes()
    assert SECRET.encode() not in cmdline and b"--secret-file" in cmdline
    b = node_procs("--name", "proc-b", "--secret", SECRET, "--peer", a.location)
    online = a.wait_event("online", name="proc-b")
    assert online["location"] == f"{b.addr}:{b.port}"

    doc = run_json("peers", a.location, "--secret-file", secret_file, cwd=tmp_path)
    assert doc["ok"] is True and doc["node"]["name"] == "cli-a"
    assert doc["node"]["location"] == a.location and doc["node"]["tls"] is False
    assert [(p["name"], p["location"]) for p in doc["peers"]] == \
        [("proc-b", f"{b.addr}:{b.port}")], doc
    assert doc["_stderr"] == ""

    # the same secret from the environment; ping's statistics
    doc = run_json("ping", a.location, "-c", 3, "-i", 0.05, "-s", 100, cwd=tmp_path,
                   env=_env(PYCOS_SECRET=SECRET))
    assert (doc["ok"], doc["sent"], doc["received"], doc["size"]) == (True, 3, 3, 100)
    assert len(doc["samples"]) == 3 and doc["loss"] == 0
    rtt = doc["rtt"]
    assert 0 < rtt["min"] <= rtt["median"] <= rtt["max"] < 1.0 and rtt["mdev"] >= 0

    text = pycos_cli("ping", a.location, "-c", 2, "-i", 0.05, "--secret-file", secret_file,
                     cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"PING cli-a ({a.location}): 0 bytes" in text.stdout
    assert "seq=2 time=" in text.stdout and "2 sent, 2 received, 0% lost" in text.stdout
    assert "rtt min/avg/max/mdev = " in text.stdout

    doc = run_json("version", a.location, "--secret-file", secret_file, cwd=tmp_path)
    import pycos

    assert doc["pycos"] == pycos.__version__ == doc["node"]["version"]
    assert isinstance(doc["protocol"], int)

    # --watch: one JSON document per line until Ctrl-C
    watch = subprocess.Popen([sys.executable, "-m", "pycos", "peers", a.location, "--watch",
                              "0.1", "--json", "--secret-file", str(secret_file)], cwd=tmp_path,
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        lines = read_lines(watch, 2, timeout=15)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=10)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(timeout=5)
    assert watch.returncode == 0, err
    for line in lines:
        assert json.loads(line)["peers"][0]["name"] == "proc-b"

    # a graceful stop: SIGINT; the peer hears the goodbye at once
    a.proc.send_signal(signal.SIGINT)
    assert a.proc.wait(timeout=10) == 0
    assert a.wait_event("stopped")["why"] == "SIGINT"
    assert b.wait_event("offline", "cli-a", timeout=5)


def test_node_stops_when_its_stdin_closes(cli_nodes: Any, secret_file: Path) -> None:
    a = cli_nodes("--secret-file", secret_file)
    assert a.proc.stdin is not None
    a.proc.stdin.close()
    assert a.proc.wait(timeout=10) == 0
    assert "standard input" in a.wait_event("stopped")["why"]


def test_node_with_a_dashboard(cli_nodes: Any, secret_file: Path) -> None:
    pytest.importorskip("h11", reason="the dashboard needs h11: pip install 'pycos[dashboard]'")
    a = cli_nodes("--secret-file", secret_file, "--name", "cli-dash", "--dashboard",
                  "127.0.0.1:0")
    url = a.ready["dashboard"]
    assert url.startswith("http://127.0.0.1:") and "token" not in url  # loopback: no token
    with urllib.request.urlopen(url + "api/v1/overview", timeout=10) as reply:
        overview = json.load(reply)["overview"]
    assert overview["name"] == "cli-dash" and overview["location"] == a.location
    assert overview["secret_set"] is True and SECRET not in json.dumps(overview)
    a.stop()
    with pytest.raises(OSError):  # the dashboard stopped with its node
        urllib.request.urlopen(url, timeout=5)


def test_dashboard_elsewhere_needs_tls(tmp_path: Path) -> None:
    pytest.importorskip("h11", reason="the dashboard needs h11: pip install 'pycos[dashboard]'")
    result = pycos_cli("node", "--dashboard", "0.0.0.0:0", cwd=tmp_path, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "cannot start the dashboard" in result.stderr and "TLS" in result.stderr


def test_send_files_with_every_result(cli_nodes: Any, secret_file: Path,
                                      tmp_path: Path) -> None:
    a = cli_nodes("--secret-file", secret_file, "--dest-path", tmp_path / "dest")
    data = os.urandom(3 << 20)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    small = tmp_path / "note.txt"
    small.write_text("hello\n")

    doc = run_json("send", src, small, a.location, "--dir", "in/1", "--secret-file",
                   secret_file, cwd=tmp_path)
    assert [(f["name"], f["status"], f["size"]) for f in doc["files"]] == \
        [("data.bin", "sent", len(data)), ("note.txt", "sent", 6)]
    assert (a.dest_path / "in/1/data.bin").read_bytes() == data
    assert (a.dest_path / "in/1/note.txt").read_text() == "hello\n"

    doc = run_json("send", src, a.location, "--dir", "in/1", "--secret-file", secret_file,
                   cwd=tmp_path)
    assert doc["files"][0]["status"] == "same"

    os.utime(src, (1_000_000_000, 1_000_000_000))  # a different file now (its time)
    doc = run_json("send", src, a.location, "--dir", "in/1", "--secret-file", secret_file,
                   cwd=tmp_path, expect=1)
    assert doc["ok"] is False and doc["files"][0]["status"] == "exists"
    assert "--overwrite" in doc["files"][0]["error"] and "--overwrite" in doc["_stderr"]

    text = pycos_cli("send", src, a.location, "--dir", "in/1", "--overwrite",
                     "--secret-file", secret_file, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"{src}: sent 3 MiB to {a.location}" in text.stdout
    assert text.stderr == ""  # not a terminal: no bar

    # a path outside the receiver's dest_path: refused there, status 1, and why
    doc = run_json("send", small, a.location, "--dir", "../up", "--secret-file", secret_file,
                   cwd=tmp_path, expect=1)
    assert doc["files"][0]["status"] == "failed" and ".." in doc["files"][0]["error"]

    # a missing file: nothing is sent, no node is contacted
    missing = tmp_path / "missing.bin"
    doc = run_json("send", small, missing, a.location, "--secret-file", secret_file,
                   cwd=tmp_path, expect=1)
    assert doc == {"ok": False, "error": f"no such file: {missing}", "exit": 1,
                   "status": "failure", "_stderr": f"pycos: error: no such file: {missing}\n"}


def test_bad_secret_unreachable_node_and_unsafe_secret_file(
        node_procs: Any, secret_file: Path, tmp_path: Path) -> None:
    target = node_procs("--name", "guarded", "--secret", SECRET)
    loc = f"{target.addr}:{target.port}"
    wrong = tmp_path / "wrong"
    wrong.write_text("not the secret")
    wrong.chmod(0o600)
    doc = run_json("peers", loc, "--secret-file", wrong, cwd=tmp_path, expect=4)
    assert doc["status"] == "authentication" and "authentication with" in doc["error"]
    assert "secret" in doc["error"] and "not the secret" not in json.dumps(doc)

    # no secret at all against a node that has one
    doc = run_json("ping", loc, cwd=tmp_path, expect=4)
    assert doc["exit"] == 4

    port = closed_port()
    began = time.monotonic()
    doc = run_json("ping", f"127.0.0.1:{port}", "--secret-file", secret_file, cwd=tmp_path,
                   expect=3)
    assert time.monotonic() - began < 10
    assert doc["status"] == "unreachable" and f"cannot reach 127.0.0.1:{port}" in doc["error"]
    assert "refused" in doc["error"].lower()

    open_file = tmp_path / "open-secret"
    open_file.write_text(SECRET)
    open_file.chmod(0o644)
    doc = run_json("peers", loc, "--secret-file", open_file, cwd=tmp_path, expect=1)
    assert f"chmod 600 {open_file}" in doc["error"] and "0644" in doc["error"]
    assert SECRET not in json.dumps(doc)
    open_file.chmod(0o640)
    text = pycos_cli("peers", loc, "--secret-file", open_file, cwd=tmp_path)
    assert text.returncode == 1 and "chmod 600" in text.stderr and text.stdout == ""

    # the secret on the command line works, with a warning
    text = pycos_cli("peers", loc, "--secret", SECRET, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "visible" in text.stderr and "--secret-file" in text.stderr
    assert "guarded at " + loc in text.stdout


def test_a_node_that_never_answers_times_out(secret_file: Path, tmp_path: Path) -> None:
    """A TCP listener that accepts and says nothing: status 3 after about --timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        began = time.monotonic()
        doc = run_json("peers", f"127.0.0.1:{port}", "--timeout", "1", "--secret-file",
                       secret_file, cwd=tmp_path, expect=3)
        took = time.monotonic() - began
    assert doc["status"] == "unreachable"
    assert 0.9 < took < 8, took


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (["ping"], ["ping", "127.0.0.1"], ["ping", "127.0.0.1:0"], ["nonsense"],
                 ["ping", "127.0.0.1:9", "-c", "0"], ["peers", "127.0.0.1:9", "--tls", "x"],
                 ["peers", "127.0.0.1:9", "--secret", "a", "--secret-file", "b"], []):
        result = pycos_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage: pycos" in result.stderr and result.stdout == ""


def test_diag_checks_each_peer(cli_nodes: Any, secret_file: Path, tmp_path: Path) -> None:
    a = cli_nodes("--secret-file", secret_file, "--name", "diag-target")
    port = closed_port()
    doc = run_json("diag", "--peer", a.location, "--peer", f"127.0.0.1:{port}",
                   "--secret-file", secret_file, cwd=tmp_path, expect=3)
    good, bad = doc["peers"]
    assert good["reachable"] and good["name"] == "diag-target" and 0 < good["rtt"] < 1
    assert not bad["reachable"] and bad["exit"] == 3 and "cannot reach" in bad["error"]
    assert doc["node"]["hidden"] is True and doc["node"]["addresses"] == ["127.0.0.1"]
    assert doc["discovery"] == {"enabled": False}
    assert doc["secret"] == "set (from --secret-file)" and doc["tls"] == "off"
    assert any(i["address"] == "127.0.0.1" for i in doc["interfaces"])
    assert SECRET not in json.dumps(doc)

    text = pycos_cli("diag", "--peer", a.location, "--secret-file", secret_file, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"{a.location}: ok, diag-target" in text.stdout and "discovery: off" in text.stdout


def test_tls_node(cli_nodes: Any, node_certs: Any, secret_file: Path, tmp_path: Path) -> None:
    tls = ["--tls", node_certs.self_cert, node_certs.self_key]
    a = cli_nodes("--secret-file", secret_file, *tls)
    doc = run_json("peers", a.location, "--secret-file", secret_file, *tls, cwd=tmp_path)
    assert doc["node"]["tls"] is True
    # another CA's certificate: the TLS handshake fails, and that is an authentication error
    other = ["--tls", node_certs.other_cert, node_certs.other_key, node_certs.other_ca]
    doc = run_json("peers", a.location, "--secret-file", secret_file, *other, cwd=tmp_path,
                   expect=4)
    assert "TLS" in doc["error"] or "certificate" in doc["error"].lower(), doc
    # no TLS at all against a TLS node: it cannot be spoken to, and the message says why
    doc = run_json("peers", a.location, "--secret-file", secret_file, cwd=tmp_path, expect=3)
    assert "--tls" in doc["error"], doc


# ---------------------------------------------------------------------- the progress bar
def _tmux() -> str:
    """tmux, installed with apt-get when it is missing and this runs as root."""
    tmux = shutil.which("tmux")
    if tmux is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for steps in ([["apt-get", "install", "-y", "-q", "tmux"]],
                      [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "tmux"]]):
            try:
                for step in steps:
                    subprocess.run(step, capture_output=True, timeout=300, env=env, check=True)
            except (subprocess.SubprocessError, OSError):
                continue
            break
        tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed and could not be installed with apt-get "
                    "(apt-get install -y tmux); the progress bar needs a real terminal")
    return tmux


def test_progress_bar_on_a_real_terminal(cli_nodes: Any, secret_file: Path,
                                         tmp_path: Path) -> None:
    tmux = _tmux()
    a = cli_nodes("--secret-file", secret_file, "--dest-path", tmp_path / "dest")
    (tmp_path / "payload.bin").write_bytes(os.urandom(24 << 20))
    (tmp_path / "second.bin").write_bytes(os.urandom(1 << 20))
    session = f"pycos-cli-{os.getpid()}"
    tmux_cmd = [tmux, "-L", session]  # a tmux server of this test's own
    done = tmp_path / "done"
    script = tmp_path / "send.sh"
    send = f"{sys.executable} -m pycos send --secret-file {secret_file}"
    script.write_text(
        f"export PYTHONPATH={ROOT}\n"
        f"cd {tmp_path}\n"
        f"{send} payload.bin {a.location} --progress builtin\n"
        "first=$?\n"
        f"{send} payload.bin {a.location}\n"  # there already: no bar at all
        f"{send} second.bin {a.location}\n"  # auto: tqdm if installed, else the built-in one
        f"echo EXIT=$first$? > {done}\n"
        "sleep 30\n")
    env = _env(TERM="xterm")
    subprocess.run([*tmux_cmd, "new-session", "-d", "-s", session, "-x", "100", "-y", "12",
                    f"bash {script}"], check=True, env=env, timeout=20)
    try:
        deadline = time.monotonic() + 30
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        screen = subprocess.run([*tmux_cmd, "capture-pane", "-p", "-J", "-t", session], env=env,
                                capture_output=True, text=True, timeout=20).stdout
    finally:
        subprocess.run([*tmux_cmd, "kill-server"], env=env, capture_output=True, timeout=20)
    assert done.exists() and done.read_text().strip() == "EXIT=00", screen
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    assert len(lines) == 5, screen
    bar, sent, same, bar2, sent2 = lines
    assert bar.startswith("payload.bin 100% ["), screen
    cells = bar.split("[")[1].split("]")[0]
    assert cells == "#" * len(cells) and len(cells) >= 20, screen
    assert "24 MiB / 24 MiB" in bar and bar.endswith("/s"), screen
    assert sent.startswith(f"payload.bin: sent 24 MiB to {a.location} in "), screen
    assert same == "payload.bin: the same file is there already (size, mode and time match)"
    assert bar2.startswith("second.bin") and "100%" in bar2, screen
    assert sent2.startswith(f"second.bin: sent 1 MiB to {a.location} in "), screen
    assert (a.dest_path / "payload.bin").stat().st_size == 24 << 20
