"""Released sdists of pycos and asyncoro, fetched at test time (test helper, not a test module).

Owns :func:`examples`: the directory of a released package's own example programs, taken from
its source distribution on the package index. Those files are never stored in this
repository; they are downloaded once into a cache directory and unpacked there. Where they come
from, first match wins:

1. the environment variable of that release (``PYCOS412_EXAMPLES``, ``ASYNCORO_EXAMPLES``)
   naming an examples directory itself;
2. an unpacked copy in the cache (``$PYCOS_TEST_CACHE``, default ``~/.cache/pycos-tests``);
3. the sdist archive in the cache (``pycos-4.12.2.tar.gz``; may be put there by hand);
4. ``python -m pip download NAME==VERSION --no-deps --no-binary :all: -d CACHE``, bounded by
   ``FETCH_TIMEOUT``.

Unpacking is safe: a member whose path is absolute, climbs out with ``..``, is a link, a device
or a fifo, or an archive larger than ``MAX_UNPACKED`` is refused before anything is written; the
tree is unpacked into a scratch directory and renamed into place, so a half-unpacked copy is
never used. :class:`FetchError` says what could not be fetched and how to provide it;
:func:`examples_or_skip` turns it into a pytest skip. Run as a script to fetch ahead of time:
``python tests/compat/fetch.py pycos asyncoro``.

Also owns :func:`reference_python`: the interpreter of the venv holding the released pycos
4.12.2 (``bench/reference_env.py`` builds it), for running programs on the release itself.
Imports only the standard library (pytest only inside :func:`examples_or_skip`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["Release", "RELEASES", "FetchError", "cache_dir", "unpack", "sdist_tree", "examples",
           "examples_or_skip", "reference_python", "FETCH_TIMEOUT", "REFERENCE_TIMEOUT"]

#: Seconds one ``pip download`` may take (it usually takes a few; below pytest's default
#: per-test timeout, so a test that triggers the download is skipped rather than killed).
FETCH_TIMEOUT = 100.0
#: Largest total size of the files in an archive we agree to unpack (bytes).
MAX_UNPACKED = 200 * 1024 * 1024
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


@dataclass(frozen=True)
class Release:
    """A released version whose example programs the compatibility tests run.

    Attributes:
        name: the distribution name on the package index.
        version: the exact version.
        examples: where its examples sit inside the unpacked sdist.
        env_var: the variable that may name an examples directory instead.
    """

    name: str
    version: str
    examples: str
    env_var: str

    @property
    def spec(self) -> str:
        """``name==version``, as pip takes it."""
        return f"{self.name}=={self.version}"

    @property
    def stem(self) -> str:
        """``name-version``, the sdist's file stem and top directory."""
        return f"{self.name}-{self.version}"


#: pycos's sdist carries three copies of the package: ``py2``, ``py3`` (Python 3.0-3.6; most of
#: its examples stop at once with ``assert sys.version_info.minor < 7`` on later Pythons) and
#: ``py3.7``, which its setup.py makes from ``py3`` (``raise StopIteration`` becomes ``return``,
#: the version checks are flipped) and which pip installs, examples included, on Python >= 3.7.
#: ``py3.7/examples`` are therefore the programs a pycos 4.12.2 user runs on Python 3.11.
#: asyncoro 4.5.6 has a single Python 3 copy.
RELEASES = {
    "pycos": Release("pycos", "4.12.2", "pycos-4.12.2/py3.7/examples", "PYCOS412_EXAMPLES"),
    "asyncoro": Release("asyncoro", "4.5.6", "asyncoro-4.5.6/py3/asyncoro/examples",
                        "ASYNCORO_EXAMPLES"),
}


class FetchError(RuntimeError):
    """A release's examples could not be found, downloaded or unpacked; the message says what
    and how to provide them."""


def cache_dir() -> Path:
    """The cache directory: ``$PYCOS_TEST_CACHE``, default ``~/.cache/pycos-tests``."""
    return Path(os.environ.get("PYCOS_TEST_CACHE") or
                Path.home() / ".cache" / "pycos-tests").expanduser()


