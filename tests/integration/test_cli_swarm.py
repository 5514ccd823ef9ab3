"""``python -m pycos fetch`` and ``put``: swarm file transfers with a gateway, as a shell runs them.

The gateway is a process of its own (``test_swarm_procs.py gateway``: a ``pycos.swarm.Gateway``
on 127.0.0.1 that exports a tree of test files as ``data``), started once for this module with
``procs.started_by`` and always killed at its end. Every command is a process of its own with a
time limit, run with ``--json`` where its document is checked. Checked here: files fetched and
put over ``--swarm 1`` and ``--swarm 4`` are the same byte for byte, with their modes and
mtimes (to the nanosecond); a second run finds them there; ``--regex`` picks files here; a bad
regex or folder is status 2 before any connection; an unreachable node is status 3 within the
timeout; a wrong secret (or none) is status 4, and ``PYCOS_SECRET`` works as ``--secret-file``
does; a missing export, gateway or swarm service is status 1, each with its fix; the progress
bar, read from a pseudo-terminal, redraws one line and ends full.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import started_by
from test_swarm_procs import GatewayProc

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "swarm cli secret 91c2"
RUN_TIMEOUT = 30.0

#: relative path -> (size, mode); a size over 64 KiB travels as a raw section, smaller ones
#: batched inside frames.
FILES = {
    "app.log": (1000, 0o644),
    "empty.log": (0, 0o600),
    "bin/tool.sh": (300, 0o755),
    "2024/01/day1.log": (4096, 0o640),
    "2024/01/day2.log": (70_000, 0o644),
    "2024/02/big.bin": (1_500_000, 0o600),
    "2024/02/notes.txt": (12, 0o644),
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYCOS_SECRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def pycos_cli(*args: Any, cwd: Path, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    """``python -m pycos ARGS`` run to its end (bounded)."""
    return subprocess.run([sys.executable, "-m", "pycos", *map(str, args)], cwd=cwd,
                          env=env or _env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)


def run_json(*args: Any, cwd: Path, expect: int = 0,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """A command with ``--json``: its status must be ``expect``, its stdout one document."""
    result = pycos_cli(*args, "--json", cwd=cwd, env=env)
    assert result.returncode == expect, (f"pycos {' '.join(map(str, args))}: exit "
                                         f"{result.returncode}, expected {expect}\n"
                                         f"stdout: {result.stdout}\nstderr: {result.stderr}")
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    doc["_stderr"] = result.stderr
    return doc


def make_tree(root: Path) -> None:
    """``FILES`` under ``root``: random content, their modes, and distinct mtimes in the past
    with nanoseconds."""
    for n, (rel, (size, mode)) in enumerate(sorted(FILES.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        path.chmod(mode)
        stamp = 1_600_000_000_123_456_789 + n * 86_400_000_000_007
        os.utime(path, ns=(stamp, stamp))


def tree_of(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """relative path -> (content, permission bits, mtime in ns) of every file below ``root``."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            found[path.relative_to(root).as_posix()] = (path.read_bytes(), st.st_mode & 0o7777,
                                                        st.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's directory: ``export`` (the gateway's ``data``) and ``secret``."""
    root = tmp_path_factory.mktemp("cli-swarm")
    make_tree(root / "export")
    secret = root / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    return root


@pytest.fixture(scope="module")
def gateways() -> Iterator[Callable[..., GatewayProc]]:
    yield from started_by(lambda n, root, *options: GatewayProc(root, SECRET, *options))


@pytest.fixture(scope="module")
def gateway(gateways: Callable[..., GatewayProc], area: Path) -> GatewayProc:
    """The gateway process, exporting ``area/export`` as ``data``; killed after the module."""
    return gateways(area, "--export", f"data={area / 'export'}")


def node_of(gw: GatewayProc) -> str:
    return f"127.0.0.1:{gw.port}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- fetch
def test_fetch_over_4_and_1_connections_keeps_bytes_modes_and_mtimes(
        gateway: GatewayProc, area: Path, tmp_path: Path) -> None:
    key = ["--secret-file", area / "secret"]
    source = tree_of(area / "export")
    doc = run_json("fetch", node_of(gateway), "data", "--to", "four", "--swarm", "4", *key,
                   cwd=tmp_path)
    assert tree_of(tmp_path / "four") == source
    assert doc["ok"] is True and doc["swarm"] == 4 and doc["folder"] == "data"
    assert doc["files"] == sorted(FILES) and doc["transferred"] == len(FILES)
    assert (doc["same"], doc["failed"], doc["truncated"]) == (0, {}, False)
    assert doc["bytes"] == sum(size for size, _mode in FILES.values())
    assert doc["to"] == str((tmp_path / "four").resolve()) and doc["node"] == node_of(gateway)
    assert SECRET not in json.dumps(doc)

    text = pycos_cli("fetch", node_of(gateway), "data", "--to", "one", "--swarm", "1", *key,
                     cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert tree_of(tmp_path / "one") == source
    assert text.stdout.startswith(f"data: fetched {len(FILES)} files (1.5") and \
        f"from {node_of(gateway)} into one over 1 connection in " in text.stdout
    assert text.stderr == ""  # not a terminal: no bar

    # again: every file is there already (same size, mode and time), nothing moves
    doc = run_json("fetch", node_of(gateway), "data", "--to", "one", "--swarm", "4", *key,
                   cwd=tmp_path)
    assert (doc["transferred"], doc["same"]) == (0, len(FILES))

    # a folder below the export, and a regex applied here
    doc = run_json("fetch", node_of(gateway), "data/2024", "--regex", r".+\.log", "--to", "logs",
                   "--swarm", "2", *key, cwd=tmp_path)
    assert doc["files"] == ["01/day1.log", "01/day2.log"]
    assert tree_of(tmp_path / "logs") == {k[5:]: v for k, v in source.items()
                                         if k.startswith("2024/") and k.endswith(".log")}


def on_a_terminal(*args: Any, cwd: Path, timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    """``python -m pycos ARGS`` with its stdout and stderr on a pseudo-terminal of 100
    columns: (exit status, everything it wrote there)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "pycos", *map(str, args)], cwd=cwd,
                                env=dict(_env(), COLUMNS="100"), stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the program ended and closed the terminal
                break
            if not chunk:
                break
            data += chunk
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, data.decode(errors="replace")


