"""The store as the ``rune-server`` commands see it: one interface, two databases.

``accounts``, ``invitations``, ``mailbox``, ``invite``, ``lift-limits`` and ``status``
speak to an :class:`AdminStore`; :func:`open_admin` gives the SQLite one (admin.py's
functions in SQLite transactions) or the PostgreSQL twin (pg/admin.py), so the
commands and their tests are the same whichever store a server uses. Every action is
one short transaction, safe while servers run (admin.py says how they notice).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Protocol

from . import admin
from .admin import AccountRow, Counts, InvitationRow
from .database import Database
from .dburl import Location


class AdminStore(Protocol):
    """The operator's actions; False/0 where there was nothing to act on."""

    def registrable(self, address: str) -> bool: ...

    def add_invitation(self, token_hash: bytes, address: str, expires_at: int) -> None: ...

    def clear_limits(self, keys: Sequence[bytes]) -> int: ...

    def list_accounts(self) -> list[AccountRow]: ...

    def held(self) -> dict[str, str]: ...

    def count(self) -> Counts: ...

    def block(self, address: str) -> bool:
        """False if there is no such account."""
        ...

    def unblock(self, address: str) -> bool: ...

    def delete_account(self, address: str) -> bool:
        """Remove the account and reserve its address; False if there is none."""
        ...

    def release(self, address: str) -> bool: ...

    def erase_batch(self, address: str) -> tuple[int, int]:
        """Up to admin.ERASE_BATCH messages in one transaction; (messages, bytes)."""
        ...

    def finish_erase(self) -> None:
        """Make the deleted bytes leave the database's files where it can."""
        ...

    def list_invitations(self) -> list[InvitationRow]: ...

    def revoke_invitations(self, address: str) -> int: ...

    def close(self) -> None: ...


class SQLiteAdmin:
    """:class:`AdminStore` on the data directory's SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def registrable(self, address: str) -> bool:
        return self._db.registrable(address)

    def add_invitation(self, token_hash: bytes, address: str, expires_at: int) -> None:
        self._db.add_invitation(token_hash, address, expires_at)

    def clear_limits(self, keys: Sequence[bytes]) -> int:
        return self._db.clear_limits(keys)

    def list_accounts(self) -> list[AccountRow]:
        return self._db.read(admin.list_accounts)

    def held(self) -> dict[str, str]:
        return self._db.read(admin.held)

    def count(self) -> Counts:
        return self._db.read(admin.count)

    def block(self, address: str) -> bool:
        def block(connection: sqlite3.Connection) -> bool:
            if not admin.has_account(connection, address):
                return False
            admin.block(connection, address)
            return True

        return self._db.transact(block)

    def unblock(self, address: str) -> bool:
        return self._db.transact(lambda connection: admin.unblock(connection, address))

    def delete_account(self, address: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            if not admin.has_account(connection, address):
                return False
            admin.delete_account(connection, address)
            return True

        return self._db.transact(delete)

    def release(self, address: str) -> bool:
        return self._db.transact(lambda connection: admin.release(connection, address))

    def erase_batch(self, address: str) -> tuple[int, int]:
        return self._db.transact(lambda connection: admin.erase_batch(connection, address))

    def finish_erase(self) -> None:
        self._db.erase()

    def list_invitations(self) -> list[InvitationRow]:
        return self._db.read(admin.list_invitations)

    def revoke_invitations(self, address: str) -> int:
        return self._db.transact(lambda connection: admin.revoke_invitations(connection, address))

    def close(self) -> None:
        self._db.close()


def open_admin(location: Location) -> AdminStore:
    """The store at ``location`` for one command (a StoreError if it cannot be opened)."""
    if location.url is not None:
        from .pg.admin import PgAdmin  # asyncpg only for PostgreSQL

        return PgAdmin.connect(location.url)
    os.umask(0o077)  # a WAL or shared-memory file this command creates: owner only
    return SQLiteAdmin(Database(location.path))
