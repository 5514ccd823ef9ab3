"""Eight topic nodes around a root, as ``bench/programs/topics_bench.py pairing`` runs them
(EXTRAS §3.6 T5), in one process: nine node identities on one scheduler, each member in a
thread of its own that ``connect``s to the root and runs ``discovery(on_pair="disconnect")``.

How the members arrive decides which paths are taken:

* all at once: their floods cross at the root, members dial each other at the same time;
* in waves, each wave starting once the one before has paired and left the root: a wave then
  finds a root with nobody to forward its floods to. A wave of one is the member the bench
  left "paired alone" for the whole timeout, keeping its root link (about 2 runs in 3). With
  the cap of 5, six members may fill each other up and leave a seventh without room; it
  pairs with the next wave, which then comes 0.5 s after the one before;
* at random moments over 0.2 s, as processes start.

Every member must pair within 2 s of the last start of its wave, none alone, and every root
link is dropped.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pycos.topics import TopicNode

LIMIT = 2.0
WAVE_GAP = 0.5


@pytest.fixture
def nodes() -> Iterator[list[TopicNode]]:
    made: list[TopicNode] = []
    yield made
    for tn in reversed(made):
        tn.close()


def describe(tn: TopicNode) -> dict[str, Any]:
    """What a member that paired alone knew (for the failure message)."""
    mesh = tn.mesh
    names = {inc: e.name for inc, e in mesh.entries.items()}
    return {"stats": {k: v for k, v in tn.stats().items() if v},
            "peers": sorted(e.name for e in mesh.entries.values()),
            "refused": sorted(names.get(k, "?") for k in mesh.pairing.refused.get("P", ())),
            "pending": sorted(names.get(k, "?") for k in mesh.pairing.pending.get("P", ())),
            "referred": len(mesh.referred)}


@pytest.mark.parametrize("waves, jitter", [
    ((8,), 0.0),
    ((7, 1), 0.0),
    ((4, 3, 1), 0.0),
    ((2, 1, 2, 1, 1, 1), 0.0),
    ((8,), 0.2),
], ids=["together", "7+1", "4+3+1", "2+1+2+1+1+1", "jitter"])
def test_eight_members_around_a_root_all_pair(nodes: list[TopicNode], waves: tuple[int, ...],
                                              jitter: float) -> None:
    root = TopicNode([], name="root", root=True)
    nodes.append(root)
    members = [TopicNode(["P"], name=f"m{i}") for i in range(sum(waves))]
    nodes.extend(members)
    results: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    rng = random.Random(len(waves))

    def member(tn: TopicNode, wave: int, delay: float, done: threading.Event) -> None:
        time.sleep(delay)
        started = time.monotonic()
        try:
            assert tn.connect(root) == 0
            pairs = tn.discovery(on_pair="disconnect", timeout=10)
            with lock:
                results[tn.name] = {"wave": wave, "started": started,
                                    "paired": time.monotonic(), "pairs": pairs["P"]}
        finally:
            done.set()

    threads: list[threading.Thread] = []
    it = iter(members)
    for wave, size in enumerate(waves):
        dones = [threading.Event() for _ in range(size)]
        for done in dones:
            delay = rng.uniform(0, jitter) if jitter else 0.0
            threads.append(threading.Thread(target=member, args=(next(it), wave, delay, done),
                                            daemon=True))
            threads[-1].start()
        # the next wave comes once this one has paired and left the root; a member the
        # others left without room (6 nodes at the cap of 5 fill each other up) waits for the
        # next wave instead: it comes after WAVE_GAP
        deadline = time.monotonic() + WAVE_GAP
        for done in dones:
            done.wait(max(0.0, deadline - time.monotonic()))
    for th in threads:
        th.join(20)
    assert len(results) == len(members), "a member's thread failed (see the captured output)"
    alone = {tn.name: describe(tn) for tn in members if not results[tn.name]["pairs"]}
    assert not alone, f"paired alone: {alone}"
    for wave in range(len(waves)):
        these = [r for r in results.values() if r["wave"] == wave]
        took = max(r["paired"] for r in these) - max(r["started"] for r in these)
        assert took <= LIMIT, f"wave {wave} paired {took:.2f} s after its last start"
    locations = {tn.location for tn in members}
    for tn in members:
        pairs = tn.status()["pairs"]["P"]
        assert pairs and set(pairs) <= locations - {tn.location}
        assert not tn.mesh.alone
        assert not tn.is_connected_to(root), f"{tn.name} kept its root link"
