"""Every code block of ``README.md`` and ``doc/*.rst`` runs as written, or says that it does not.

The blocks are found in the text: in reStructuredText, a literal block after a paragraph ending
in ``::`` (Python, as Sphinx highlights it) or a ``.. code-block:: LANGUAGE`` directive; in
Markdown, a fenced block, which must name its language. How a block is checked follows from
its language and from an optional *marker*: a comment between the previous block and this one
(in reST not between a paragraph ending in ``::`` and its block, where it would end the block),
which applies to the next block only::

    .. pycos-doc: KIND [NAME] [OPTION ...]          (reST)
    <!-- pycos-doc: KIND [NAME] [OPTION ...] -->    (Markdown)

Python blocks, by kind:

``program`` (the default, no marker needed)
    A complete program. It runs in a process of its own, in an empty temporary directory, with
    this repository first on ``PYTHONPATH`` and the ``pycos`` logger printing warnings to
    stderr, and must exit with status 0 within ``TIMEOUT`` seconds, without a traceback in its
    output (a task that raised and was logged counts).
``server NAME`` / ``client NAME``
    Two programs of one page that work together (two nodes, a server and its client), on
    127.0.0.1 only. The server starts first and prints a line once it serves; the client then
    runs and must exit with 0 (so a client that finds no server must exit with an error); then
    the server must end by itself, with 0. Each within ``TIMEOUT`` seconds, checked as above.
``fragment``
    Part of a program, deliberately not runnable as it stands (it uses names from the text
    around it, or hosts that are not this machine). It is not run, but it must compile (inside
    a generator function, since fragments often ``yield``), and the text since the block before
    it must tell the reader, with the word "fragment".

Options: ``certs`` puts the test certificates of ``tests/certs.py`` in the block's directory
first (``ca.pem``, ``server.pem``/``server.key``, ``client.pem``/``client.key``,
``self.pem``/``self.key``, and ``node.pem``/``node.key``, a copy of the self-signed pair);
``expect-errors``: the block makes a task fail on purpose, so tracebacks in its log are
expected.

Blocks in other languages are not run: ``text`` and ``none`` show output or diagrams; shell
blocks (``sh``, ``console``) are commands for the reader — installing, running the suite or an
example, which other tests do — and are checked for shell syntax, for the repository files they
name and for the Python modules they run with ``python -m``. Every run takes a lock shared by
all test runs on the machine, because the networked examples use fixed ports on 127.0.0.1.

Pages that another part of the project edits may have blocks that fail; those are listed in
``KNOWN_FAILURES`` and reported as expected failures until they are fixed there. The README's
list of examples, and an API entry for every public module, are checked here too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "doc").glob("*.rst"))]
TIMEOUT = 60.0

PYTHON = {"python", "py", "python3", "default"}
SHELL = {"sh", "bash", "shell", "console"}
DISPLAY = {"text", "none"}
KINDS = {"program", "server", "client", "fragment"}
OPTIONS = {"certs", "expect-errors"}

# Blocks that fail in pages another part of the project is rewriting (they are not edited from
# here): (page, first line of the block) -> why. Each is reported as an expected failure while
# it fails; a new failing block in those pages fails the test as usual.
OTHERS_PAGES = {"doc/protocol.rst", "doc/files.rst"}
KNOWN_FAILURES: dict[tuple[str, str], str] = {}

# The bootstrap that runs a block: the pycos logger prints warnings (and the tracebacks of failed
# tasks) to stderr, then the block runs as the main module.
_BOOT = """\
import logging, runpy, sys
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("pycos log: %(levelname)s %(message)s"))
logging.getLogger("pycos").addHandler(handler)
path = sys.argv[1]
sys.argv = [path]
runpy.run_path(path, run_name="__main__")
"""


@dataclass(frozen=True)
class Block:
    """One code block of a page."""

    page: str  # path relative to the repository
    line: int  # line of the block's first line of code (1-based)
    language: str
    code: str
    lead: str  # the text between the previous block (or the page's start) and this one
    kind: str = "program"
    name: str = ""
    options: frozenset[str] = field(default_factory=frozenset)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.code.strip().splitlines()[0].strip() if self.code.strip() else ""


# ------------------------------------------------------------------------- parsing
_RST_MARKER = re.compile(r"^\s*\.\. pycos-doc:\s*(?P<spec>.*?)\s*$")
_MD_MARKER = re.compile(r"^\s*<!--\s*pycos-doc:\s*(?P<spec>.*?)\s*-->\s*$")
_RST_DIRECTIVE = re.compile(
    r"^(?P<indent>\s*)\.\. (?:code-block|code|sourcecode)::\s*(?P<lang>\S*)")
_MD_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_body(lines: list[str], start: int, outer: int) -> tuple[int, int]:
    """The reST body after ``start`` indented deeper than ``outer``: (first, end) line indices,
    first == end when there is none."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or _indent(lines[i]) <= outer:
        return i, i
    first = end = i
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > outer):
        if lines[i].strip():
            end = i + 1
        i += 1
    return first, end


