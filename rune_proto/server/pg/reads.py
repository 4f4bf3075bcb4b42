"""The store's reads on PostgreSQL: each one statement, or one snapshot.

A read needs no lock: READ COMMITTED sees every committed transaction of every
node. The one read of two statements (a blob: its slot list, then its chunks) runs
in a repeatable-read snapshot, because the order pass may move the chunks between
the two. As on SQLite, an unknown address costs the same one-row read as a known
one (``ACCOUNT_QUERY``), and a listing is in id order, never arrival order.
"""

from __future__ import annotations

from .. import admin
from ..database import Invitation
from . import chunks
from .chunks import Connection
from .schema import ACCOUNT_QUERY


async def invitation(conn: Connection, token_hash: bytes, address: str, now: int) -> Invitation:
    row = await conn.fetchrow(
        "SELECT address, expires_at FROM invitations WHERE token_hash = $1", token_hash
    )
    if row is None or row[0] != address:
        return Invitation.INVALID
    return Invitation.EXPIRED if int(row[1]) <= now else Invitation.VALID


async def public_key(conn: Connection, address: str) -> bytes | None:
    row = await conn.fetchrow(ACCOUNT_QUERY, address)
    if row is None:
        return None
    key = bytes(row[1])
    return key if row[0] else None


async def hold_of(conn: Connection, address: str) -> str | None:
    kind = await conn.fetchval("SELECT kind FROM holds WHERE address = $1", address)
    return None if kind is None else str(kind)


async def registrable(conn: Connection, address: str) -> bool:
    return await public_key(conn, address) is None and await hold_of(conn, address) is None


async def blocked(conn: Connection, address: str) -> bool:
    return await hold_of(conn, address) == admin.BLOCKED


async def totals(conn: Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM accounts), (SELECT COALESCE(sum(count), 0) FROM usage),
                  (SELECT COALESCE(sum(bytes), 0) FROM usage)"""
    )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def list_messages(conn: Connection, receiver: str) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT id, size FROM mailbox WHERE receiver = $1 ORDER BY id", receiver
    )
    return [(str(r[0]), int(r[1])) for r in rows]


async def message(conn: Connection, receiver: str, message_id: str) -> bytes | None:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(
            "SELECT size, slots FROM mailbox WHERE receiver = $1 AND id = $2", receiver, message_id
        )
        if row is None:
            return None
        return await chunks.read(conn, list(row[1]), int(row[0]))


async def message_size(conn: Connection, receiver: str, message_id: str) -> int | None:
    size = await conn.fetchval(
        "SELECT size FROM mailbox WHERE receiver = $1 AND id = $2", receiver, message_id
    )
    return None if size is None else int(size)


async def holds_generation(conn: Connection) -> int:
    value = await conn.fetchval("SELECT value FROM layout WHERE name = 'holds'")
    return 0 if value is None else int(value)


async def held(conn: Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT address, kind FROM holds")
    return {str(r[0]): str(r[1]) for r in rows}
