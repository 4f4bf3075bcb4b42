"""The operator's actions on a PostgreSQL store: ../admin.py's twin, over asyncpg.

Same behaviour, same reasons (../admin.py's docstring): holds with no time or
reason, a fresh random ``layout.holds`` at each block or delete that every node's
watcher polls, mail erased through the store's delete path (chunks.free, ``usage``)
a batch a transaction, ``pending`` set so the order pass hides what changed.
:class:`PgAdmin` gives the ``rune-server`` commands the same synchronous interface as
the SQLite one (../adminstore.py), one short connection per command.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from .. import admin
from ..admin import AccountRow, Counts, InvitationRow
from ..config import OperatorError, ServerConfig
from ..dburl import Location, masked
from ..overview import MIB, live_lines
from ..store import StoreError
from . import chunks, reads, schema, transactions
from .chunks import Connection
from .errors import connection_error

_T = TypeVar("_T")
CONNECT_TIMEOUT = 10.0  # seconds: a command gives up on an unreachable database


async def connect(url: str) -> asyncpg.Connection:
    """A connection with ``synchronous_commit`` on, or a StoreError naming why not."""
    try:
        return await asyncpg.connect(
            url,
            timeout=CONNECT_TIMEOUT,
            server_settings={"synchronous_commit": "on"},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise connection_error(url, exc) from None
    except ValueError as exc:  # asyncpg's DSN parser: a malformed URL or option
        raise StoreError(f"bad database URL {masked(url)}: {type(exc).__name__}") from None


async def prepared(url: str) -> asyncpg.Connection:
    """:func:`connect`, then the schema created or upgraded (or refused, if newer)."""
    conn = await connect(url)
    try:
        await schema.prepare(conn)
    except schema.SchemaError as exc:
        await conn.close()
        raise StoreError(str(exc)) from None
    except BaseException:
        await conn.close()
        raise
    return conn


def check_unused(url: str) -> None:
    """Before ``init`` makes new keys: refuse a database that already serves a Rune
    store with accounts. Its nodes share one identity; a fresh ``init`` would make
    another, whose clients pin other keys and whose counters do not match."""

    async def run() -> int:
        conn = await connect(url)
        try:
            if await schema.version(conn) is None:
                return 0
            return int(await conn.fetchval("SELECT COUNT(*) FROM accounts"))
        finally:
            await conn.close()

    accounts = asyncio.run(run())
    if accounts:
        raise OperatorError(
            f"{masked(url)} already holds a Rune store with {accounts} account(s): a new node"
            " of that server needs its keys, not new ones (docs/operations.md, PostgreSQL)"
        )


def prepare(url: str) -> None:
    """``rune-server init --database URL``: make the schema (idempotent)."""

    async def run() -> None:
        conn = await prepared(url)
        await conn.close()

    asyncio.run(run())


async def list_accounts(db: Connection) -> list[AccountRow]:
    """Every account in address order (never registration order), with its usage."""
    rows = await db.fetch(
        """SELECT a.address, h.kind IS NOT NULL, COALESCE(u.count, 0), COALESCE(u.bytes, 0)
           FROM accounts AS a LEFT JOIN holds AS h ON h.address = a.address
           LEFT JOIN usage AS u ON u.receiver = a.address ORDER BY a.address"""
    )
    return [AccountRow(str(a), bool(b), int(n), int(s)) for a, b, n, s in rows]


async def count(db: Connection) -> Counts:
    accounts = await db.fetchval("SELECT COUNT(*) FROM accounts")
    blocked, reserved = [
        await db.fetchval("SELECT COUNT(*) FROM holds WHERE kind = $1", kind)
        for kind in (admin.BLOCKED, admin.DELETED)
    ]
    row = await db.fetchrow("SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM usage")
    assert row is not None
    return Counts(int(accounts), int(blocked), int(reserved), int(row[0]), int(row[1]))


async def held(db: Connection) -> dict[str, str]:
    return {str(a): str(k) for a, k in await db.fetch("SELECT address, kind FROM holds")}


async def has_account(db: Connection, address: str) -> bool:
    return await db.fetchval("SELECT 1 FROM accounts WHERE address = $1", address) is not None


async def block(db: Connection, address: str) -> bool:
    """In a transaction; False if there is no such account."""
    if not await has_account(db, address):
        return False
    await db.execute(
        "INSERT INTO holds (address, kind) VALUES ($1, $2)"
        " ON CONFLICT (address) DO UPDATE SET kind = EXCLUDED.kind",
        address,
        admin.BLOCKED,
    )
    await _announce(db)
    return True


async def unblock(db: Connection, address: str) -> bool:
    status = await db.execute(
        "DELETE FROM holds WHERE address = $1 AND kind = $2", address, admin.BLOCKED
    )
    await transactions.mark_pending(db)
    return _rows(status) > 0


async def delete_account(db: Connection, address: str) -> bool:
    """Remove the account and its invitations, reserve the address; the mail goes next,
    in batches (:func:`erase_batch`), so this transaction stays short."""
    if not await has_account(db, address):
        return False
    await db.execute("DELETE FROM accounts WHERE address = $1", address)
    await db.execute("DELETE FROM invitations WHERE address = $1", address)
    await db.execute(
        "INSERT INTO holds (address, kind) VALUES ($1, $2)"
        " ON CONFLICT (address) DO UPDATE SET kind = EXCLUDED.kind",
        address,
        admin.DELETED,
    )
    await _announce(db)
    return True


async def release(db: Connection, address: str) -> bool:
    status = await db.execute(
        "DELETE FROM holds WHERE address = $1 AND kind = $2", address, admin.DELETED
    )
    await transactions.mark_pending(db)
    return _rows(status) > 0


async def erase_batch(db: Connection, address: str) -> tuple[int, int]:
    """Delete up to ERASE_BATCH messages as DELETE does (chunks freed, usage);
    (messages, bytes) erased, (0, 0) when the mailbox is empty."""
    rows = await db.fetch(
        "SELECT id, size, slots FROM mailbox WHERE receiver = $1 LIMIT $2 FOR UPDATE",
        address,
        admin.ERASE_BATCH,
    )
    if not rows:
        await db.execute("DELETE FROM usage WHERE receiver = $1", address)
        return 0, 0
    await chunks.free(db, [int(slot) for row in rows for slot in row["slots"]])
    await db.execute(
        "DELETE FROM mailbox WHERE receiver = $1 AND id = ANY($2::text[])",
        address,
        [str(row["id"]) for row in rows],
    )
    size = sum(int(row["size"]) for row in rows)
    await db.execute(
        "UPDATE usage SET bytes = bytes - $1, count = count - $2 WHERE receiver = $3",
        size,
        len(rows),
        address,
    )
    await transactions.mark_pending(db)
    return len(rows), size


async def list_invitations(db: Connection) -> list[InvitationRow]:
    """Bound address and expiry, in address order; the token hashes stay unshown."""
    rows = await db.fetch(
        "SELECT address, expires_at FROM invitations ORDER BY address, expires_at"
    )
    return [InvitationRow(str(a), int(e)) for a, e in rows]


async def revoke_invitations(db: Connection, address: str) -> int:
    status = await db.execute("DELETE FROM invitations WHERE address = $1", address)
    await transactions.mark_pending(db)
    return _rows(status)


async def clear_limits(db: Connection, keys: Sequence[bytes]) -> int:
    status = await db.execute("DELETE FROM limits WHERE key = ANY($1::bytea[])", list(keys))
    await transactions.mark_pending(db)
    return _rows(status)


async def _announce(db: Connection) -> None:
    """Tell every node's watcher to look at ``holds`` again."""
    await db.execute("UPDATE layout SET value = $1 WHERE name = 'holds'", secrets.randbits(62) + 1)
    await transactions.mark_pending(db)