class _Collector:
    def __init__(self, page: str) -> None:
        self.page = page
        self.blocks: list[Block] = []
        self.problems: list[str] = []
        self.marker: tuple[str, int] | None = None
        self.lead: list[str] = []

    def set_marker(self, spec: str, lineno: int) -> None:
        if self.marker is not None:
            self.problems.append(f"{self.page}:{self.marker[1]}: marker with no block after it")
        self.marker = (spec, lineno)

    def add(self, lineno: int, language: str, code: str) -> None:
        kind, name, options = "program", "", frozenset[str]()
        if self.marker is not None:
            spec, at = self.marker
            words = spec.split()
            kind = words[0] if words else ""
            rest = words[1:]
            if kind in ("server", "client"):
                name, rest = (rest[0], rest[1:]) if rest else ("", rest)
                if not name:
                    self.problems.append(f"{self.page}:{at}: '{kind}' needs a name")
            if kind not in KINDS:
                self.problems.append(f"{self.page}:{at}: unknown kind {kind!r}")
            unknown = set(rest) - OPTIONS
            if unknown:
                self.problems.append(f"{self.page}:{at}: unknown options {sorted(unknown)}")
            options = frozenset(rest)
        block = Block(self.page, lineno, language.lower(), textwrap.dedent(code),
                      "\n".join(self.lead), kind, name, options)
        if self.marker is not None and block.language not in PYTHON | SHELL:
            self.problems.append(f"{block.where}: a marker on a {block.language!r} block")
        self.blocks.append(block)
        self.marker = None
        self.lead = []

    def finish(self) -> None:
        if self.marker is not None:
            self.problems.append(f"{self.page}:{self.marker[1]}: marker with no block after it")


def parse_rst(page: str, text: str) -> _Collector:
    out = _Collector(page)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _RST_MARKER.match(line)
        directive = _RST_DIRECTIVE.match(line)
        if marker:
            out.set_marker(marker["spec"], i + 1)
            i += 1
            continue
        if directive:
            outer = len(directive["indent"])
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith(":") and \
                    _indent(lines[j]) > outer:
                j += 1  # the directive's options
            first, end = _indented_body(lines, j, outer)
            out.add(first + 1, directive["lang"] or "python", "\n".join(lines[first:end]))
            i = max(end, i + 1)
            continue
        out.lead.append(line)
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".. "):
            first, end = _indented_body(lines, i + 1, _indent(line))
            if end > first:
                out.add(first + 1, "python", "\n".join(lines[first:end]))
                i = end
                continue
        i += 1
    out.finish()
    return out


def parse_markdown(page: str, text: str) -> _Collector:
    out = _Collector(page)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MD_MARKER.match(line)
        fence = _MD_FENCE.match(line)
        if marker:
            out.set_marker(marker["spec"], i + 1)
        elif fence:
            close = re.compile(r"^\s*" + re.escape(fence["fence"][0]) + "{" +
                               str(len(fence["fence"])) + r",}\s*$")
            j = i + 1
            while j < len(lines) and not close.match(lines[j]):
                j += 1
            if not fence["lang"]:
                out.problems.append(f"{page}:{i + 1}: a fenced block must name its language")
            out.add(i + 2, fence["lang"] or "none", "\n".join(lines[i + 1:j]))
            i = j
        else:
            out.lead.append(line)
        i += 1
    out.finish()
    return out


