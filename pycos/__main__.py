"""``python -m pycos``: the command line (``pycos.cli``); this module only calls it."""

import sys

from pycos.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
