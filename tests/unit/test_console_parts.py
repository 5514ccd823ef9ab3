"""Console parts without a network: input completeness, the top-level-yield transform,
per-thread capture, completion, output truncation; and a session on a Unix socket in this
process (sessions, shared.m, interrupts, limits)."""

from __future__ import annotations

import ast
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from pycos.console import ConsoleRefused, ConsoleServer, connect
from pycos.console.capture import OutputSink, capture, install, uninstall
from pycos.console.cells import (
    compile_cell,
    has_top_level_yield,
    is_complete,
    run_cell,
    top_level_names,
)
from pycos.console.completion import complete, jedi_available


@pytest.mark.parametrize("source, state", [
    ("1 + 1", "complete"), ("x = 41\nx + 1", "complete"), ("if x:", "incomplete"),
    ("def f():\n    return 1", "incomplete"), ("def f():\n    return 1\n", "complete"),
    ("(1,\n 2", "incomplete"), ("'''abc", "incomplete"), ("x = yield op", "complete"),
    ("for i in range(3):\n    y = yield i\n", "complete"), ("x = = 1", "invalid"),
    ("", "complete"),
])
def test_input_completeness_follows_codeop(source: str, state: str) -> None:
    assert is_complete(source) == state


def test_top_level_yield_becomes_a_generator_cell() -> None:
    tree = ast.parse("import os\nx, y = 1, 2\ndef f(): yield 3\nfor i in range(2): z = i\n"
                     "r = yield x\nr + 1")
    assert has_top_level_yield(tree)
    assert not has_top_level_yield(ast.parse("def f():\n    yield 1\nlambda: (yield)"))
    assert set(top_level_names(tree)) == {"os", "x", "y", "f", "i", "z", "r"}
    cell = compile_cell("a = yield 20\nb = yield a + 1\na + b")
    ns: dict[str, object] = {}
    seen: list[object] = []

    def run_op(op: object) -> object:
        seen.append(op)
        return op

    assert cell.generator and run_cell(cell, ns, run_op) == 41
    assert seen == [20, 21] and ns["a"] == 20 and ns["b"] == 21 and "__pycos_cell__" not in ns


def test_an_exception_of_an_operation_is_raised_at_its_yield() -> None:
    cell = compile_cell("try:\n    yield 1\nexcept KeyError as e:\n    caught = str(e)\ncaught")

    def fail(op: object) -> object:
        raise KeyError("lost")

    assert run_cell(cell, {}, fail) == "'lost'"


def test_plain_cells_give_the_last_expression() -> None:
    ns: dict[str, object] = {}
    assert run_cell(compile_cell("x = 41\nx + 1"), ns, lambda op: op) == 42
    assert run_cell(compile_cell("y = 1"), ns, lambda op: op) is None


def test_capture_is_per_thread_and_truncates() -> None:
    install()
    try:
        got: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}
        barrier = threading.Barrier(2)

        def writer(name: str, limit: int) -> None:
            sink = OutputSink(limit, lambda s, t: got[name].append((s, t)))
            with capture(sink):
                barrier.wait()
                for i in range(50):
                    print(f"{name}{i}")
                sys.stderr.write("oops")
            got[name].append(("dropped", str(sink.dropped)))

        threads = [threading.Thread(target=writer, args=("a", 10_000)),
                   threading.Thread(target=writer, args=("b", 20))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        text_a = "".join(t for s, t in got["a"] if s == "out")
        assert text_a.split() == [f"a{i}" for i in range(50)]
        assert ("err", "oops") in got["a"] and "b" not in text_a
        text_b = "".join(t for s, t in got["b"] if s == "out")
        assert "[output truncated at 20 bytes]" in text_b and int(got["b"][-1][1]) > 100
    finally:
        uninstall()
    assert type(sys.stdout).__name__ != "Dispatcher"  # uninstall() put the stream back


def test_completion_over_a_namespace() -> None:
    class Shared:
        def __init__(self) -> None:
            self.m: dict[str, int] = {}

    ns = {"shared": Shared(), "value": 3}
    assert complete(ns, "shared.m.ke") == ["shared.m.keys("]
    assert "value" in complete(ns, "x = val")
    assert complete(ns, "shared.m.ke", cursor=7) == ["shared.m"]  # the name before the cursor
    assert "shared.m" in complete(ns, "shared.", cursor=7)
    assert "print(" in complete(ns, "pri")
    assert complete(ns, "") == []
    if jedi_available():
        assert "shared.m.keys" in complete(ns, "shared.m.ke", engine="jedi")


@pytest.fixture
def unix_console(tmp_path: Path):  # type: ignore[no-untyped-def]
    servers: list[ConsoleServer] = []

    def make(**kwargs: object) -> tuple[ConsoleServer, str]:
        path = str(tmp_path / f"c{len(servers)}" / "console.sock")
        server = ConsoleServer(unix_path=path, **kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server, "unix:" + path

    yield make
    for server in servers:
        server.stop()


def test_sessions_share_m_and_keep_their_own_names(unix_console) -> None:  # type: ignore[no-untyped-def]
    server, target = unix_console()
    path = target[5:]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    with connect(target) as a, connect(target) as b:
        assert a.run("mine = 1\nshared.m['seen'] = 'by a'").ok
        assert b.run("shared.m['seen']").value_repr == "'by a'"
        assert "NameError" in (b.run("mine").error or "")
        assert a.run("print('hi'); 6 * 7").stdout == "hi\n"
    assert server.shared.m == {"seen": "by a"}
    with connect(target) as c:  # after both sessions ended
        assert c.run("shared.m['seen']").value_repr == "'by a'"


def test_interrupt_limits_and_too_many_sessions(unix_console) -> None:  # type: ignore[no-untyped-def]
    server, target = unix_console(max_sessions=2, max_cell=1000, max_output=5000)
    with connect(target) as a, connect(target):
        with pytest.raises(ConsoleRefused, match="2 sessions"):
            connect(target)
        threading.Timer(0.3, a.interrupt).start()
        began = time.monotonic()
        result = a.run("while True:\n    pass\n")
        assert result.status == "interrupted" and time.monotonic() - began < 5
        big = a.run("x = '" + "y" * 2000 + "'")
        assert big.status == "refused" and "1000 bytes" in (big.error or "")
        out = a.run("print('z' * 100_000)")
        assert out.truncated > 90_000 and len(out.stdout) < 5200
        assert a.run("1 + 1").value_repr == "2"
    assert server.refusals["too_many_sessions"] == 1
    assert server.refusals["cell_too_large"] == 1