def _collect() -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    problems: list[str] = []
    for path in DOCS:
        page = path.relative_to(ROOT).as_posix()
        parse = parse_markdown if path.suffix == ".md" else parse_rst
        found = parse(page, path.read_text(encoding="utf-8"))
        blocks += found.blocks
        problems += found.problems
    return blocks, problems + check_blocks(blocks)


def check_blocks(blocks: list[Block]) -> list[str]:
    """What is wrong with the blocks of the pages taken together."""
    problems = []
    for block in blocks:
        if block.language not in PYTHON | SHELL | DISPLAY:
            problems.append(f"{block.where}: language {block.language!r} is not one this test "
                            f"knows (Python: {sorted(PYTHON)}, shell: {sorted(SHELL)}, "
                            f"display: {sorted(DISPLAY)})")
        if block.kind == "fragment" and "fragment" not in block.lead.lower():
            problems.append(f"{block.where}: a fragment, but the text before it does not say so "
                            "(use the word 'fragment')")
    pairs: dict[tuple[str, str], list[Block]] = {}
    for block in blocks:
        if block.kind in ("server", "client"):
            pairs.setdefault((block.page, block.name), []).append(block)
    for (page, name), members in pairs.items():
        kinds = sorted(b.kind for b in members)
        if kinds != ["client", "server"]:
            problems.append(f"{page}: '{name}' needs one server and one client block, has {kinds}")
    return problems


BLOCKS, PROBLEMS = _collect()
PROGRAMS = [b for b in BLOCKS if b.language in PYTHON and b.kind == "program"]
FRAGMENTS = [b for b in BLOCKS if b.kind == "fragment"]
SHELLS = [b for b in BLOCKS if b.language in SHELL and b.kind != "fragment"]
PAIRS = sorted({(b.page, b.name) for b in BLOCKS if b.kind in ("server", "client")})


def _params(blocks: list[Block]) -> list[object]:
    params: list[object] = []
    for block in blocks:
        reason = KNOWN_FAILURES.get((block.page, block.first_line)) \
            if block.page in OTHERS_PAGES else None
        marks = [pytest.mark.xfail(reason=f"{block.page} (edited elsewhere): {reason}",
                                   strict=False)] if reason else []
        params.append(pytest.param(block, id=block.where, marks=marks))
    return params


# ------------------------------------------------------------------------- running
@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """Serialises block runs across every test run on this machine (fixed example ports)."""
    import fcntl

    path = os.path.join(tempfile.gettempdir(), "pycos-doc-blocks.lock")
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    certs = pytest.importorskip("certs")
    directory = tmp_path_factory.mktemp("doc-certs")
    files = certs.make_tls_files(directory)
    shutil.copy(files.self_cert, directory / "node.pem")
    shutil.copy(files.self_key, directory / "node.key")
    return Path(directory)


def _workdir(block: Block, base: Path, cert_dir: Path | None) -> Path:
    workdir = base / f"{block.kind}-{block.line}"
    workdir.mkdir()
    if "certs" in block.options:
        assert cert_dir is not None
        for pem in cert_dir.iterdir():
            shutil.copy(pem, workdir / pem.name)
    (workdir / "doc_block.py").write_text(block.code)
    return workdir


