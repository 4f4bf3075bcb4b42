"""``python -m rune_tui``: the same as the ``rune-tui`` command."""

import sys

from .cli import main

sys.exit(main())
