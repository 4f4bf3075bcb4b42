"""Reading a PostgreSQL store from a test, as tests/store_tools.py does for SQLite."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg


def pg_rows(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """``query`` on the database at ``url``: its rows as tuples (a short connection)."""

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url, timeout=30)
        try:
            return [tuple(row) for row in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def pg_usage_row(url: str, address: str) -> tuple[int, int] | None:
    """The mailbox's (bytes, count) row, or None."""
    rows = pg_rows(url, "SELECT bytes, count FROM usage WHERE receiver = $1", address)
    return (int(rows[0][0]), int(rows[0][1])) if rows else None