def _rows(status: str) -> int:
    """The row count of a command tag such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


class PgAdmin:
    """../adminstore.py's AdminStore on PostgreSQL: each call one transaction."""

    def __init__(self, runner: asyncio.Runner, conn: asyncpg.Connection) -> None:
        self._runner = runner
        self._conn = conn

    @classmethod
    def connect(cls, url: str) -> PgAdmin:
        runner = asyncio.Runner()
        try:
            conn = runner.run(prepared(url))
        except BaseException:
            runner.close()
            raise
        return cls(runner, conn)

    def _in_transaction(self, action: Callable[[Connection], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            async with self._conn.transaction():
                return await action(self._conn)

        try:
            return self._runner.run(run())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"the database failed: {type(exc).__name__}") from None

    def registrable(self, address: str) -> bool:
        return self._in_transaction(lambda db: reads.registrable(db, address))

    def add_invitation(self, token_hash: bytes, address: str, expires_at: int) -> None:
        self._in_transaction(
            lambda db: transactions.add_invitation(db, token_hash, address, expires_at)
        )

    def clear_limits(self, keys: Sequence[bytes]) -> int:
        return self._in_transaction(lambda db: clear_limits(db, keys))

    def list_accounts(self) -> list[AccountRow]:
        return self._in_transaction(list_accounts)

    def held(self) -> dict[str, str]:
        return self._in_transaction(held)

    def count(self) -> Counts:
        return self._in_transaction(count)

    def block(self, address: str) -> bool:
        return self._in_transaction(lambda db: block(db, address))

    def unblock(self, address: str) -> bool:
        return self._in_transaction(lambda db: unblock(db, address))

    def delete_account(self, address: str) -> bool:
        return self._in_transaction(lambda db: delete_account(db, address))

    def release(self, address: str) -> bool:
        return self._in_transaction(lambda db: release(db, address))

    def erase_batch(self, address: str) -> tuple[int, int]:
        return self._in_transaction(lambda db: erase_batch(db, address))

    def finish_erase(self) -> None:
        """Nothing to do: dead rows go with autovacuum (docs/server.md on PostgreSQL)."""

    def list_invitations(self) -> list[InvitationRow]:
        return self._in_transaction(list_invitations)

    def revoke_invitations(self, address: str) -> int:
        return self._in_transaction(lambda db: revoke_invitations(db, address))

    def close(self) -> None:
        try:
            self._runner.run(self._conn.close())
        finally:
            self._runner.close()


def status_lines(location: Location, config: ServerConfig) -> list[str]:
    """``rune-server status`` on PostgreSQL: aggregates only, never an address."""
    assert location.url is not None

    async def read() -> list[str]:
        conn = await connect(location.url or "")
        try:
            found = await schema.version(conn)
            if found is None:
                raise OperatorError(
                    f"no Rune schema in {location.shown()} (run rune-server init --database)"
                )
            accounts = await conn.fetchval("SELECT COUNT(*) FROM accounts")
            invitations = await conn.fetchval("SELECT COUNT(*) FROM invitations")
            row = await conn.fetchrow(
                "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM usage"
            )
            limits = await conn.fetchval("SELECT COUNT(*) FROM limits")
            failures = await conn.fetchval("SELECT COUNT(*) FROM failures")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
        finally:
            await conn.close()
        assert row is not None
        return [
            f"store: PostgreSQL {location.shown()}",
            f"schema version {found} (this rune-server: {schema.SCHEMA_VERSION})",
            f"accounts {accounts}, unused invitations {invitations}",
            f"messages stored {row[0]} ({int(row[1]) / MIB:.1f} MiB)",
            f"database size {int(size) / MIB:.1f} MiB",
            f"abuse-limit counters active {limits}, throttled keys {failures}",
        ]

    return asyncio.run(read()) + live_lines(config)
