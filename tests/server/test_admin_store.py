"""admin.py on a real SQLite file: erasing in batches, holds through the order pass;
and the operator's actions through adminstore.py on both stores (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from rune_proto.keys import Identity
from rune_proto.server import admin
from rune_proto.server.adminstore import open_admin
from rune_proto.server.config import ServerConfig
from rune_proto.server.dburl import Location
from rune_proto.server.store import Database, Outcome, Store
from rune_proto.server.stores import open_store

BOB, CAROL = "bob@x.example", "carol@x.example"
_T = TypeVar("_T")
# One server identity for every store opened here (PostgreSQL seals chunks under it).
IDENTITY = Identity.generate()


def test_erase_in_batches_keeps_usage_right_and_leaves_others_alone(tmp_path: Path) -> None:
    db = Database(tmp_path / "rune.db", create=True)
    try:
        count = admin.ERASE_BATCH * 2 + 7  # three batches, the last one short
        db.add_messages([(BOB, os.urandom(5000), 10**9)] * count)
        (kept,) = db.add_messages([(CAROL, b"\x07" * 9000, 10**9)])
        erased = (0, 0)
        for _ in range(10):  # bounded
            step = db.transact(lambda c: admin.erase_batch(c, BOB))
            if step == (0, 0):
                break
            erased = (erased[0] + step[0], erased[1] + step[1])
        assert erased == (count, count * 5000)
        assert db.list_messages(BOB) == []
        assert db.read(lambda c: c.execute("SELECT * FROM usage").fetchall()) == [(CAROL, 9000, 1)]
        assert db.message(CAROL, str(kept)) == b"\x07" * 9000
        owners = db.read(lambda c: c.execute("SELECT DISTINCT receiver FROM chunks").fetchall())
        assert owners == [(CAROL,)]
        # A new message for bob counts from zero.
        assert db.add_message(BOB, b"\x01" * 100, 100) is not None
    finally:
        db.close()


def test_holds_survive_the_order_pass_and_block_registration(tmp_path: Path) -> None:
    db = Database(tmp_path / "rune.db", create=True)
    try:
        for address in (BOB, CAROL, "dave@x.example"):
            db.create_account(address, b"\x01", None, 0)
        generation = db.holds_generation()
        db.transact(lambda c: admin.block(c, BOB))
        assert db.holds_generation() != generation
        db.transact(lambda c: admin.delete_account(c, CAROL))
        before = (db.held(), db.holds_generation())
        db.order_pass()
        assert (db.held(), db.holds_generation()) == before
        assert before[0] == {BOB: admin.BLOCKED, CAROL: admin.DELETED}
        assert db.blocked(BOB) and not db.blocked(CAROL)
        assert not db.registrable(BOB) and not db.registrable(CAROL)
        assert db.create_account(CAROL, b"\x02", None, 0).value == "taken"
        assert db.transact(lambda c: admin.release(c, CAROL))
        assert db.registrable(CAROL)
        counts = db.read(admin.count)
        assert (counts.accounts, counts.blocked, counts.reserved) == (2, 1, 0)
    finally:
        db.close()


@pytest.fixture
def location(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A fresh store of each kind, for adminstore.py's two implementations."""
    if store_kind == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
        return Location(tmp_path / "rune.db", url)
    Database.create(tmp_path / "rune.db")
    return Location(tmp_path / "rune.db")


def _with_store(location: Location, action: Callable[[Store], Awaitable[_T]]) -> _T:
    """``action`` on the server's store at ``location`` (what a running node does)."""

    async def run() -> _T:
        store = await open_store(
            location, ServerConfig(domain="x.example", disk_reserve_mib=0), IDENTITY
        )
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_erase_in_batches_frees_the_quota_on_both_stores(location: Location) -> None:
    count = admin.ERASE_BATCH + 5  # two batches, the last one short

    async def fill(store: Store) -> str | None:
        for _ in range(count):
            assert await store.add_message(BOB, os.urandom(3000), 10**9) is not None
        return await store.add_message(CAROL, b"\x07" * 9000, 10**9)

    kept = _with_store(location, fill)
    db = open_admin(location)
    try:
        erased = (0, 0)
        for _ in range(10):  # bounded
            step = db.erase_batch(BOB)
            if step == (0, 0):
                break
            erased = (erased[0] + step[0], erased[1] + step[1])
        db.finish_erase()
        assert erased == (count, count * 3000)
        assert db.erase_batch(BOB) == (0, 0)
    finally:
        db.close()

    async def check(store: Store) -> None:
        assert await store.list_messages(BOB) == []
        assert kept is not None and await store.message(CAROL, kept) == b"\x07" * 9000
        assert await store.totals() == (0, 1, 9000)
        assert await store.add_message(BOB, b"\x01" * 100, 100) is not None  # from zero

    _with_store(location, check)


def test_holds_block_registration_and_release_frees_it_on_both_stores(
    location: Location,
) -> None:
    async def register(store: Store) -> int:
        for address in (BOB, CAROL, "dave@x.example"):
            assert await store.create_account(address, b"\x01", None, 0) is Outcome.CREATED
        return await store.holds_generation()

    generation = _with_store(location, register)
    db = open_admin(location)
    try:
        assert db.block(BOB) and not db.block("nobody@x.example")
        assert db.delete_account(CAROL) and not db.delete_account(CAROL)
        assert db.held() == {BOB: admin.BLOCKED, CAROL: admin.DELETED}
        assert not db.registrable(BOB) and not db.registrable(CAROL)
        counts = db.count()
        assert (counts.accounts, counts.blocked, counts.reserved) == (2, 1, 1)
        assert [(row.address, row.blocked) for row in db.list_accounts()] == [
            (BOB, True),
            ("dave@x.example", False),
        ]
    finally:
        db.close()

    async def held(store: Store) -> None:
        assert await store.holds_generation() != generation  # every node's watcher sees it
        assert await store.blocked(BOB) and not await store.blocked(CAROL)
        assert await store.create_account(CAROL, b"\x02", None, 0) is Outcome.TAKEN

    _with_store(location, held)
    db = open_admin(location)
    try:
        assert db.release(CAROL) and not db.release(CAROL)
        assert db.unblock(BOB) and not db.unblock(BOB)
        assert db.registrable(CAROL) and db.held() == {}
        db.add_invitation(b"\x05" * 32, "erin@x.example", 10**10)
        assert [row.address for row in db.list_invitations()] == ["erin@x.example"]
        assert db.revoke_invitations("erin@x.example") == 1
    finally:
        db.close()
