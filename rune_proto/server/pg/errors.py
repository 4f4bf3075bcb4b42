"""What an operator is told when PostgreSQL cannot be reached: one line, no password.

asyncpg's and asyncio's own messages name the cause in their words ("Connect call
failed ('127.0.0.1', 5432)"); an operator needs the cause in theirs (refused, the
password, no such database) and the URL with its password masked.
"""

from __future__ import annotations

import socket

import asyncpg

from ..database import StoreError
from .url import masked


def connection_error(url: str, exc: BaseException) -> StoreError:
    """One clear line for a database that cannot be reached; the password masked."""
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        why = "the user name or password was refused"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        why = "the database does not exist (create it first: createdb, or CREATE DATABASE)"
    elif isinstance(exc, ConnectionRefusedError):
        why = "connection refused (is PostgreSQL running and listening there?)"
    elif isinstance(exc, socket.gaierror):
        why = "unknown host"
    elif isinstance(exc, TimeoutError):
        why = "no answer in time"
    elif isinstance(exc, asyncpg.PostgresError):
        why = f"PostgreSQL said: {exc.sqlstate} {type(exc).__name__}"
    elif isinstance(exc, OSError):
        why = exc.strerror or type(exc).__name__
    else:
        why = type(exc).__name__
    return StoreError(f"cannot connect to {masked(url)}: {why}")
