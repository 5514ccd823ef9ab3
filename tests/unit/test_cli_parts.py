"""The command line's parts in this process: grammar, secrets, exit codes, output, progress.

No node is started here (the commands that need one run as processes in
``tests/integration/test_cli_runs.py``); ``main`` is called in-process for what ends before a node
would start: ``version``, usage errors, refused secret files, missing files.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from pycos.cli import main
from pycos.cli import status as st
from pycos.cli.output import Output, clean, format_bytes, format_seconds, format_uptime
from pycos.cli.parser import build_parser, parse_node
from pycos.cli.progress import Bar, NoBar, TqdmBar, make_progress
from pycos.cli.queries import rtt_stats, summarize_node, versions
from pycos.cli.runnode import stdin_is_pipe
from pycos.cli.secret import ENV_VAR, load_secret, read_secret_file
from pycos.cli.send import check_files, outcome
from pycos.cli.session import LogTrap, describe_failure
from pycos.net.location import Location


class Captured:
    """stdout and stderr of an in-process ``main`` run."""

    def __init__(self, capsys: pytest.CaptureFixture[str], code: int) -> None:
        self.code = code
        self.out, self.err = capsys.readouterr()

    def json(self) -> Any:
        return json.loads(self.out)


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> Captured:
    return Captured(capsys, main([str(a) for a in argv]))


# ---------------------------------------------------------------------- exit codes
def test_exit_codes_are_those_of_extras_6_1() -> None:
    assert (st.OK, st.FAILURE, st.USAGE, st.UNREACHABLE, st.AUTH) == (0, 1, 2, 3, 4)
    assert st.code_name(3) == "unreachable" and st.code_name(4) == "authentication"
    assert st.code_name(99) == "failure"


# ---------------------------------------------------------------------- grammar
@pytest.mark.parametrize("text,addr,port", [
    ("127.0.0.1:9706", "127.0.0.1", 9706), (" 127.0.0.1:1 ", "127.0.0.1", 1),
    ("[::1]:9706", "::1", 9706), ("localhost:65535", None, 65535)])
def test_parse_node_accepts_host_port(text: str, addr: str | None, port: int) -> None:
    loc = parse_node(text)
    assert isinstance(loc, Location) and loc.port == port
    if addr is not None:
        assert loc.addr == addr


@pytest.mark.parametrize("text,why", [
    ("127.0.0.1", "HOST:PORT"), ("127.0.0.1:0", "1..65535"), ("127.0.0.1:65536", "1..65535"),
    (":9706", "HOST:PORT"), ("127.0.0.1:x", "HOST:PORT"), ("::1:9706", "brackets"),
    ("[::1]9706", "HOST:PORT"), ("no-such-host.invalid:9706", "cannot resolve")])
def test_parse_node_refuses_other_text(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        parse_node(text)


def test_every_command_parses_with_its_defaults() -> None:
    parser = build_parser()
    a = parser.parse_args(["ping", "127.0.0.1:9"])
    assert (a.count, a.size, a.interval, a.timeout, a.bind, a.json) == \
        (4, 0, 0.2, 5.0, "127.0.0.1", False)
    a = parser.parse_args(["send", "a", "b", "127.0.0.1:9", "--dir", "d", "--overwrite", "-q"])
    assert (a.files, a.node.port, a.dir, a.overwrite, a.quiet) == (["a", "b"], 9, "d", True,
                                                                   True)
    a = parser.parse_args(["peers", "127.0.0.1:9", "--watch"])
    assert a.watch == 2.0
    a = parser.parse_args(["node"])
    assert (a.host, a.port, a.discover, a.hidden, a.peer) == ("127.0.0.1", 0, False, False, [])
    a = parser.parse_args(["diag"])
    assert (a.discover, a.peer, a.seconds) == (False, [], 3.0)
    a = parser.parse_args(["version"])
    assert a.node is None
    a = parser.parse_args(["peers", "127.0.0.1:9", "--tls", "c", "k", "ca"])
    assert a.tls == ["c", "k", "ca"]


@pytest.mark.parametrize("argv", [
    [], ["nonsense"], ["ping"], ["ping", "127.0.0.1:9", "-c", "0"],
    ["ping", "127.0.0.1:9", "-s", "-1"], ["ping", "127.0.0.1:9", "--timeout", "0"],
    ["peers", "127.0.0.1:9", "--tls", "only-a-cert"],
    ["peers", "127.0.0.1:9", "--tls", "c", "k", "ca", "extra"],
    ["peers", "127.0.0.1:9", "--secret", "s", "--secret-file", "f"],
    ["send", "127.0.0.1:9"], ["node", "--hidden", "--discover"]])
def test_usage_errors_give_status_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    result = run(capsys, *argv)
    assert result.code == st.USAGE
    assert "usage: pycos" in result.err and result.out == ""


def test_help_gives_status_0(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "--help")
    assert result.code == 0 and "exit status: 0 success" in result.out
    result = run(capsys, "peers", "--help")
    assert result.code == 0 and "--tls CERT KEY [CA]" in result.out


# ---------------------------------------------------------------------- version
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import pycos
    from pycos.proto import PROTOCOL_VERSION

    result = run(capsys, "version", "--json")
    assert result.code == 0 and result.err == ""
    doc = result.json()
    assert doc["ok"] is True and doc["pycos"] == pycos.__version__
    assert doc["protocol"] == PROTOCOL_VERSION and doc == {"ok": True, **versions()}
    result = run(capsys, "version")
    assert result.out.splitlines()[0] == f"pycos {pycos.__version__}"
    assert f"protocol {PROTOCOL_VERSION}" in result.out


# ---------------------------------------------------------------------- secrets
def _secret(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    """A new secret file (a new name each time: one of mode 0400 cannot be rewritten)."""
    path = tmp_path / f"secret{len(list(tmp_path.iterdir()))}"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_secret_file_private_to_its_owner_is_read(tmp_path: Path) -> None:
    assert read_secret_file(str(_secret(tmp_path, b"s3cret\n"))) == "s3cret"
    assert read_secret_file(str(_secret(tmp_path, b"s3cret\r\n", 0o400))) == "s3cret"
    assert read_secret_file(str(_secret(tmp_path, b" two words  \n\n"))) == " two words  \n"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o777])
def test_secret_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _secret(tmp_path, b"s3cret", mode)
    with pytest.raises(st.CliError) as info:
        read_secret_file(str(path))
    assert info.value.code == st.FAILURE
    assert f"chmod 600 {path}" in info.value.message and f"{mode:04o}" in info.value.message
    assert "s3cret" not in info.value.message


@pytest.mark.parametrize("content,why", [(b"", "empty"), (b"\n", "empty"),
                                         (b"\xff\xfe", "UTF-8"), (b"x" * 70000, "larger")])
def test_secret_file_that_is_no_secret_is_refused(tmp_path: Path, content: bytes,
                                                  why: str) -> None:
    with pytest.raises(st.CliError, match=why):
        read_secret_file(str(_secret(tmp_path, content)))


def test_secret_file_missing_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(st.CliError, match="cannot read the secret file"):
        read_secret_file(str(tmp_path / "missing"))
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(st.CliError, match="directory"):
        read_secret_file(str(d))


def test_where_the_secret_comes_from(tmp_path: Path) -> None:
    err = io.StringIO()
    out = Output(stderr=err)
    path = str(_secret(tmp_path, b"from-file"))
    env = {ENV_VAR: "from-env"}
    assert load_secret(path, None, env, out) == ("from-file", "--secret-file")
    assert load_secret(None, None, env, out) == ("from-env", ENV_VAR)
    assert load_secret(None, None, {}, out) == ("", "none")
    assert err.getvalue() == ""
    assert load_secret(None, "on-cmdline", env, out) == ("on-cmdline", "--secret")
    warning = err.getvalue()
    assert "visible" in warning and "ps" in warning and "--secret-file" in warning
    assert "on-cmdline" not in warning


def test_a_refused_secret_file_ends_the_command_before_any_node(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _secret(tmp_path, b"s3cret", 0o644)
    result = run(capsys, "peers", "127.0.0.1:9", "--secret-file", path, "--json")
    assert result.code == st.FAILURE
    doc = result.json()
    assert doc["ok"] is False and doc["exit"] == 1 and doc["status"] == "failure"
    assert f"chmod 600 {path}" in doc["error"] and "chmod 600" in result.err
    import pycos.core.scheduler as core

    assert core.Pycos.scheduler() is None  # no node was started


# ---------------------------------------------------------------------- failures -> codes
def _counters(**changes: int) -> tuple[dict[str, int], dict[str, int]]:
    before = dict.fromkeys(("refused_auth", "refused_by_peer", "tls_errors", "refused_version",
                            "dial_failures", "connection_errors"), 0)
    return before, {**before, **changes}


@pytest.mark.parametrize("changes,reason,code,words", [
    ({"refused_auth": 1}, "authentication failed: the peer's proof is wrong", st.AUTH,
     "authentication with"),
    ({"refused_by_peer": 1}, "refused: authentication failed", st.AUTH, "secret"),
    ({"tls_errors": 1}, "TLS handshake failed: certificate verify failed", st.AUTH,
     "TLS certificates"),
    ({"refused_version": 1}, "version mismatch", st.FAILURE, "protocol version"),
    ({"refused_by_peer": 1}, "busy: max_peers reached", st.FAILURE, "refused the connection"),
    ({"dial_failures": 1}, "cannot connect to 127.0.0.1:9: [Errno 111] Connection refused",
     st.UNREACHABLE, "cannot reach 127.0.0.1:9 ([Errno 111]"),
    ({"connection_errors": 1}, "connection with 127.0.0.1:9 failed during its handshake: "
     "reset", st.UNREACHABLE, "--tls"),
    ({}, "", st.UNREACHABLE, "cannot reach 127.0.0.1:9")])
def test_failed_connections_become_exit_codes(changes: dict[str, int], reason: str, code: int,
                                              words: str) -> None:
    before, after = _counters(**changes)
    error = describe_failure(before, after, reason, Location("127.0.0.1", 9))
    assert error.code == code and words in error.message, error.message


def test_log_trap_keeps_reasons_and_restores_the_logger() -> None:
    import logging

    err = io.StringIO()
    logger = logging.getLogger("pycos")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    trap = LogTrap(Output(stderr=err))
    trap.install()
    try:
        logging.getLogger("pycos.net.x").info("not kept")
        logging.getLogger("pycos.net.x").warning("about 127.0.0.1:9: refused \x1b[2J")
        logging.getLogger("pycos.net.x").warning("something else")
    finally:
        trap.remove()
    assert (logger.level, logger.propagate, logger.handlers) == saved
    assert err.getvalue() == ""  # not verbose: nothing shown
    assert trap.reason(Location("127.0.0.1", 9)) == "about 127.0.0.1:9: refused \\x1b[2J"
    assert trap.reason() == "something else"


# ---------------------------------------------------------------------- output
def test_output_json_mode_writes_one_document() -> None:
    out_s, err_s = io.StringIO(), io.StringIO()
    out = Output(json_mode=True, stdout=out_s, stderr=err_s)
    out.line("for people")
    out.table(("A",), [("x",)])
    out.result({"ok": True, "n": 1})
    out.result({"ok": False})  # a second one is never written
    out.error("went wrong")
    assert json.loads(out_s.getvalue()) == {"ok": True, "n": 1}
    assert err_s.getvalue() == "pycos: error: went wrong\n"


def test_output_text_mode_table_and_cleaning() -> None:
    out_s = io.StringIO()
    out = Output(stdout=out_s)
    out.result({"ok": True})  # not in text mode
    out.table(("NAME", "RTT"), [("a\x1b]0;owned\x07", "1 ms"), ("bb", "-")], indent="  ")
    lines = out_s.getvalue().splitlines()
    shown = "a\\x1b]0;owned\\x07"
    assert lines == ["  " + "NAME".ljust(len(shown)) + "  RTT", f"  {shown}  1 ms",
                     "  " + "bb".ljust(len(shown)) + "  -"]
    assert "\x1b" not in out_s.getvalue()


def test_clean_and_formats() -> None:
    assert clean("plain") == "plain" and clean("tab\there") == "tab\\there"
    assert clean("x" * 300, 10) == "x" * 9 + "…"
    assert format_seconds(0.000312) == "0.312 ms" and format_seconds(2.05) == "2.05 s"
    assert format_seconds(None) == "-" and format_seconds(float("nan")) == "-"
    assert format_bytes(512) == "512 B" and format_bytes(1536) == "1.5 KiB"
    assert format_bytes(64 << 20) == "64 MiB" and format_bytes(3 << 40) == "3 TiB"
    assert format_uptime(42) == "42 s" and format_uptime(600) == "10 min"
    assert format_uptime(3 * 3600) == "3.0 h" and format_uptime(None) == "?"


def test_a_closed_pipe_does_not_break_output() -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError

    Output(stdout=Closed()).line("lost")


# ---------------------------------------------------------------------- what nodes say
def test_summarize_node_checks_every_field() -> None:
    loc = Location("127.0.0.1", 9)
    hostile = {"name": "evil\x1b[31m", "location": 5, "version": ["x"], "tls": "yes",
               "uptime": float("inf"), "started": True, "features": "not-a-list",
               "peers": [("p1", Location("127.0.0.1", 10), 0.001), "junk", ("p0\n", 3),
                         ("p2", Location("127.0.0.1", 11), "fast")]}
    node = summarize_node(hostile, loc)
    assert node["name"] == "evil\\x1b[31m" and node["location"] == "5"
    assert node["uptime"] is None and node["started"] is None and node["features"] == []
    assert node["tls"] is True
    assert node["peers"] == [
        {"name": "p0\\n", "location": "3", "srtt": None},
        {"name": "p1", "location": "127.0.0.1:10", "srtt": 0.001},
        {"name": "p2", "location": "127.0.0.1:11", "srtt": None}]
    assert summarize_node({"peers": 5, "features": None}, loc)["peers"] == []
    empty = summarize_node({}, loc)
    assert empty["name"] == "?" and empty["location"] == "127.0.0.1:9" and empty["peers"] == []


def test_rtt_stats() -> None:
    assert rtt_stats([]) is None
    stats = rtt_stats([0.001, 0.003, 0.002])
    assert stats is not None
    assert (stats["min"], stats["max"], stats["median"]) == (0.001, 0.003, 0.002)
    assert stats["avg"] == pytest.approx(0.002)
    assert stats["mdev"] == pytest.approx((2 / 3) ** 0.5 * 0.001)


# ---------------------------------------------------------------------- send
def test_check_files(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    assert check_files([str(f)]) == [(str(f), 3)]
    with pytest.raises(st.CliError, match="no such file") as info:
        check_files([str(f), str(tmp_path / "nope")])
    assert info.value.code == st.FAILURE
    with pytest.raises(st.CliError, match="not a regular file"):
        check_files([str(tmp_path)])


def test_send_of_a_missing_file_fails_before_any_node(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    result = run(capsys, "send", tmp_path / "nope", "127.0.0.1:9")
    assert result.code == st.FAILURE and result.out == ""
    assert result.err == f"pycos: error: no such file: {tmp_path / 'nope'}\n"


def test_outcome_of_send_file() -> None:
    assert outcome(0)[0] == "sent" and outcome(1)[0] == "same" and outcome(-1)[0] == "failed"
    stat = os.stat_result((0o644, 0, 0, 1, 0, 0, 10, 0, 0, 0))
    word, meaning = outcome(stat)
    assert word == "exists" and "--overwrite" in meaning and "10 bytes" in meaning
    assert outcome(True)[0] == "same" and outcome(None)[0] == "failed"


# ---------------------------------------------------------------------- progress bars
class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_builtin_bar_draws_in_place_at_most_ten_times_a_second() -> None:
    written: list[str] = []
    clock = FakeClock()
    bar = Bar("data.bin", 1000, written.append, width=80, clock=clock)
    bar.update(100, 1000)  # first: drawn
    clock.t += 0.05
    bar.update(200, 1000)  # too soon: not drawn
    clock.t += 0.06
    bar.update(300, 1000)  # drawn
    clock.t += 0.01
    bar.update(1000, 1000)  # the end: always drawn
    bar.close()
    bar.close()
    assert bar.draws == 4
    assert all(w.startswith("\r") for w in written[:-1]) and written[-1] == "\n"
    assert all(len(w) == 80 for w in written[:-1])  # "\r" + 79 columns
    assert written[0].startswith("\rdata.bin  10% [####....")
    assert "100 B / 1000 B" in written[0]
    assert written[2].startswith("\rdata.bin 100% [###")
    cells = written[2].split("[")[1].split("]")[0]
    assert cells == "#" * len(cells) and len(cells) >= 20
    assert "1000 B / 1000 B" in written[2] and "B/s" in written[2]
    assert all(ch == "\r" or ch == "\n" or ch.isprintable() for w in written for ch in w)


def test_builtin_bar_fits_narrow_terminals_and_draws_nothing_unused() -> None:
    bar = Bar("a-very-long-file-name-indeed.tar.gz", 5 << 20, lambda s: None, width=40,
              clock=FakeClock())
    line = bar.render(1 << 20, 1.0)
    assert len(line) <= 39 and " 20% " in line and line.endswith("1 MiB/s"), line
    assert line.startswith("a-very-lo") and "~ " in line
    written: list[str] = []
    unused = Bar("x", 10, written.append, width=80)
    unused.close()
    assert written == []  # the file was there already: no bar at all
    assert Bar("x", 0, lambda s: None, width=80).render(0, 0).startswith("x 100% [")


class _FakeTqdm:
    made: list[_FakeTqdm] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.n = 0
        self.closed = False
        _FakeTqdm.made.append(self)

    def update(self, n: int) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_progress_chooses_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed
    assert isinstance(make_progress("auto", "f", 10, io.StringIO(), lambda s: None), NoBar)
    assert isinstance(make_progress("auto", "f", 10, _Tty(), lambda s: None), Bar)
    assert isinstance(make_progress("builtin", "f", 10, _Tty(), lambda s: None), Bar)
    assert isinstance(make_progress("none", "f", 10, _Tty(), lambda s: None), NoBar)
    with pytest.raises(ValueError, match="tqdm is not installed"):
        make_progress("tqdm", "f", 10, _Tty(), lambda s: None)
    with pytest.raises(ValueError, match="one of"):
        make_progress("fancy", "f", 10, _Tty(), lambda s: None)

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=_FakeTqdm))
    stream = io.StringIO()
    bar = make_progress("auto", "f\x1b.bin", 10, stream, lambda s: None)
    assert isinstance(bar, TqdmBar)
    fake = _FakeTqdm.made[-1]
    assert fake.kwargs["total"] == 10 and fake.kwargs["file"] is stream
    assert fake.kwargs["disable"] is None and fake.kwargs["unit"] == "B"
    assert fake.kwargs["desc"] == "f\\x1b.bin"
    bar.update(4, 10)
    bar.update(4, 10)
    bar.update(10, 10)
    bar.close()
    assert fake.n == 10 and fake.closed
    assert isinstance(make_progress("builtin", "f", 10, _Tty(), lambda s: None), Bar)


# ---------------------------------------------------------------------- node
def test_stdin_is_pipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        with os.fdopen(os.dup(r)) as pipe:
            monkeypatch.setattr(sys, "stdin", pipe)
            assert stdin_is_pipe()
    finally:
        os.close(r)
        os.close(w)
    a, b = socket.socketpair()
    with a, b, os.fdopen(os.dup(a.fileno())) as sock_in:
        monkeypatch.setattr(sys, "stdin", sock_in)
        assert stdin_is_pipe()
    with open(os.devnull) as null:
        monkeypatch.setattr(sys, "stdin", null)
        assert not stdin_is_pipe()
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    assert not stdin_is_pipe()
