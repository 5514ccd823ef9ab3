"""``python -m pycos node --discover`` and ``diag --discover`` on a private LAN.

The only CLI test that broadcasts, so it runs inside network namespaces it creates
(``netns.Lan``: hosts ``10.200.1.<i>`` on a bridge of their own); nothing is sent on the
machine's interfaces. Host 1 runs a node that announces itself with the LAN's secret; host 2
runs ``diag --discover``, which must hear it, and count as dropped the announcement of a node
with another secret that starts while it listens. A query from host 2 reaches host 1's node
with the command's own node on its default address, 127.0.0.1. Skipped, with the reason,
where namespaces cannot be made (not root, no ``ip``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from netns import Lan, Proc, netns_unavailable  # noqa: E402

if not sys.platform.startswith("linux"):
    pytest.skip("network namespaces are a Linux feature", allow_module_level=True)
_WHY = netns_unavailable()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)


@pytest.fixture
def lan() -> Iterator[Lan]:
    with Lan(hosts=2, ipv6=False) as net:
        yield net


def _secret(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def _pycos(lan: Lan, host: int, *args: object) -> list[str]:
    return lan.exec_argv(host, ["env", f"PYTHONPATH={ROOT}", "PYTHONUNBUFFERED=1",
                                sys.executable, "-m", "pycos", *map(str, args)])


def test_diag_hears_the_nodes_of_its_secret_and_counts_the_others(lan: Lan,
                                                                    tmp_path: Path) -> None:
    ours = _secret(tmp_path, "ours", "the lan's secret")
    theirs = _secret(tmp_path, "theirs", "another secret")
    procs: list[Proc] = []
    diag = None
    try:
        node = Proc(_pycos(lan, 1, "node", "--json", "--discover", "--host", lan.ipv4(1),
                           "--name", "lan-a", "--secret-file", ours), "lan-a")
        procs.append(node)
        ready = json.loads(node.wait_line('{"event": "ready"', 15))
        assert ready["location"].startswith(lan.ipv4(1) + ":")
        # from another host, with the command's node on its default 127.0.0.1
        ping = subprocess.run(_pycos(lan, 2, "ping", ready["location"], "-c", "2", "-i",
                                     "0.05", "--json", "--secret-file", ours),
                              capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0, ping.stderr
        assert json.loads(ping.stdout)["received"] == 2

        diag = subprocess.Popen(_pycos(lan, 2, "diag", "--discover", "--bind", lan.ipv4(2),
                                       "--seconds", "3", "--json", "--secret-file", ours),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # diag listens now; a node with another secret announces itself
        other = Proc(_pycos(lan, 1, "node", "--json", "--discover", "--host", lan.ipv4(1),
                            "--name", "lan-x", "--secret-file", theirs), "lan-x")
        procs.append(other)
        other.wait_line('{"event": "ready"', 15)
        out, err = diag.communicate(timeout=30)
        assert diag.returncode == 0, err
        doc = json.loads(out)
        disc = doc["discovery"]
        assert disc["enabled"] is True and disc["udp_port"] == 9705
        assert {(n["name"], n["location"]) for n in disc["nodes_heard"]} == \
            {("lan-a", ready["location"])}, doc
        assert disc["datagrams_dropped"] >= 1 and disc["drop_reasons"], doc
        assert doc["node"]["hidden"] is False
        assert doc["node"]["addresses"] == [lan.ipv4(2)]
        assert any(i["broadcast"] == lan.broadcast for i in doc["interfaces"]), doc
        # the node on host 1 saw the diag node come and go (it was visible, not hidden)
        node.wait_line('{"event": "online", "name": "pycos-cli-', 10)
    finally:
        if diag is not None and diag.poll() is None:
            diag.kill()
            diag.wait(timeout=5)
        for proc in procs:
            proc.stop()
    assert all(p._popen.returncode == 0 for p in procs), [p.stderr for p in procs]
