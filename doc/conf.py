"""Sphinx configuration of the pycos documentation.

Builds offline (no intersphinx, no remote images), from the repository's top directory:
``python -m sphinx -W -b html doc doc/_build/html`` (the README's command; the ``docs`` extra
installs Sphinx). ``tests/test_tooling.py`` runs the same build and fails on any warning.
The API pages are generated from the docstrings (Google style, read by napoleon) of the package
in this repository, which is put first on ``sys.path`` so the build does not depend on an
installed copy.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import pycos  # noqa: E402

project = "pycos"
author = "the pycos authors"
copyright = "2026, the pycos authors"  # noqa: A001
release = pycos.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

exclude_patterns = ["_build"]
root_doc = "index"
language = "en"

# Docstrings: Google style only; keep the source order of members.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {
    "members": True,
}

# Plain output without external resources.
html_theme = "alabaster"
html_theme_options = {
    "description": "Concurrent, asynchronous and distributed programming with generator tasks",
    "fixed_sidebar": False,
}
html_static_path: list[str] = []
html_show_sourcelink = False
