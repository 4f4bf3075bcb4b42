"""Which database a data directory uses: its SQLite file, or a ``postgresql://`` URL.

The choice is the config key ``database`` (absent: the SQLite file ``rune.db`` in the
data directory), overridden by ``--database URL`` on the command line. Nothing here
imports the PostgreSQL driver: a one-box server on SQLite never loads it.

A URL may carry a password; it never reaches a log, an error message or the
terminal: :func:`masked` replaces it with ``***`` wherever a URL is shown.
docs/operations.md recommends ``~/.pgpass`` or ``PGPASSWORD``/``PGPASSFILE`` instead.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .config import DataDir, OperatorError, ServerConfig
from .pg.url import SCHEMES, masked  # no asyncpg in these two

__all__ = ["Location", "check_url", "locate", "masked"]


def check_url(url: str) -> str:
    """The URL, if it is a usable ``postgresql://`` one; else an OperatorError (masked)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise OperatorError(f"bad database URL {masked(url)}: {_reason(exc)}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise OperatorError(
            f"bad database URL {masked(url)}: it must start with postgresql://"
            " (leave database out of the config to use the SQLite file in the data directory)"
        )
    if port == 0:
        raise OperatorError(f"bad database URL {masked(url)}: port 0")
    return url


def _reason(exc: ValueError) -> str:
    text = str(exc)
    return "the port is not a number from 1 to 65535" if "port" in text.lower() else "malformed"


@dataclass(frozen=True, slots=True)
class Location:
    """Where the store lives: ``url`` for PostgreSQL, else the SQLite ``path``."""

    path: Path
    url: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def shown(self) -> str:
        """For messages: the masked URL, or the file's path."""
        return masked(self.url) if self.url is not None else str(self.path)


def locate(data: DataDir, config: ServerConfig | None, override: str | None) -> Location:
    """``--database`` if given, else the config's ``database``, else the SQLite file."""
    url = override if override is not None else (config.database if config else "")
    if not url:
        return Location(data.database)
    return Location(data.database, check_url(url))
