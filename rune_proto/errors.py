"""The two protocol errors, as in h11: our side broke the rules, or the peer did.

Nothing else escapes the codec; any other exception from it is a bug.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class. ``status`` is the code a server answers with; ``fatal`` closes."""

    def __init__(self, message: str, status: int = 400, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.fatal = fatal


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed or out of place.

    Non-fatal errors consumed exactly one line: answer with ``status`` and go on.
    Fatal ones leave the connection unusable.
    """