def _how_to_provide(release: Release, cache: Path) -> str:
    return (f"to provide it, put {release.stem}.tar.gz (from the package index) in {cache} "
            f"(set PYCOS_TEST_CACHE to use another directory), or set {release.env_var} to the "
            f"'{release.examples.split('/', 1)[1]}' directory of an unpacked copy")


# ---------------------------------------------------------------------- unpacking
def _check_member_name(name: str, dest: Path) -> Path:
    """The path where member ``name`` lands under ``dest``; FetchError if it would escape."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name or pure.is_absolute() or ".." in pure.parts or ":" in "".join(pure.parts[:1]):
        raise FetchError(f"refusing archive member {name!r}: it would land outside {dest}")
    target = (dest / pure).resolve()
    if target != dest and dest not in target.parents:
        raise FetchError(f"refusing archive member {name!r}: it would land outside {dest}")
    return target


def _unpack_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        total = 0
        for member in members:
            _check_member_name(member.name, dest)
            if not (member.isfile() or member.isdir()):
                raise FetchError(f"refusing archive member {member.name!r} of {archive.name}: "
                                 "only plain files and directories are unpacked")
            total += member.size
        if total > MAX_UNPACKED:
            raise FetchError(f"{archive.name} unpacks to {total} bytes, more than {MAX_UNPACKED}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the stdlib checks again
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - older 3.11 releases; every member was checked above
            tar.extractall(dest, members=members)


def _unpack_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            _check_member_name(info.filename, dest)
            mode = info.external_attr >> 16
            if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise FetchError(f"refusing archive member {info.filename!r} of {archive.name}: "
                                 "only plain files and directories are unpacked")
            total += info.file_size
        if total > MAX_UNPACKED:
            raise FetchError(f"{archive.name} unpacks to {total} bytes, more than {MAX_UNPACKED}")
        for info in infos:
            zf.extract(info, dest)


def unpack(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` (tar or zip) into the existing directory ``dest``, refusing members
    that would land outside it (absolute paths, ``..``, links, devices) and oversized archives.

    Raises:
        FetchError: the archive is refused or unreadable.
    """
    dest = dest.resolve()
    try:
        if archive.name.endswith(".zip"):
            _unpack_zip(archive, dest)
        else:
            _unpack_tar(archive, dest)
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"cannot unpack {archive}: {exc}") from exc


