"""The ``presence-ims`` command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("presence-ims: not yet", file=sys.stderr)
    return 2
