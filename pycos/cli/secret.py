"""Where the command line's secret comes from, and the checks on it.

Owns ``load_secret``: the node secret from ``--secret-file PATH`` (a file no one but its owner
may read or write: mode 0600 or stricter, else it is refused with the ``chmod 600`` to run),
from the ``PYCOS_SECRET`` environment variable, or — visible to every user in ``ps``, so with
a warning — from ``--secret VALUE``. A secret never appears in any output. Imports the
standard library and its own package.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from .output import Output
from .status import FAILURE, CliError

__all__ = ["ENV_VAR", "MAX_SECRET_FILE", "load_secret", "read_secret_file"]

#: The environment variable read when neither ``--secret-file`` nor ``--secret`` is given.
ENV_VAR = "PYCOS_SECRET"
#: A secret file larger than this is refused (it is not a secret file).
MAX_SECRET_FILE = 64 * 1024


def read_secret_file(path: str) -> str:
    """The secret in the file at ``path``: its text (UTF-8) without one final newline.

    Raises:
        CliError: the file cannot be read, group or others may read or write it, it is empty,
            too large or not UTF-8 text.
    """
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CliError(f"cannot read the secret file {path}: {exc.strerror or exc}",
                       FAILURE) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CliError(f"the secret file {path} is a directory", FAILURE)
        if info.st_mode & 0o077:
            raise CliError(
                f"the secret file {path} may be read by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); a secret file must be private to its "
                f"owner: run 'chmod 600 {path}'", FAILURE)
        data = os.read(fd, MAX_SECRET_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_FILE:
        raise CliError(f"the secret file {path} is larger than {MAX_SECRET_FILE} bytes; is it "
                       "the right file?", FAILURE)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"the secret file {path} is not UTF-8 text", FAILURE) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise CliError(f"the secret file {path} is empty", FAILURE)
    return text


def load_secret(secret_file: str | None, secret: str | None, environ: Mapping[str, str],
                out: Output) -> tuple[str, str]:
    """The secret to use and where it came from (``"--secret-file"``, ``"--secret"``,
    ``"PYCOS_SECRET"`` or ``"none"``, for ``diag``), in that order of precedence.

    Raises:
        CliError: the secret file is refused (see ``read_secret_file``).
    """
    if secret_file:
        return read_secret_file(secret_file), "--secret-file"
    if secret is not None:
        out.warn("a secret given with --secret is visible to every user of this machine "
                 f"(in 'ps'); use --secret-file PATH (mode 0600) or {ENV_VAR} instead")
        return secret, "--secret"
    value = environ.get(ENV_VAR)
    if value:
        return value, ENV_VAR
    return "", "none"
