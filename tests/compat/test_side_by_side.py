"""The same small programs on this package and on the released pycos 4.12.2, compared.

``programs/local_api.py`` (no networking) and ``programs/net_api.py`` (names after
``import pycos.netpycos``, and two nodes on 127.0.0.1 that never broadcast) print one line per
observation, ``@ key => value``. Each runs unchanged twice: with this checkout first on
``PYTHONPATH``, and with the python of the venv holding the released pycos 4.12.2 (built by
``bench/reference_env.py``; skipped with the reason when it cannot be built), isolated from this
repository as ``bench/bench_remote.py`` isolates it (``-E -s``, no ``PYTHON*`` variables, a
working directory outside the repository). A ``# pycos VERSION FILE`` line proves which
package each run imported.

Each test below checks one behaviour: the keys it names must print the same value in both runs,
except where ``RULES`` says otherwise. A rule records either a deliberate difference of this
package (SPEC) or a place where pycos 4.12.2 itself falls short of what its programs rely on;
each states the value this package must print and why. Every key either run prints is checked
by some test.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from compat.fetch import FetchError, reference_python

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROGRAMS = HERE / "programs"
RUN_TIMEOUT = {"local_api": 60.0, "net_api": 150.0}


@dataclass(frozen=True)
class Run:
    """One run of a program: exit status, its observations (in order), its origin line, and
    its output as shown in failures (observations and the end of stderr)."""

    status: int
    observed: dict[str, str]
    origin: str
    output: str


def _isolated_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _argv(program: str, tmp: Path) -> list[str]:
    args: list[str] = []
    if program == "net_api":
        args = [*map(str, _free_udp_ports(2)), str(tmp / "dest")]
    return [str(PROGRAMS / f"{program}.py"), *args]


def _parse(status: int, out: str, err: str) -> Run:
    observed: dict[str, str] = {}
    origin = ""
    for line in out.splitlines():
        if line.startswith("@ ") and " => " in line:
            key, _, value = line[2:].partition(" => ")
            observed.setdefault(key, value)
        elif line == "@ done":
            observed["done"] = ""
        elif line.startswith("# pycos "):
            origin = line
    shown = "\n".join(line for line in out.splitlines() if line[:2] in ("@ ", "# "))
    err_tail = "\n".join(err.splitlines()[-40:])
    return Run(status, observed, origin,
               f"exit status {status}\n--- its observations\n{shown}\n"
               f"--- the end of its stderr\n{err_tail}")


def _run_both(program: str, ref_python: Path, tmp: Path) -> dict[str, Run]:
    """Run ``program`` on this package and on pycos 4.12.2 at the same time."""
    ours_dir, ref_dir = tmp / "ours", tmp / "ref"
    ours_dir.mkdir()
    ref_dir.mkdir()
    procs = {
        "ours": subprocess.Popen([sys.executable, *_argv(program, ours_dir)], cwd=ours_dir,
                                 env=dict(_isolated_env(), PYTHONPATH=str(REPO)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL, start_new_session=True),
        "ref": subprocess.Popen([str(ref_python), "-E", "-s", *_argv(program, ref_dir)],
                                cwd=ref_dir, env=_isolated_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                start_new_session=True),
    }
    runs = {}
    try:
        for name, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=RUN_TIMEOUT[program])
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # and any node it started
                out, err = proc.communicate(timeout=10)
                err += f"\n[killed: did not end within {RUN_TIMEOUT[program]} s]"
            runs[name] = _parse(proc.returncode, out, err)
    finally:
        for proc in procs.values():  # none outlives the test, whatever happened
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    return runs


@pytest.fixture(scope="module")
def ref_python() -> Path:
    try:
        return reference_python()
    except FetchError as exc:
        pytest.skip(str(exc))


_RUNS: dict[str, dict[str, Run]] = {}


@pytest.fixture
def runs(ref_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict]:
    """``runs(program)``: its two runs, made once per test session."""
    def get(program: str) -> dict[str, Run]:
        if program not in _RUNS:
            _RUNS[program] = _run_both(program, ref_python,
                                       tmp_path_factory.mktemp(f"side_by_side_{program}"))
        return _RUNS[program]
    return get


# ---------------------------------------------------------------------- expected differences
@dataclass(frozen=True)
class Rule:
    """What this package must print for a key where it is not to match pycos 4.12.2.

    Attributes:
        ours: the value this package must print (a regular expression matched in full).
        ref: the value pycos 4.12.2 prints (checked too, so the reason stays true).
        why: the reason.
    """

    ours: str
    ref: str
    why: str


_SERIALIZE_REFUSED = (r"raises SerializationError in the sender; names the class: True; "
                      r"names pycos\.serialize_allow: True")
_REF_DELIVERED = r"delivered .*; equal: True; same type: True"

RULES: dict[str, Rule] = {
    # Deliberate differences of this package (SPEC).
    "recv_msg / recvall give": Rule(
        r"\[\('bytes', b'framed'\), \('bytes', b'rawbytes'\)\]",
        r"\[\('bytearray', b'framed'\), \('bytearray', b'rawbytes'\)\]",
        "SPEC 2: recvall and recv_msg return bytes (pycos 4.12 returned a bytearray)"),
    "deliver to an ended remote task returns": Rule(
        "0", "-1",
        "SPEC 1.2: deliver gives 0 on any failure, an invalid reference included (pycos 4.12 "
        "gave -1 here), so 'if (yield t.deliver(m)):' is correct"),
    "wrong arguments": Rule(
        r"\[\('subscribe\(42\)', 'raises (TypeError|ValueError)'\), "
        r"\('deliver\(msg, n=-1\)', 'raises (TypeError|ValueError)'\)\]",
        r"\[\('subscribe\(42\)', -1\), \('deliver\(msg, n=-1\)', -1\)\]",
        "SPEC 6: public calls given wrong arguments raise TypeError/ValueError (pycos 4.12 "
        "returned -1)"),
    "default name: the host name": Rule(
        "False", "True",
        "SPEC 3.1: the default node name is 'host:tcp_port', unique per node (pycos 4.12 used "
        "the host name, so nodes on one host had the same name)"),
    "default name: 'host:port' of the node": Rule(
        "True", "False", "SPEC 3.1: the default node name is 'host:tcp_port'"),
    **{f"{label} by {how}, before serialize_allow": Rule(
        _SERIALIZE_REFUSED, _REF_DELIVERED,
        "SPEC 3.3: decoding is data-only, so an unregistered class is refused, at once and in "
        "the sending task, naming the class and pycos.serialize_allow (pycos 4.12 pickled "
        "anything)")
       for label in ("Point", "namedtuple Pair") for how in ("send", "deliver")},
    # Where pycos 4.12.2 itself falls short of what SPEC 4 promises its programs.
    "peer('127.0.0.1', udp_port=P) reached the discover_peers=False node": Rule(
        "True", "False",
        "SPEC 4: a node with discover_peers=False still answers peer('host', udp_port=...); "
        "pycos 4.12.2 binds its UDP socket to the broadcast address (255.255.255.255 here), so "
        "a unicast ping never reaches it"),
    **{f"{label} sent there and back: same hash": Rule(
        "True", "False",
        "SPEC 4: a reference that comes back hashes like the local task; pycos 4.12.2 hashes "
        "it by its own id(), so it is equal but not found in sets and dicts")
       for label in ("the sending task", "another local task")},
    **{f"{label} sent there and back: found in a dict": Rule(
        "1", "None", "follows from the hash (see 'same hash')")
       for label in ("the sending task", "another local task")},
}
#: Printed only by a run whose UDP peer() failed, so that the later observations can still be
#: made; not a behaviour of its own.
UNCHECKED = {"fallback: peer(Location(host, tcp_port)) reached it"}


def _check(program: str, keys: list[str], get: Callable[[str], dict[str, Run]]) -> None:
    both = get(program)
    ours, ref = both["ours"], both["ref"]
    problems = []
    for key in keys:
        if key not in ref.observed:
            pytest.fail(f"pycos 4.12.2's run of {program} printed no {key!r}:\n{ref.output}")
        got = ours.observed.get(key, "<not printed>")
        rule = RULES.get(key)
        if rule is None:
            if got != ref.observed[key]:
                problems.append(f"{key!r}: ours {got!r}, pycos 4.12.2 "
                                f"{ref.observed[key]!r}")
            continue
        assert re.fullmatch(rule.ref, ref.observed[key]), (
            f"{key!r}: pycos 4.12.2 printed {ref.observed[key]!r}, not {rule.ref!r} as the "
            f"rule says ({rule.why})")
        if not re.fullmatch(rule.ours, got):
            problems.append(f"{key!r}: ours {got!r}, must be {rule.ours!r} ({rule.why})")
    assert not problems, "\n".join(problems) + f"\n\nour run of {program}:\n{ours.output}"


# ---------------------------------------------------------------------- the behaviours
LOCAL_LOCATION = ["Location exists before import pycos.netpycos",
                  *[f"before import: {k}" for k in (
                      "Location repr", "Location addr, port", "Location with port '9705': port",
                      "Location with port '9705' == with 9705", "their hashes equal",
                      "one key in a dict", "!= other port")]]
TRIP = [f"{label} sent there and back: {what}"
        for label in ("the sending task", "another local task")
        for what in ("received", "== local", "!= local", "same hash", "found in a dict")]
OWN_CLASSES = [f"{label} by {how}, {phase}"
               for phase in ("before serialize_allow", "after serialize_allow")
               for label in ("Point", "namedtuple Pair") for how in ("send", "deliver")]

BEHAVIOURS = [
    pytest.param("local_api", LOCAL_LOCATION, id="Location-before-netpycos"),
    pytest.param("net_api", [
        "Location exists before import pycos.netpycos",
        "after import: Location('127.0.0.1', '9705') == Location('127.0.0.1', 9705)",
        "after import: their hashes equal", "after import: port of Location('127.0.0.1', '9705')",
        "Location('localhost', 9705).addr", "pycos.Location is pycos.netpycos.Location"],
        id="Location-after-netpycos"),
    pytest.param("net_api", [
        "pycos.Pycos is pycos.netpycos.Pycos", "pycos.RPS is pycos.netpycos.RPS",
        "pycos.RTI is pycos.netpycos.RTI", "pycos.PeerStatus is pycos.netpycos.PeerStatus",
        "pycos.RPS is pycos.RTI", "PeerStatus Online, Offline", "PeerStatus fields"],
        id="names-after-netpycos"),
    pytest.param("net_api", ["pycos.SysTask is a Task class"], id="SysTask-after-netpycos"),
    pytest.param("local_api", ["SysTask exists"], id="SysTask"),
    pytest.param("net_api", ["first node started", "pycos.Pycos.instance() is the node"],
                 id="node-starts"),
    pytest.param("net_api", ["second node ends by itself once its input is closed"],
                 id="node-with-a-peer-ends-at-exit"),
    pytest.param("net_api", ["scheduler.locations: list of the node's Location"],
                 id="scheduler-locations"),
    pytest.param("net_api", ["dest_path exists as a directory",
                             "dest_path assigned a subdirectory: taken, created"],
                 id="dest_path"),
    pytest.param("net_api", ["default name: the host name",
                             "default name: 'host:port' of the node"], id="default-node-name"),
    pytest.param("net_api", ["second node started", "peer('127.0.0.1', udp_port=P) returns",
                             "peer('127.0.0.1', udp_port=P) reached the discover_peers=False "
                             "node"], id="peer-by-udp-port-without-discovery"),
    pytest.param("net_api", ["its location is on 127.0.0.1", "Task.locate('echo', location)"],
                 id="Task-locate-on-peer"),
    pytest.param("net_api", TRIP, id="task-reference-round-trip"),
    pytest.param("net_api", ["message via the returned reference reaches the task"],
                 id="returned-reference-delivers"),
    pytest.param("net_api", ["deliver to an ended remote task returns"],
                 id="deliver-to-ended-remote-task"),
    pytest.param("net_api", ["wrong arguments"], id="wrong-arguments"),
    pytest.param("net_api", OWN_CLASSES[:4], id="own-class-refused-until-allowed"),
    pytest.param("net_api", ["the second node allowed Point and Pair", *OWN_CLASSES[4:]],
                 id="own-class-delivered-once-allowed"),
    pytest.param("local_api", ["Singleton: same instance, first value kept",
                               "Singleton.discard makes a new instance"], id="Singleton"),
    pytest.param("local_api", ["serialize gives, deserialize restores"],
                 id="serialize-deserialize"),
    pytest.param("local_api", ["config.MsgTimeout", "config.NetPort"], id="config"),
    pytest.param("local_api", ["Struct fields, assignment", "Struct: assigning a new attribute",
                               "Struct missing attribute reads as"], id="Struct"),
    pytest.param("local_api", ["Logger levels", "Logger('x', stream=buf): level, lines"],
                 id="Logger-with-stream"),
    pytest.param("local_api", ["pycos.logger.level", "pycos.logger.level is Logger.INFO"],
                 id="logger-level-INFO"),
    pytest.param("local_api", ["recv_msg / recvall give"], id="recv_msg-recvall-bytes"),
    pytest.param("local_api", ["terminate() runs atexit functions (order), promptly"],
                 id="terminate-runs-atexit"),
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("program", ["local_api", "net_api"])
def test_program_runs_to_the_end_on_both(program: str, runs: Callable[[str], dict]) -> None:
    both = runs(program)
    ref_origin = both["ref"].origin.split(" ", 3)  # '# pycos VERSION FILE'
    assert len(ref_origin) == 4 and ref_origin[2] == "4.12.2", both["ref"].output
    assert Path(ref_origin[3]).parent != REPO / "pycos", both["ref"].origin
    ours_origin = both["ours"].origin.split(" ", 3)
    assert len(ours_origin) == 4, both["ours"].output
    assert Path(ours_origin[3]).parent == REPO / "pycos", both["ours"].origin
    for name, run in both.items():
        assert run.status == 0 and "done" in run.observed, f"{name} run:\n{run.output}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("program, keys", BEHAVIOURS)
def test_behaviour(program: str, keys: list[str], runs: Callable[[str], dict]) -> None:
    _check(program, keys, runs)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("program", ["local_api", "net_api"])
def test_every_observation_is_checked(program: str, runs: Callable[[str], dict]) -> None:
    checked = {key for param in BEHAVIOURS for key in param.values[1]
               if param.values[0] == program}
    printed = set(runs(program)["ref"].observed) | set(runs(program)["ours"].observed)
    unchecked = printed - checked - UNCHECKED - {"done"}
    assert not unchecked, f"observations no test checks: {sorted(unchecked)}"


def test_programs_are_plain_python() -> None:
    """The programs must run unchanged on pycos 4.12.2: they import nothing from the tests."""
    for path in PROGRAMS.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)}
        assert imported <= set(sys.stdlib_module_names) | {"pycos"}, (path.name, imported)
