"""``python -m presence_ims`` is the ``presence-ims`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # not when a spawned PS worker re-imports it (D13)
    sys.exit(main())
