"""Smoke tests of the I/O examples: each runs as its own process, ends by itself (time limit 60
s), exits with code 0, prints no traceback and prints the lines listed here.

Lines under ``ordered`` must appear in that order; lines under ``anywhere`` must appear, in any
order (they come from concurrent tasks or threads).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED: dict[str, dict[str, list[str]]] = {
    "socket_server_client.py": {
        "anywhere": ["client-1: hello world", "client-2: pycos", "client-3: back to front"],
        "ordered": ["server: answered 6 requests from 3 clients"],
    },
    "chat_server.py": {
        "anywhere": [],
        "ordered": [
            "alice sees  server: welcome alice, 1 online",
            "bob sees  server: welcome bob, 2 online",
            "alice sees  bob: joined",
            "bob sees  alice: hi bob",
            "alice sees  bob: hello alice",
            "bob sees  alice: see you",
            "bob sees  alice: left",
            "server: everybody left, closing",
        ],
    },
    "udp_echo.py": {
        "anywhere": [],
        "ordered": [
            "client: 'hello' -> 'HELLO'",
            "client: 'drop me' -> no reply (timed out)",
            "client: 'udp works' -> 'UDP WORKS'",
            "server: stopped",
        ],
    },
    "pipe_pipeline.py": {
        "anywhere": [],
        "ordered": [
            "pipeline: 1 squared is 1",
            "pipeline: 5 squared is 25",
            "pipeline: sum of squares 55, exit status 0",
            "communicate: stdout 'QUIET WORDS'",
            "communicate: stderr 'shouted 12 characters', exit status 7",
            "main: the ticker kept running meanwhile (yes)",
        ],
    },
    "socket_to_file.py": {
        "anywhere": [],
        "ordered": ["received 8388608 bytes into received.bin", "checksums match"],
    },
    "tiny_httpd.py": {
        "anywhere": [
            "thread client: 200 <html><body><h1>Hello from pycos</h1></body></html>",
        ],
        "ordered": [
            "server: GET /missing -> 404 Not Found",
            "task client: HTTP/1.0 404 Not Found",
            "server: GET / -> 200 OK",
            "server: done",
        ],
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_io_example(name: str, tmp_path: Path) -> None:
    path = EXAMPLES / name
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    for line in EXPECTED[name]["anywhere"]:
        assert line in lines, f"{name}: missing {line!r} in:\n{proc.stdout}"
    position = 0
    for line in EXPECTED[name]["ordered"]:
        assert line in lines[position:], f"{name}: missing {line!r} (in order) in:\n{proc.stdout}"
        position = lines.index(line, position) + 1