# ---------------------------------------------------------------------- fetching
@contextlib.contextmanager
def _locked(cache: Path, release: Release) -> Iterator[None]:
    """Hold an exclusive lock for this release, so concurrent test runs fetch it once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(cache / f".{release.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _archive_in(cache: Path, release: Release) -> Path | None:
    for path in sorted(cache.iterdir()):
        name = path.name.lower()
        if (path.is_file() and name.startswith(release.stem.lower() + ".")
                and name.endswith(_ARCHIVE_SUFFIXES)):
            return path
    return None


def _download(cache: Path, release: Release) -> Path:
    argv = [sys.executable, "-m", "pip", "download", release.spec, "--no-deps",
            "--no-binary", ":all:", "-d", str(cache), "--disable-pip-version-check",
            "--no-input", "--timeout", "20", "--retries", "2"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT,
                              cwd=str(cache), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FetchError(f"could not download {release.spec} from the package index: "
                         f"'pip download' took more than {FETCH_TIMEOUT:.0f} s; "
                         f"{_how_to_provide(release, cache)}") from None
    except OSError as exc:
        raise FetchError(f"could not run pip to download {release.spec}: {exc}; "
                         f"{_how_to_provide(release, cache)}") from exc
    archive = _archive_in(cache, release)
    if proc.returncode != 0 or archive is None:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise FetchError(f"could not download {release.spec} from the package index "
                         f"(pip exit {proc.returncode}: {tail or 'no output'}); "
                         f"{_how_to_provide(release, cache)}")
    return archive


def sdist_tree(name: str) -> Path:
    """The directory holding the unpacked sdist of release ``name`` (a key of ``RELEASES``),
    downloading and unpacking it first if the cache lacks it. Plain call.

    Raises:
        FetchError: it could not be downloaded or unpacked.
    """
    release = RELEASES[name]
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create the cache directory {cache}: {exc}; set "
                         f"PYCOS_TEST_CACHE to a writable directory") from exc
    tree = cache / "unpacked" / release.stem
    if tree.is_dir():
        return tree
    with _locked(cache, release):
        if tree.is_dir():  # another run unpacked it while we waited for the lock
            return tree
        archive = _archive_in(cache, release) or _download(cache, release)
        tree.parent.mkdir(exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{release.stem}-", dir=tree.parent))
        try:
            try:
                unpack(archive, scratch)
            except FetchError as exc:
                raise FetchError(f"{exc} (delete {archive} to download it again)") from exc
            scratch.rename(tree)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return tree


_memo: dict[str, Path | FetchError] = {}


def examples(name: str) -> Path:
    """The examples directory of release ``name`` (``"pycos"`` for 4.12.2, ``"asyncoro"`` for
    4.5.6), fetched if needed (see the module docstring). Plain call; remembered per process,
    failures included, so a missing index costs one attempt.

    Raises:
        FetchError: no copy could be found or fetched; the message says how to provide one.
    """
    if name not in _memo:
        release = RELEASES[name]
        try:
            given = os.environ.get(release.env_var)
            if given:
                path = Path(given).expanduser()
                if not path.is_dir():
                    raise FetchError(f"{release.env_var}={given} is not a directory (it must "
                                     f"name the examples of {release.spec})")
            else:
                path = sdist_tree(name) / release.examples
                if not path.is_dir():
                    raise FetchError(f"{release.spec}'s sdist has no {release.examples}; "
                                     f"{_how_to_provide(release, cache_dir())}")
            _memo[name] = path
        except FetchError as exc:
            _memo[name] = exc
    found = _memo[name]
    if isinstance(found, FetchError):
        raise found
    return found


def examples_or_skip(name: str) -> Path:
    """:func:`examples`, or a pytest skip (also valid at module level) saying what could not be
    fetched and how to provide it."""
    import pytest

    try:
        return examples(name)
    except FetchError as exc:
        pytest.skip(f"{RELEASES[name].spec} examples unavailable: {exc}",
                    allow_module_level=True)
        raise  # unreachable: pytest.skip raises


#: The repository's script that builds (or reuses) the venv holding the released pycos 4.12.2.
REFERENCE_ENV_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "reference_env.py"
#: Seconds building that venv may take (a venv, pip, and pycos 4.12.2 from the index).
REFERENCE_TIMEOUT = 300.0


def reference_python() -> Path:
    """The python of the venv holding the released pycos 4.12.2, built by
    ``bench/reference_env.py`` (its ``ensure_reference_env()``) if needed, within
    ``REFERENCE_TIMEOUT``. Plain call; remembered per process, failures included.

    Raises:
        FetchError: the venv could not be built; the message says why and how to provide it.
    """
    if "reference" not in _memo:
        how = (f"build it with 'python {REFERENCE_ENV_SCRIPT}' where the package index can "
               "be reached")
        try:
            proc = subprocess.run([sys.executable, str(REFERENCE_ENV_SCRIPT)], text=True,
                                  capture_output=True, timeout=REFERENCE_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines or not Path(lines[-1]).is_file():
                tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
                raise FetchError(f"could not build the venv with the released pycos 4.12.2 "
                                 f"(exit {proc.returncode}: {tail or 'no output'}); {how}")
            _memo["reference"] = Path(lines[-1])
        except subprocess.TimeoutExpired:
            _memo["reference"] = FetchError(
                f"building the venv with the released pycos 4.12.2 took more than "
                f"{REFERENCE_TIMEOUT:.0f} s; {how}")
        except FetchError as exc:
            _memo["reference"] = exc
    found = _memo["reference"]
    if isinstance(found, FetchError):
        raise found
    return found


def main(argv: list[str]) -> int:
    """Fetch the named releases (default: all) and print their examples directories."""
    status = 0
    for name in argv or list(RELEASES):
        try:
            print(examples(name))
        except (FetchError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
