"""The throttle's ``failures`` table on both stores: counts, the window, the bound.

throttle.py's semantics, kept now that the counts are in the database (failures.py,
pg/failures.py): a count goes stale ``window`` seconds after its last failure and
starts again at one; each kind holds at most ``capacity`` rows, stale ones and then
the oldest pushed out first; the SQLite order pass deletes stale rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from rune_proto.keys import Identity
from rune_proto.server.config import ServerConfig
from rune_proto.server.dburl import Location
from rune_proto.server.store import Database, Store
from rune_proto.server.stores import open_store
from tests.pg_tools import pg_rows

_T = TypeVar("_T")
WINDOW = 60.0
# One server identity for every store opened here (PostgreSQL seals chunks under it).
IDENTITY = Identity.generate()


@pytest.fixture
def location(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    if store_kind == "postgresql":
        return Location(tmp_path / "rune.db", request.getfixturevalue("postgres").new_database())
    Database.create(tmp_path / "rune.db")
    return Location(tmp_path / "rune.db")


def _on(location: Location, now: float, action: Callable[[Store], Awaitable[_T]]) -> _T:
    """``action`` on the store whose clock says ``now`` (the pass at close sweeps by it)."""

    async def run() -> _T:
        config = ServerConfig(domain="x.example", disk_reserve_mib=0, throttle_window=WINDOW)
        store = await open_store(location, config, IDENTITY, clock=lambda: now)
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _rows(location: Location) -> list[tuple[str, bytes, int]]:
    query = "SELECT kind, key, count FROM failures ORDER BY kind, key"
    if location.url is not None:
        return [(str(k), bytes(d), int(c)) for k, d, c in pg_rows(location.url, query)]
    with sqlite3.connect(location.path) as db:
        rows = [(str(k), bytes(d), int(c)) for k, d, c in db.execute(query)]
    db.close()
    return rows


def test_counts_go_stale_after_the_window_and_kinds_are_apart(location: Location) -> None:
    key = b"\x01" * 16

    async def run(store: Store) -> None:
        for at in (100.0, 101.0, 102.0):
            await store.count_failure("login", key, at, at - WINDOW, 10)
        assert await store.failures("login", key, 102.0 - WINDOW) == 3
        assert await store.failures("register", key, 102.0 - WINDOW) == 0
        assert await store.failures("login", key, 102.0) == 0  # its last failure is too old
        await store.count_failure("login", key, 500.0, 500.0 - WINDOW, 10)  # stale: from 1
        assert await store.failures("login", key, 500.0 - WINDOW) == 1

    _on(location, 510.0, run)
    assert _rows(location) == [("login", key, 1)]


def test_each_kind_holds_at_most_capacity_rows_the_oldest_go_first(location: Location) -> None:
    keys = [bytes([n]) * 16 for n in range(6)]

    async def run(store: Store) -> None:
        await store.count_failure("register", b"\xff" * 16, 1000.0, 1000.0 - WINDOW, 3)  # apart
        for n, key in enumerate(keys):
            await store.count_failure("login", key, 1000.0 + n, 1000.0 + n - WINDOW, 3)
        since = 1005.0 - WINDOW
        assert [await store.failures("login", key, since) for key in keys] == [0, 0, 0, 1, 1, 1]

    _on(location, 1010.0, run)
    kept = _rows(location)
    assert [(kind, key) for kind, key, _ in kept] == [
        ("login", keys[3]),
        ("login", keys[4]),
        ("login", keys[5]),
        ("register", b"\xff" * 16),
    ]


def test_the_order_pass_deletes_stale_rows(location: Location) -> None:
    now = [1000.0]

    async def run() -> None:
        config = ServerConfig(
            domain="x.example", disk_reserve_mib=0, order_window=3600, throttle_window=WINDOW
        )
        store = await open_store(location, config, IDENTITY, clock=lambda: now[0])
        await store.count_failure("login", b"\x01" * 16, 1000.0, 1000.0 - WINDOW, 10)
        await store.count_failure("login", b"\x02" * 16, 1050.0, 1050.0 - WINDOW, 10)
        now[0] = 1000.0 + WINDOW  # the first one's window is over, not the second's
        await store.close()  # the closing pass runs: a change is due

    asyncio.run(run())
    assert [key for _, key, _ in _rows(location)] == [b"\x02" * 16]
