"""The parts of ``python -m pycos fetch`` and ``put`` that need no node: their grammar, the
checks of their arguments (status 2, with the fix), the checks of the local directories (status
1 before any node starts), the bar fed by a swarm's progress calls, and the report.

The transfers themselves run as processes against a gateway process in
``tests/integration/test_cli_swarm.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from pycos.cli import main
from pycos.cli import status as st
from pycos.cli.fetch import check_destination
from pycos.cli.output import Output
from pycos.cli.parser import build_parser
from pycos.cli.progress import Bar, FileProgress, NoBar
from pycos.cli.put import check_source
from pycos.cli.transfer import Transfer, folder_arg, regex_arg, relative_dir_arg, swarm_arg


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fetch_and_put_parse_with_their_defaults() -> None:
    parser = build_parser()
    a = parser.parse_args(["fetch", "127.0.0.1:9", "logs/2024"])
    assert (a.command, a.node.port, a.folder, a.to, a.swarm, a.regex, a.gateway, a.keep,
            a.durable, a.quiet, a.progress, a.timeout, a.json) == \
        ("fetch", 9, "logs/2024", ".", 4, None, "gateway", False, False, False, "auto", 5.0,
         False)
    a = parser.parse_args(["put", "src", "127.0.0.1:9", "--dir", "runs/7", "--swarm", "1",
                           "--overwrite", "--regex", r".+\.log", "--json", "-q"])
    assert (a.command, a.source, a.node.port, a.dir, a.swarm, a.overwrite, a.regex, a.json,
            a.quiet) == ("put", "src", 9, "runs/7", 1, True, r".+\.log", True, True)


@pytest.mark.parametrize("text,why", [
    ("log(", "missing )"), ("*.log", "nothing to repeat"), ("[a-", "unterminated")])
def test_a_bad_regex_names_the_mistake_and_the_fix(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        regex_arg(text)
    message = str(info.value)
    assert repr(text) in message and why in message
    assert "re.fullmatch" in message and r"--regex '.+\.log'" in message
    assert regex_arg(r".+\.log") == r".+\.log"


def test_folder_swarm_and_dir_checks() -> None:
    assert folder_arg("logs") == "logs"
    assert folder_arg("logs//2024/./01/") == "logs/2024/01"
    for text, why in (("/var/log", "a path on the node"), ("logs/../..", "climbs out"),
                      ("", "expected EXPORT[/DIR]"), ("./.", "names no export"),
                      ("a\x00b", "is not a folder")):
        with pytest.raises(argparse.ArgumentTypeError, match=why.replace("[", r"\[")):
            folder_arg(text)
    assert swarm_arg("1") == 1 and swarm_arg("64") == 64
    for text in ("0", "65", "-1", "four", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="1..64"):
            swarm_arg(text)
    assert relative_dir_arg("runs/7") == "runs/7"
    for text in ("../x", "/abs"):
        with pytest.raises(argparse.ArgumentTypeError, match="below the node's dest_path"):
            relative_dir_arg(text)


@pytest.mark.parametrize("argv", [
    ["fetch", "127.0.0.1:9"], ["fetch", "127.0.0.1:9", "logs", "--regex", "log("],
    ["fetch", "127.0.0.1:9", "/etc"], ["fetch", "127.0.0.1:9", "logs", "--swarm", "100"],
    ["put", "dir", "127.0.0.1:9", "--dir", "../up"], ["put", "127.0.0.1:9"],
    ["fetch", "127.0.0.1:9", "logs", "--progress", "fancy"]])
def test_usage_errors_give_status_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv, "--json")
    assert code == st.USAGE and out == "" and "usage: pycos" in err


def test_local_directories_are_checked_before_any_node(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    code, out, err = run(capsys, "put", missing, "127.0.0.1:9", "--json")
    assert code == st.FAILURE and json.loads(out) == {
        "ok": False, "error": f"no such directory: {missing}", "exit": 1, "status": "failure"}
    (tmp_path / "file").write_text("x")
    code, out, err = run(capsys, "put", tmp_path / "file", "127.0.0.1:9")
    assert code == st.FAILURE and "pycos send FILE... NODE" in err and out == ""
    code, out, err = run(capsys, "fetch", "127.0.0.1:9", "logs", "--to", tmp_path / "file")
    assert code == st.FAILURE and "is not a directory" in err
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(st.CliError, match="writable by every user; choose a directory of your"):
        check_destination(str(open_dir))
    assert check_destination(str(tmp_path / "new")) == str(tmp_path / "new")
    assert check_destination(str(tmp_path)) == str(tmp_path.resolve())
    assert check_source(str(tmp_path)) == str(tmp_path.resolve())
    assert not (tmp_path / "new").exists()


def test_file_progress_counts_files_in_the_label_and_bytes_in_the_bar() -> None:
    written: list[str] = []
    bar = Bar("logs", 0, written.append, width=80)
    progress = FileProgress(bar, "logs")
    assert progress.last == (0, 0, 0, 0)
    threads = [threading.Thread(target=progress, args=(i + 1, 4, (i + 1) * 1000, 4000))
               for i in range(4)]
    for t in threads:  # called from a swarm's threads
        t.start()
    for t in threads:
        t.join()
    progress(4, 4, 4000, 4000)
    bar.close()
    assert progress.last == (4, 4, 4000, 4000)
    assert written[-2].startswith("\rlogs 4/4 100% [###") and "3.91 KiB / 3.91 KiB" in \
        written[-2], written
    assert written[-1] == "\n" and bar.total == 4000
    quiet = FileProgress(NoBar(), "x")
    quiet(1, 1, 5, 5)
    assert quiet.last == (1, 1, 5, 5)


class _Transferred(list):  # type: ignore[type-arg]
    def __init__(self, paths: list[str], same: int = 0,
                 failed: dict[str, str] | None = None) -> None:
        super().__init__(paths)
        self.same = same
        self.failed = failed or {}
        self.truncated = False


def _transfer(json_mode: bool) -> tuple[Transfer, io.StringIO, io.StringIO]:
    stdout, stderr = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["put", "src", "127.0.0.1:9706", "--swarm", "2"])
    transfer = Transfer(args, Output(json_mode, stdout, stderr), "put", "put", "src")
    transfer.seconds, transfer.counts = 0.5, (3, 3, 2048, 2048)
    return transfer, stdout, stderr


def test_report_names_each_failed_file_with_its_fix() -> None:
    transfer, stdout, stderr = _transfer(False)
    result = _Transferred(["a", "b"], same=1, failed={"c\x1b": "exists"})
    code = transfer.report(result, "from src to 127.0.0.1:9706", {}, list(result),
                           {"exists": "a different file of that name is there; use --overwrite"})
    assert code == st.FAILURE
    assert stdout.getvalue() == ("src: put 2 files (2 KiB) from src to 127.0.0.1:9706 over 2 "
                                 "connections in 0.50 s (4 KiB/s); 1 of them were there "
                                 "already\n")
    assert stderr.getvalue() == ("pycos: error: c\\x1b: a different file of that name is "
                                 "there; use --overwrite\n")

    transfer, stdout, stderr = _transfer(True)
    code = transfer.report(_Transferred(["a"]), "somewhere", {"dir": None}, ["a"])
    doc = json.loads(stdout.getvalue())
    assert code == st.OK and doc["ok"] is True and doc["files"] == ["a"]
    assert (doc["transferred"], doc["same"], doc["bytes"], doc["swarm"], doc["dir"]) == \
        (1, 0, 2048, 2, None)

    transfer, stdout, stderr = _transfer(False)
    cut = _Transferred(["a"])
    cut.truncated = True  # the gateway's listing stopped at its limit: not everything moved
    assert transfer.report(cut, "x", {}, ["a"]) == st.FAILURE
    assert "stopped at its limit" in stderr.getvalue()

    transfer, stdout, stderr = _transfer(False)
    transfer.args.regex = r".+\.log"
    assert transfer.report(_Transferred([]), "x", {}, []) == st.OK
    assert stdout.getvalue() == "src: nothing to put: no file matches --regex '.+\\\\.log'\n"
