"""``python -m rune_proto.server`` runs ``rune-server`` (the tests start it this way)."""

from .cli import main

raise SystemExit(main())