def _popen(block: Block, workdir: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", _BOOT, str(workdir / "doc_block.py")],
                            cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class _Output:
    """Collects a process's stdout and stderr on threads; ``first_line`` waits for stdout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._read, args=(proc.stdout, self.out, True)),
                         threading.Thread(target=self._read, args=(proc.stderr, self.err, False))]
        for t in self._threads:
            t.start()

    def _read(self, stream: object, into: list[str], signal: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)
            if signal:
                self._lines.put(line)
        if signal:
            self._lines.put(None)

    def first_line(self, timeout: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                self.proc.wait()
            for t in self._threads:
                t.join(timeout=5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def report(self, label: str) -> str:
        return (f"--- {label} exit status {self.proc.returncode}\n--- stdout:\n{''.join(self.out)}"
                f"--- stderr:\n{''.join(self.err)}")


def _check_run(block: Block, output: _Output, status: int | None) -> None:
    assert status is not None, f"{block.where}: did not end within {TIMEOUT:.0f} s\n" + \
        output.report(block.kind)
    assert status == 0, f"{block.where}: failed\n" + output.report(block.kind)
    text = "".join(output.out + output.err)
    if "expect-errors" not in block.options:
        assert "Traceback" not in text, f"{block.where}: a traceback in its output\n" + \
            output.report(block.kind)


# --------------------------------------------------------------------------- tests
def test_every_page_is_read_and_markers_are_consistent() -> None:
    assert not PROBLEMS, "\n".join(PROBLEMS)
    pages = {b.page for b in BLOCKS}
    assert "README.md" in pages and "doc/tutorial.rst" in pages, sorted(pages)
    assert len(PROGRAMS) >= 20 and PAIRS, (len(PROGRAMS), PAIRS)


def test_the_parser_finds_what_docutils_finds() -> None:
    """Cross-check of the block finder: every literal block docutils sees in a page is found
    here, and nothing else."""
    core = pytest.importorskip("docutils.core")
    from docutils import nodes

    for path in DOCS:
        if path.suffix != ".rst":
            continue
        page = path.relative_to(ROOT).as_posix()
        tree = core.publish_doctree(path.read_text(encoding="utf-8"),
                                    settings_overrides={"report_level": 5, "halt_level": 5})
        theirs = sorted(textwrap.dedent(node.astext()).strip()
                        for node in tree.findall(nodes.literal_block)
                        if not isinstance(node.parent, nodes.system_message))
        ours = sorted(b.code.strip() for b in BLOCKS if b.page == page)
        assert ours == theirs, f"{page}: the block finder disagrees with docutils"


def test_marker_mistakes_are_reported() -> None:
    page = """Intro::

    x = 1

.. pycos-doc: fragment

Without the word::

    y = undefined

.. pycos-doc: server lonely

A server alone::

    print("serving")

.. pycos-doc: frgament

::

    pass

.. code-block:: text

    output

.. pycos-doc: fragment
"""
    found = parse_rst("page.rst", page)
    assert [(b.line, b.kind, b.language) for b in found.blocks] == [
        (3, "program", "python"), (9, "fragment", "python"), (15, "server", "python"),
        (21, "frgament", "python"), (25, "program", "text")]
    assert found.problems == ["page.rst:17: unknown kind 'frgament'",
                              "page.rst:27: marker with no block after it"]
    assert check_blocks(found.blocks) == [
        "page.rst:9: a fragment, but the text before it does not say so (use the word "
        "'fragment')",
        "page.rst: 'lonely' needs one server and one client block, has ['server']"]
    md = parse_markdown("page.md", "<!-- pycos-doc: client x -->\n```python\nprint(1)\n```\n"
                                   "```\nno language\n```\n")
    assert [(b.line, b.kind, b.name) for b in md.blocks] == [(3, "client", "x"), (6, "program", "")]
    assert md.problems == ["page.md:5: a fenced block must name its language"]


def _public_modules() -> list[str]:
    """``pycos``, its top-level modules not named with ``_``, and the ``asyncoro`` package."""
    names = ["pycos", "asyncoro"]
    for package in ("pycos", "asyncoro"):
        names += [f"{package}.{p.stem}" for p in sorted((ROOT / package).glob("*.py"))
                  if not p.stem.startswith("_")]
    return names


def test_every_public_module_has_an_entry_in_the_api_docs() -> None:
    entry = re.compile(r"^\s*\.\. (?:automodule|py:module|module)::\s*(\S+)", re.M)
    documented = {m for path in (ROOT / "doc").glob("*.rst")
                  for m in entry.findall(path.read_text(encoding="utf-8"))}
    missing = [m for m in _public_modules() if m not in documented]
    assert "pycos.netpycos" in _public_modules()
    assert not missing, f"modules without an automodule / py:module entry in doc/: {missing}"


def test_readme_lists_every_example_once() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\* `(\w+\.py)`: \S", readme, re.M)
    present = sorted(p.name for p in (ROOT / "examples").glob("*.py")
                     if not p.name.startswith("_"))
    assert sorted(listed) == present, "README.md: '* `NAME.py`: what it shows', once per example"


def test_every_networked_name_has_an_api_entry() -> None:
    """Each name ``pycos.netpycos`` adds to ``pycos`` has an entry in the networked section of
    doc/api.rst."""
    import pycos
    import pycos.netpycos

    added = [n for n in pycos.netpycos.__all__
             if n not in pycos.__all__ or n in ("Pycos", "AsynCoro")]
    api = (ROOT / "doc" / "api.rst").read_text(encoding="utf-8")
    section = api[api.index(".. automodule:: pycos.netpycos"):api.index("asyncoro names\n")]
    entries = set(re.findall(r"^\.\. [\w:]+:: (?:pycos\.netpycos\.)?(\w+)", section, re.M))
    assert {"Pycos", "RCI"} <= set(added)
    assert not set(added) - entries, f"no entry in doc/api.rst for {sorted(set(added) - entries)}"


@pytest.mark.timeout(TIMEOUT * 2 + 30)
@pytest.mark.parametrize("block", _params(PROGRAMS))
def test_program_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cert_dir = request.getfixturevalue("cert_dir") if "certs" in block.options else None
    workdir = _workdir(block, tmp_path, cert_dir)
    with _machine_lock():
        output = _Output(_popen(block, workdir))
        status = output.wait(TIMEOUT)
    _check_run(block, output, status)


def _pair(page: str, name: str) -> tuple[Block, Block]:
    members = {b.kind: b for b in BLOCKS if b.page == page and b.name == name}
    return members["server"], members["client"]


@pytest.mark.timeout(TIMEOUT * 3 + 30)
@pytest.mark.parametrize("page,name", [pytest.param(p, n, id=f"{p}:{n}") for p, n in PAIRS])
def test_server_and_client_run(page: str, name: str, tmp_path: Path,
                               request: pytest.FixtureRequest) -> None:
    server, client = _pair(page, name)
    needs_certs = "certs" in server.options | client.options
    cert_dir = request.getfixturevalue("cert_dir") if needs_certs else None
    with _machine_lock():
        srv = _Output(_popen(server, _workdir(server, tmp_path, cert_dir)))
        try:
            ready = srv.first_line(TIMEOUT)
            assert ready is not None, f"{server.where}: printed no line to say it serves\n" + \
                srv.report("server")
            cli = _Output(_popen(client, _workdir(client, tmp_path, cert_dir)))
            _check_run(client, cli, cli.wait(TIMEOUT))
        finally:
            status = srv.wait(TIMEOUT)
    _check_run(server, srv, status)


@pytest.mark.parametrize("block", _params(FRAGMENTS))
def test_fragment_compiles(block: Block) -> None:
    if block.language in SHELL:
        _check_shell(block)
        return
    try:
        compile(block.code, block.where, "exec")
    except SyntaxError:
        body = textwrap.indent(block.code, "    ")
        compile(f"def _fragment(task=None):\n{body}\n    yield\n", block.where, "exec")


def _check_shell(block: Block) -> None:
    bash = shutil.which("bash")
    if bash is not None:
        result = subprocess.run([bash, "-n"], input=block.code, capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, f"{block.where}: {result.stderr}"
    text = "\n".join(line.removeprefix("$ ") for line in block.code.splitlines())
    words = shlex.split(text.replace("\\\n", " "), comments=True)
    for before, word in zip(words, words[1:]):
        if before == "-m" and word not in ("pip", "venv"):
            assert importlib.util.find_spec(word) is not None, \
                f"{block.where}: 'python -m {word}': no such module here"
        if word.endswith((".py", ".toml", ".md")) and "/" in word:
            assert (ROOT / word).exists(), f"{block.where}: {word} is not in the repository"


@pytest.mark.parametrize("block", _params(SHELLS))
def test_shell_command_is_well_formed(block: Block) -> None:
    _check_shell(block)
