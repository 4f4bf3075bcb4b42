"""The store's group commit and its in-memory mailbox usage (see store.py's docstring)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rune_proto.server.store import Database, SQLiteStore

BLOB = b"\x01" * 1000


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "rune.db"
    Database.create(path)
    return path


def rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        db.close()


async def test_concurrent_messages_share_commits_and_all_are_stored(database: Path) -> None:
    store = await SQLiteStore.open(database)
    batches: list[int] = []
    real = store._db.add_messages

    def counting(items: list[tuple[str, bytes, int]], charges: Any) -> list[Any]:
        batches.append(len(items))
        return real(items, charges)

    store._db.add_messages = counting  # type: ignore[method-assign]
    try:
        ids = await asyncio.gather(
            *(store.add_message(f"user{i % 5}@x.example", BLOB, 10**6) for i in range(50))
        )
    finally:
        await store.close()
    assert all(ids) and len(set(ids)) == 50
    assert sum(batches) == 50
    assert len(batches) < 50  # later arrivals waited for a commit and went together
    assert rows(database) == 50


async def test_each_answer_comes_after_its_commit(database: Path) -> None:
    store = await SQLiteStore.open(database)
    try:
        for i in range(3):
            await store.add_message("alice@x.example", BLOB, 10**6)
            assert rows(database) == i + 1  # visible to another connection: committed
    finally:
        await store.close()


async def test_quota_counts_earlier_messages_of_the_same_batch(database: Path) -> None:
    store = await SQLiteStore.open(database)
    try:
        quota = 3 * len(BLOB)
        ids = await asyncio.gather(
            *(store.add_message("bob@x.example", BLOB, quota) for _ in range(5))
        )
        assert sum(i is not None for i in ids) == 3
        assert await store.add_message("bob@x.example", BLOB, quota) is None
        # Another mailbox is not affected.
        assert await store.add_message("carol@x.example", BLOB, quota) is not None
    finally:
        await store.close()
    assert rows(database) == 4


async def test_usage_is_kept_on_disk_across_restarts(database: Path) -> None:
    first = await SQLiteStore.open(database)
    try:
        for _ in range(2):
            await first.add_message("dave@x.example", BLOB, 10**6)
    finally:
        await first.close()
    # A restarted server starts from what is on disk.
    store = await SQLiteStore.open(database)
    try:
        assert await store.add_message("dave@x.example", BLOB, 3 * len(BLOB)) is not None
        assert await store.add_message("dave@x.example", BLOB, 3 * len(BLOB)) is None
    finally:
        await store.close()


async def test_deleting_frees_quota(database: Path) -> None:
    store = await SQLiteStore.open(database)
    try:
        quota = 2 * len(BLOB)
        kept = await store.add_message("erin@x.example", BLOB, quota)
        await store.add_message("erin@x.example", BLOB, quota)
        assert await store.add_message("erin@x.example", BLOB, quota) is None
        assert kept is not None and await store.delete_message("erin@x.example", kept)
        assert await store.add_message("erin@x.example", BLOB, quota) is not None
        assert await store.add_message("erin@x.example", BLOB, quota) is None
    finally:
        await store.close()


def blobs(path: Path) -> int:
    """Messages with chunks in the slot array (server/slots.py)."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(DISTINCT id) FROM chunks").fetchone()[0])
    finally:
        db.close()


def run_sql(path: Path, sql: str) -> None:
    db = sqlite3.connect(path, timeout=0)  # a transaction left open would lock: fail, not wait
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


async def test_a_failed_commit_fails_its_callers_and_changes_nothing(database: Path) -> None:
    """The failure comes from SQLite inside the transaction, after the blobs went in."""
    store = await SQLiteStore.open(database)
    try:
        await store.add_message("frank@x.example", BLOB, 10**6)
        run_sql(
            database,
            "CREATE TRIGGER refuse BEFORE INSERT ON mailbox"
            " BEGIN SELECT RAISE(ABORT, 'mailbox refused'); END",
        )
        results = await asyncio.gather(
            *(store.add_message("frank@x.example", BLOB, 10**6) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        # Rolled back: the blobs inserted before the failing step are gone too, and no
        # transaction is left open (the trigger can be dropped without waiting).
        assert (rows(database), blobs(database)) == (1, 1)
        run_sql(database, "DROP TRIGGER refuse")
        # The usage row did not move: exactly one more fits.
        assert await store.add_message("frank@x.example", BLOB, 2 * len(BLOB)) is not None
        assert await store.add_message("frank@x.example", BLOB, 2 * len(BLOB)) is None
    finally:
        await store.close()
    assert (rows(database), blobs(database)) == (2, 2)


async def test_a_cancelled_caller_does_not_disturb_the_others(database: Path) -> None:
    store = await SQLiteStore.open(database)
    try:
        tasks = [
            asyncio.create_task(store.add_message("gina@x.example", BLOB, 10**6)) for _ in range(4)
        ]
        await asyncio.sleep(0)
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        assert all(isinstance(d, str) for i, d in enumerate(done) if i != 1)
    finally:
        await store.close()
