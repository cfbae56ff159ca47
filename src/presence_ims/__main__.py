"""``python -m presence_ims`` is the ``presence-ims`` command."""

import sys

from .cli import main

sys.exit(main())
