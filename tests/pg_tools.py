"""Reading a PostgreSQL store from a test, as tests/store_tools.py does for SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg

from rune_proto.server.pg import chunks, schema

_T = TypeVar("_T")


def _sync(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to its end, also from a test that runs in an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:  # its own loop, on its own thread
        return pool.submit(lambda: asyncio.run(make())).result()


def pg_rows(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """``query`` on the database at ``url``: its rows as tuples (a short connection)."""

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url, timeout=30)
        try:
            return [tuple(row) for row in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return _sync(run)


def pg_usage_row(url: str, address: str) -> tuple[int, int] | None:
    """The mailbox's (bytes, count) row, or None."""
    rows = pg_rows(url, "SELECT bytes, count FROM usage WHERE receiver = $1", address)
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def pg_blob(url: str, receiver: str, message_id: str) -> bytes:
    """A stored message's blob, read from its chunks as the store reads it."""

    async def run() -> bytes:
        conn = await asyncpg.connect(url, timeout=30)
        try:
            row = await conn.fetchrow(
                "SELECT size, slots FROM mailbox WHERE receiver = $1 AND id = $2",
                receiver,
                message_id,
            )
            assert row is not None, "no such message"
            return await chunks.read(conn, list(row["slots"]), int(row["size"]))
        finally:
            await conn.close()

    return _sync(run)


def pg_put_back(url: str, receiver: str, message_id: str, blob: bytes) -> None:
    """Store ``blob`` under ``message_id`` again, as a server that kept a copy would
    (store_tools.put_back's twin)."""

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=30)
        try:
            async with conn.transaction():
                size = await schema.chunk_bytes(conn)
                (placed,) = await chunks.append_many(conn, [(receiver, message_id, blob)], size)
                await conn.execute(
                    "INSERT INTO mailbox (receiver, id, size, slots) VALUES ($1, $2, $3, $4)",
                    receiver,
                    message_id,
                    len(blob),
                    placed,
                )
                await conn.execute(
                    """INSERT INTO usage (receiver, bytes, count) VALUES ($1, $2, 1)
                       ON CONFLICT (receiver) DO UPDATE SET bytes = usage.bytes + $2,
                       count = usage.count + 1""",
                    receiver,
                    len(blob),
                )
        finally:
            await conn.close()

    _sync(run)
