"""The ``daemonkit`` command line (start, stop, status, ... are not yet here)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    sys.stderr.write("daemonkit: the command line is not available yet; use the Python API\n")
    return 2