def test_fetch_draws_a_progress_bar_on_a_terminal(gateway: GatewayProc, area: Path,
                                                  tmp_path: Path) -> None:
    code, screen = on_a_terminal("fetch", node_of(gateway), "data", "--to", "bar",
                                 "--progress", "builtin", "--secret-file", area / "secret",
                                 cwd=tmp_path)
    assert code == 0, screen
    draws = [d for d in screen.replace("\r\n", "\n").split("\r") if d.strip()]
    n = len(FILES)
    last_bar, summary = draws[-1].rstrip("\n").split("\n")
    assert last_bar.startswith(f"data {n}/{n} 100% ["), screen
    cells = last_bar.split("[")[1].split("]")[0]
    assert cells == "#" * len(cells) and len(cells) >= 20, screen
    assert "1.5 MiB / 1.5 MiB" in last_bar and last_bar.rstrip().endswith("/s"), screen
    assert len(last_bar) < 100 and all(c.isprintable() for c in last_bar), screen
    assert summary.startswith(f"data: fetched {n} files"), screen
    assert all(d.startswith("data ") for d in draws), screen  # every draw redraws one line
    assert tree_of(tmp_path / "bar") == tree_of(area / "export")
    # -q: no bar at all
    code, screen = on_a_terminal("fetch", node_of(gateway), "data", "--to", "bar", "-q",
                                 "--secret-file", area / "secret", cwd=tmp_path)
    assert code == 0 and "\r" not in screen.replace("\r\n", "\n"), screen
    assert screen.startswith(f"data: fetched {n} files"), screen


