"""Chunk sizing and reassignment bookkeeping, execute's last-expression rule, payload checks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycos.ship import CodeRefused, wire
from pycos.ship.cells import run_source
from pycos.ship.chunks import MISSING, ChunkPlan


def test_first_chunk_is_n_over_four_workers_then_sized_by_time() -> None:
    plan = ChunkPlan(10_000, 4)
    first = plan.take("w1")
    assert first is not None and len(first) == math.ceil(10_000 / 16) == 625
    plan.complete(first.cid, list(range(625)), 0.000625, "A")  # 1 µs per item
    second = plan.take("w1")
    assert second is not None
    share = math.ceil((10_000 - 625) / 8)
    assert len(second) == min(10_000, share)  # 10 ms / 1 µs, capped by an even share
    plan2 = ChunkPlan(1000, 2)
    c = plan2.take("slow")
    assert c is not None
    plan2.complete(c.cid, [0] * len(c), 1.0, "B")  # 8 ms per item: ~1 item per chunk
    assert len(plan2.take("slow") or []) == 1
    fixed = ChunkPlan(10, 3, chunksize=4)
    assert [len(fixed.take(w) or []) for w in "abcd"] == [4, 4, 2, 0]


def test_a_lost_workers_chunks_are_reassigned_and_each_result_kept_once() -> None:
    plan = ChunkPlan(100, 2, chunksize=10)
    a1, a2 = plan.take("a"), plan.take("a")
    b1 = plan.take("b")
    assert a1 and a2 and b1
    assert plan.lost(lambda w: w == "a") == 2
    assert plan.reassigned == 2 and not plan.give_back(a1.cid, "a")
    again = plan.take("b")
    assert again is a1 and again.worker == "b"
    plan.complete(b1.cid, [f"b{i}" for i in range(10)], 0.01, "B")
    plan.complete(again.cid, ["x"] * 10, 0.01, "B")
    assert plan.complete(again.cid, ["dup"] * 10, 0.01, "B") == []  # a duplicate is ignored
    while (chunk := plan.take("b")) is not None:
        plan.complete(chunk.cid, [chunk.start + i for i in range(len(chunk))], 0.01, "B")
    assert plan.finished and MISSING not in plan.results
    assert plan.results[a1.start] == "x" and plan.ran_on[0] == "B"
    assert sorted(plan.order) == list(range(100))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(1, 6), st.lists(st.tuples(st.integers(0, 5),
                                                                  st.booleans()), max_size=80))
def test_any_interleaving_of_losses_gives_every_result_exactly_once(
        n: int, workers: int, script: list[tuple[int, bool]]) -> None:
    plan = ChunkPlan(n, workers)
    names = [f"w{i}" for i in range(workers)]
    lost: set[str] = set()
    for pick, lose in script:
        alive = [w for w in names if w not in lost]
        if not alive:
            break
        worker = alive[pick % len(alive)]
        if lose and len(alive) > 1:
            lost.add(worker)
            plan.lost(lambda w, lost=lost: w in lost)
            continue
        chunk = plan.take(worker)
        if chunk is not None:
            plan.complete(chunk.cid, list(range(chunk.start, chunk.stop)), 0.001, worker)
    survivor = next(w for w in names if w not in lost) if len(lost) < workers else None
    while survivor is not None and (chunk := plan.take(survivor)) is not None:
        plan.complete(chunk.cid, list(range(chunk.start, chunk.stop)), 0.001, survivor)
    if survivor is not None:
        assert plan.finished and plan.results == list(range(n))
        assert sorted(plan.order) == list(range(n))


def test_execute_returns_the_last_expression_and_keeps_definitions() -> None:
    ns: dict[str, object] = {}
    assert run_source("x = 41\nx + 1", ns) == 42 and ns["_"] == 42
    assert run_source("def f(y):\n    return y * x\nclass C: pass", ns) is None
    assert run_source("f(2), C.__name__", ns) == (82, "C")
    assert run_source("", ns) is None
    with pytest.raises(SyntaxError):
        run_source("x = ", ns)
    with pytest.raises(ZeroDivisionError):
        run_source("1/0", ns)


@pytest.mark.parametrize("payload", [None, "x", (), ("a" * 64, "n", 3), ("G" * 64, "n", None),
                                     ("a" * 63, "n", None), ("a" * 64, "", None),
                                     ("a" * 64, "\x00", None)])
def test_malformed_module_payloads_are_refused(payload: object) -> None:
    with pytest.raises(CodeRefused, match="malformed"):
        wire.check_module(payload)


def test_payload_checks_accept_well_formed_requests() -> None:
    sha = "a" * 64
    assert wire.check_module((sha, "jobs", None)) == (sha, "jobs", None)
    assert wire.check_call((sha, "f", (1,), {"k": 2}, "src", "m", False))[2] == (1,)
    for bad in [(sha, "f", [1], {}, None, "m", False), (sha, "f", (), {1: 2}, None, "m", False),
                (sha, "f", (), {}, None, "m", 1)]:
        with pytest.raises(CodeRefused):
            wire.check_call(bad)
    assert wire.check_map((sha, "f", [1, 2], None, "m"))[2] == [1, 2]
    with pytest.raises(CodeRefused):
        wire.check_map((sha, "f", (1, 2), None, "m"))
    assert wire.check_exec(("default", "1+1", False)) == ("default", "1+1", False)
    assert wire.check_key(("ns", "part", [1], False), True)[2] == [1]
    with pytest.raises(CodeRefused):
        wire.check_key(("ns", "not an identifier", 1, False), True)
