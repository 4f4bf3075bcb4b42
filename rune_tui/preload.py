"""Imports done in a thread while the user waits anyway, so the next screen opens sooner.

Both run where the event loop has little to do: the service layer (the client library,
TLS, x509: ~57 ms) while the passphrase is typed, the inbox while scrypt runs. Python's
import lock makes a module imported here and on the loop at once load only once.
"""

from __future__ import annotations

import threading


def preload_service() -> None:
    """Import the service layer in a thread while the user types the passphrase."""

    def load() -> None:
        from . import service  # noqa: F401 - imported for its side effect: loaded

    threading.Thread(target=load, name="rune-preload", daemon=True).start()


def preload_inbox() -> None:
    """Import the inbox in a thread while scrypt runs (it leaves a CPU free).

    Not at the prompt: more imports there compete with drawing the prompt itself.
    """

    def load() -> None:
        # Imported for their side effect: loaded before the key opens.
        from . import trust  # noqa: F401
        from .screens import compose_drafts, inbox  # noqa: F401

    threading.Thread(target=load, name="rune-preload-inbox", daemon=True).start()
