"""Group commits off the GIL's and the checkpoints' way (see store.py's docstring).

SQLite's automatic checkpoint runs inside the commit that crosses its threshold, and
held that commit (and every ``202`` waiting on it) for 50–70 ms. Here the store's own
connection only keeps a far-out safety valve; a second connection checkpoints in the
background, and commits carry on meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from rune_proto.server.checkpoint import CHECKPOINT_EVERY, Checkpointer
from rune_proto.server.database import AUTOCHECKPOINT_PAGES, INSERT_ROWS, Database
from rune_proto.server.store import SQLiteStore

BLOB = b"\x02" * 18_000  # about one stored 4 KiB message


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


async def test_the_commit_connection_leaves_checkpoints_to_the_background(database: Path) -> None:
    store = await SQLiteStore.open(database)
    try:
        (pages,) = await store._run(
            lambda: store._db._db.execute("PRAGMA wal_autocheckpoint").fetchone()
        )
        assert pages == AUTOCHECKPOINT_PAGES
    finally:
        await store.close()


async def test_messages_reach_the_database_file_before_close(database: Path) -> None:
    """Without background checkpoints they would all still be in the WAL (≈7 MB < valve)."""
    store = await SQLiteStore.open(database)
    try:
        for i in range(3 * CHECKPOINT_EVERY):
            await store.add_message(f"user{i % 7}@x.example", BLOB, 10**9)
        async with asyncio.timeout(15):  # a checkpoint that never ends fails, not hangs
            while store._checkpointer._running is not None:
                await asyncio.sleep(0.01)
        in_file = database.stat().st_size
    finally:
        await store.close()
    assert in_file > CHECKPOINT_EVERY * len(BLOB)  # at least the first batch was copied
    assert rows(database) == 3 * CHECKPOINT_EVERY
    assert not Path(f"{database}-wal").exists()  # the last close checkpointed the rest


async def test_commits_go_on_while_a_checkpoint_runs(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint that takes forever does not hold up a single acknowledgement."""
    release, started = threading.Event(), threading.Event()
    real = Checkpointer._checkpoint

    def slow(self: Checkpointer) -> None:
        started.set()
        release.wait(30)
        real(self)

    monkeypatch.setattr(Checkpointer, "_checkpoint", slow)
    store = await SQLiteStore.open(database)
    try:
        for _ in range(CHECKPOINT_EVERY):
            await store.add_message("bob@x.example", BLOB, 10**9)
        assert await asyncio.to_thread(started.wait, 10)
        async with asyncio.timeout(10):  # while the checkpoint is stuck
            ids = await asyncio.gather(
                *(store.add_message("carol@x.example", BLOB, 10**9) for _ in range(20))
            )
        assert all(ids) and rows(database) == CHECKPOINT_EVERY + 20
        assert store._checkpointer._running is not None  # still stuck: commits did not wait
    finally:
        release.set()
        await store.close()
    assert not Path(f"{database}-wal").exists()


async def test_a_failing_checkpoint_is_logged_and_harmless(
    database: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Checkpointer) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Checkpointer, "_checkpoint", broken)
    store = await SQLiteStore.open(database)
    try:
        for _ in range(CHECKPOINT_EVERY + 1):
            assert await store.add_message("dave@x.example", BLOB, 10**9) is not None
        async with asyncio.timeout(15):  # a checkpoint that never ends fails, not hangs
            while store._checkpointer._running is not None:
                await asyncio.sleep(0.01)
    finally:
        await store.close()
    assert "background checkpoint failed (OperationalError)" in caplog.text
    assert "disk I/O error" not in caplog.text
    assert rows(database) == CHECKPOINT_EVERY + 1


def test_a_batch_longer_than_one_insert_statement_is_stored_whole(database: Path) -> None:
    """Group commits insert INSERT_ROWS messages per statement; the rest in more."""
    db = Database(database)
    try:
        count = 2 * INSERT_ROWS + 5
        quota = 3 * INSERT_ROWS * 100
        items = [(f"user{i % 3}@x.example", bytes([i % 256]) * 100, quota) for i in range(count)]
        items.insert(7, ("full@x.example", b"x" * 200, 100))  # over quota: refused alone
        ids = db.add_messages(items)
    finally:
        db.close()
    assert ids[7] is None and all(ids[:7]) and all(ids[8:])
    assert len(set(ids) - {None}) == count
    check = sqlite3.connect(database)
    try:
        stored = dict(check.execute("SELECT id, blob FROM messages").fetchall())
    finally:
        check.close()
    assert len(stored) == count
    for message_id, (_, blob, _) in zip(ids, items, strict=True):
        if message_id is not None:
            assert stored[message_id] == blob  # each id holds its own message
