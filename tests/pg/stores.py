"""Both stores behind one face, for tests that must hold on SQLite and on PostgreSQL.

A :class:`Backend` opens stores on one database (several at once on PostgreSQL: the
nodes of a cluster) and does, through the database itself, what an operator or a
thief would: add an invitation, block an address, count rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from rune_proto.server import admin
from rune_proto.server.database import Database
from rune_proto.server.pg import schema, transactions
from rune_proto.server.pg.store import PgStore
from rune_proto.server.store import SQLiteStore

AnyStore = SQLiteStore | PgStore


@dataclass
class Clock:
    """A wall clock the test moves."""

    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


class Backend(Protocol):
    name: str

    async def open(self, **options: Any) -> AnyStore: ...

    async def scalar(self, sql: str) -> int:
        """The first column of the first row of a query (no parameters: ``?`` differ)."""
        ...

    async def add_invitation(self, token_hash: bytes, address: str, expires_at: int) -> None: ...

    async def block(self, address: str) -> None: ...


@dataclass
class SQLiteBackend:
    path: Path
    name: str = "sqlite"

    async def open(self, **options: Any) -> AnyStore:
        return await SQLiteStore.open(self.path, **options)

    async def scalar(self, sql: str) -> int:
        with sqlite3.connect(self.path) as db:
            value = int(db.execute(sql).fetchone()[0])
        db.close()
        return value

    async def add_invitation(self, token_hash: bytes, address: str, expires_at: int) -> None:
        database = Database(self.path)
        try:
            database.add_invitation(token_hash, address, expires_at)
        finally:
            database.close()

    async def block(self, address: str) -> None:
        database = Database(self.path)
        try:
            database.transact(lambda db: admin.block(db, address))
        finally:
            database.close()


@dataclass
class PgBackend:
    url: str
    name: str = "postgres"
    opened: list[PgStore] = field(default_factory=list)
    prepared: bool = False

    async def open(self, **options: Any) -> AnyStore:
        store = await PgStore.open(self.url, **options)
        self.opened.append(store)
        return store

    async def _run(self, action: Callable[[asyncpg.Connection], Any]) -> Any:
        conn = await asyncpg.connect(self.url)
        try:
            if not self.prepared:  # as an operator's tool would, before any store opened
                await schema.prepare(conn)
                self.prepared = True
            return await action(conn)
        finally:
            await conn.close()

    async def scalar(self, sql: str) -> int:
        return int(await self._run(lambda conn: conn.fetchval(sql)))

    async def execute(self, sql: str, *args: object) -> None:
        await self._run(lambda conn: conn.execute(sql, *args))

    async def add_invitation(self, token_hash: bytes, address: str, expires_at: int) -> None:
        async def add(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await transactions.add_invitation(conn, token_hash, address, expires_at)

        await self._run(add)

    async def block(self, address: str) -> None:
        await self.execute(
            "INSERT INTO holds (address, kind) VALUES ($1, $2)", address, admin.BLOCKED
        )
        await self.execute("UPDATE layout SET value = value + 1 WHERE name = 'holds'")


@asynccontextmanager
async def opened(backend: Backend, **options: Any) -> AsyncIterator[AnyStore]:
    store = await backend.open(**options)
    try:
        yield store
    finally:
        await store.close()


async def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` on the event loop until true, or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