def test_fetch_refusals_name_the_fix(gateway: GatewayProc, area: Path, tmp_path: Path,
                                     node_procs: Any) -> None:
    key = ["--secret-file", area / "secret"]
    doc = run_json("fetch", node_of(gateway), "nosuch", "--to", "x", *key, cwd=tmp_path,
                   expect=1)
    assert "no export named 'nosuch'" in doc["error"] and "['data']" in doc["error"]
    doc = run_json("fetch", node_of(gateway), "data", "--gateway", "other", "--to", "x", *key,
                   cwd=tmp_path, expect=1)
    assert "no gateway named 'other'" in doc["error"] and "--gateway NAME" in doc["error"]
    plain = node_procs("--name", "plain", "--secret", SECRET)  # a node without a gateway
    doc = run_json("fetch", f"{plain.addr}:{plain.port}", "data", "--to", "x", *key,
                   cwd=tmp_path, expect=1)
    assert "runs no swarm gateway" in doc["error"], doc
    # --to is not a directory: refused before any node is contacted
    (tmp_path / "file").write_text("x")
    doc = run_json("fetch", f"127.0.0.1:{closed_port()}", "data", "--to", "file", *key,
                   cwd=tmp_path, expect=1)
    assert "--to file is not a directory" in doc["error"]
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------- put
def test_put_over_4_and_1_connections_keeps_bytes_modes_and_mtimes(
        gateway: GatewayProc, area: Path, tmp_path: Path) -> None:
    key = ["--secret-file", area / "secret"]
    source = tree_of(area / "export")
    doc = run_json("put", area / "export", node_of(gateway), "--dir", "up/four", "--swarm", "4",
                   *key, cwd=tmp_path)
    assert tree_of(gateway.dest / "up" / "four") == source
    assert doc["ok"] is True and doc["files"] == sorted(FILES)
    assert (doc["transferred"], doc["same"], doc["failed"]) == (len(FILES), 0, {})
    assert doc["dir"] == "up/four" and doc["from"] == str((area / "export").resolve())

    text = pycos_cli("put", area / "export", node_of(gateway), "--dir", "up/one", "--swarm",
                     "1", *key, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert tree_of(gateway.dest / "up" / "one") == source
    assert f"to {node_of(gateway)} into up/one over 1 connection in " in text.stdout

    # a different local file of a name that is there: kept there, status 1, and the fix
    changed = tmp_path / "changed"
    (changed / "2024/02").mkdir(parents=True)
    (changed / "2024/02/notes.txt").write_text("other notes\n")
    (changed / "fresh.txt").write_text("new\n")
    doc = run_json("put", changed, node_of(gateway), "--dir", "up/one", *key, cwd=tmp_path,
                   expect=1)
    assert doc["files"] == ["fresh.txt"]
    assert "use --overwrite" in doc["failed"]["2024/02/notes.txt"]
    assert "2024/02/notes.txt: a different file" in doc["_stderr"]
    assert (gateway.dest / "up/one/2024/02/notes.txt").read_bytes() == \
        source["2024/02/notes.txt"][0]
    doc = run_json("put", changed, node_of(gateway), "--dir", "up/one", "--overwrite",
                   "--regex", r".*\.txt", *key, cwd=tmp_path)
    assert (doc["transferred"], doc["same"]) == (1, 1)
    assert (gateway.dest / "up/one/2024/02/notes.txt").read_text() == "other notes\n"

    doc = run_json("put", tmp_path / "missing", node_of(gateway), *key, cwd=tmp_path, expect=1)
    assert doc["error"] == f"no such directory: {tmp_path / 'missing'}"


# ---------------------------------------------------------------------- exit statuses
def test_bad_regex_or_folder_is_status_2_before_any_traffic(area: Path, tmp_path: Path) -> None:
    """A listener that counts connections: the commands never reach it."""
    key = ["--secret-file", area / "secret"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        node = f"127.0.0.1:{listener.getsockname()[1]}"
        for args in (["fetch", node, "data", "--regex", "log(", "--json"],
                     ["fetch", node, "data", "--regex", "*.log"],
                     ["put", area / "export", node, "--regex", "[a-", "--json"],
                     ["fetch", node, "/var/log"], ["fetch", node, "data/../.."],
                     ["put", area / "export", node, "--dir", "../out"],
                     ["fetch", node, "data", "--swarm", "0"]):
            result = pycos_cli(*args, *key, cwd=tmp_path)
            assert result.returncode == 2, (args, result.stderr)
            assert result.stdout == "" and "usage: pycos" in result.stderr, args
            if "--regex" in args:
                assert "is not a regular expression" in result.stderr
                assert "re.fullmatch" in result.stderr and "--regex '.+\\.log'" in result.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection was ever attempted


def test_unreachable_gateway_is_status_3_within_the_timeout(area: Path, tmp_path: Path) -> None:
    key = ["--secret-file", area / "secret"]
    port = closed_port()
    began = time.monotonic()
    doc = run_json("fetch", f"127.0.0.1:{port}", "data", "--to", "x", *key, cwd=tmp_path,
                   expect=3)
    assert time.monotonic() - began < 5
    assert doc["status"] == "unreachable" and f"cannot reach 127.0.0.1:{port}" in doc["error"]
    with socket.socket() as silent:  # accepts and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        began = time.monotonic()
        doc = run_json("put", area / "export", f"127.0.0.1:{silent.getsockname()[1]}",
                       "--timeout", "1", *key, cwd=tmp_path, expect=3)
        took = time.monotonic() - began
    assert doc["exit"] == 3 and "did not answer within 1 s" in doc["error"]
    assert 0.9 < took < 6, took
    assert not (tmp_path / "x").exists()


def test_wrong_secret_is_status_4_and_the_environment_secret_works(
        gateway: GatewayProc, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not the gateway's secret")
    wrong.chmod(0o600)
    doc = run_json("fetch", node_of(gateway), "data", "--to", "x", "--secret-file", wrong,
                   cwd=tmp_path, expect=4)
    assert doc["status"] == "authentication" and "secret" in doc["error"]
    assert "not the gateway's secret" not in json.dumps(doc)
    doc = run_json("put", tmp_path, node_of(gateway), "--secret-file", wrong, cwd=tmp_path,
                   expect=4)
    assert doc["exit"] == 4
    doc = run_json("fetch", node_of(gateway), "data", "--to", "x", cwd=tmp_path, expect=4)
    assert doc["status"] == "authentication"  # no secret at all
    assert not (tmp_path / "x").exists()
    # the secret from PYCOS_SECRET, as every command takes it
    doc = run_json("fetch", node_of(gateway), "data", "--to", "x", "--regex", "app.log",
                   cwd=tmp_path, env=_env(PYCOS_SECRET=SECRET))
    assert doc["files"] == ["app.log"] and SECRET not in json.dumps(doc)
