"""The store's schema: lookups by (receiver, id) that never read a blob, and the
upgrade of a version-1 database (blobs inside the searched rows) and of a version-2
one (blobs in a rowid table, accounts with rowids) on open."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rune_proto.server import failures, slots
from rune_proto.server.store import SCHEMA_VERSION, Database, SQLiteStore, StoreError

VERSION_1 = """
CREATE TABLE accounts (address TEXT PRIMARY KEY, public_key BLOB NOT NULL);
CREATE TABLE messages (id TEXT PRIMARY KEY, receiver TEXT NOT NULL,
                       blob BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX messages_by_receiver ON messages (receiver);
CREATE TABLE invitations (token_hash BLOB PRIMARY KEY, address TEXT NOT NULL,
                          expires_at INTEGER NOT NULL);
PRAGMA user_version=1;
"""
ROWS = [  # (id, receiver, blob): one large enough to overflow its page
    ("0b0d5a1e-8c1f-4c3e-9a57-2d6f1e0f7a10", "bob@x.example", b"\x01" * 300_000),
    ("5e2f2c44-1f1a-4b7e-8a4e-6b7c1d9e0a21", "bob@x.example", b"\x02" * 18_846),
    ("9a7c3b52-4d6e-4f80-b1a2-3c4d5e6f7a32", "carol@x.example", b"\x03" * 18_846),
]


def version_1_database(path: Path) -> Path:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(VERSION_1)
    db.execute("INSERT INTO accounts VALUES ('bob@x.example', x'01')")
    db.execute("INSERT INTO invitations VALUES (x'aa', 'dan@x.example', 99)")
    db.executemany("INSERT INTO messages (id, receiver, blob) VALUES (?, ?, ?)", ROWS)
    db.close()
    return path


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    Database.create(tmp_path / "rune.db")
    db = Database(tmp_path / "rune.db")
    yield db
    db.close()


def test_lookups_search_by_receiver_then_id_and_never_scan(database: Database) -> None:
    """Another user's id and a random id must take the same path: a miss on the
    (receiver, id) key. EXPLAIN QUERY PLAN of every statement the store runs."""
    ids = database.add_messages([("bob@x.example", b"\x05" * 20_000, 10**9)])
    statements: list[str] = []
    database._db.set_trace_callback(statements.append)
    assert database.message("alice@x.example", str(ids[0])) is None
    assert database.message("bob@x.example", str(ids[0])) == b"\x05" * 20_000
    assert database.message_size("alice@x.example", str(ids[0])) is None
    assert database.message_size("bob@x.example", str(ids[0])) == 20_000
    assert database.delete_message("alice@x.example", str(ids[0])) is False
    assert database.delete_message("bob@x.example", str(ids[0])) is True
    database._db.set_trace_callback(None)
    lookups = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "DELETE"))]
    assert lookups
    for statement in lookups:
        plan = [row[3] for row in database._db.execute("EXPLAIN QUERY PLAN " + statement)]
        assert all(step.startswith("SEARCH") for step in plan), (statement, plan)
        mailbox = [step for step in plan if "mailbox" in step or "messages" in step]
        for step in mailbox:
            assert "PRIMARY KEY (receiver=? AND id=?)" in step, (statement, plan)


def test_a_version_1_database_is_upgraded_on_open_and_keeps_everything(tmp_path: Path) -> None:
    path = version_1_database(tmp_path / "rune.db")
    db = Database(path)
    try:
        assert user_version(path) == SCHEMA_VERSION == 5
        for message_id, receiver, blob in ROWS:
            assert db.message(receiver, message_id) == blob
            assert db.message("mallory@x.example", message_id) is None
        assert db.list_messages("bob@x.example") == sorted((i, len(b)) for i, r, b in ROWS[:2])
        assert db.public_key("bob@x.example") == b"\x01"
        # The quota counts the upgraded messages.
        used = 300_000 + 18_846
        assert db.add_message("bob@x.example", b"\x04" * 100, used + 99) is None
        assert db.add_message("bob@x.example", b"\x04" * 100, used + 100) is not None
        assert db.delete_message("bob@x.example", ROWS[0][0])
        tables = {n for (n,) in db._db.execute("SELECT name FROM sqlite_master")}
        assert "messages_v1" not in tables and "messages_by_receiver" not in tables
    finally:
        db.close()
    Database(path).close()  # opening it again changes nothing
    assert user_version(path) == SCHEMA_VERSION
    assert b"\x01" * 4096 not in path.read_bytes()  # the old copy of a blob is not left


def test_an_upgrade_that_fails_half_way_leaves_version_1_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = version_1_database(tmp_path / "rune.db")
    calls = 0
    append = slots.append

    def failing_append(*args: Any) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk gone")
        return append(*args)

    monkeypatch.setattr(slots, "append", failing_append)
    with pytest.raises(OSError):
        Database(path)
    assert user_version(path) == 1
    db = sqlite3.connect(path)
    assert db.execute("SELECT id, receiver, blob FROM messages ORDER BY id").fetchall() == ROWS
    db.close()
    monkeypatch.undo()
    upgraded = Database(path)  # and the next open does it all
    try:
        assert [upgraded.message(r, i) for i, r, _ in ROWS] == [b for _, _, b in ROWS]
    finally:
        upgraded.close()


def test_an_unknown_schema_version_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rune.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=7")
    db.close()
    with pytest.raises(StoreError, match="schema version 7 is newer than this rune-server"):
        Database(path)


def test_the_server_store_opens_a_version_1_database(tmp_path: Path) -> None:
    path = version_1_database(tmp_path / "rune.db")

    async def read() -> bytes | None:
        store = await SQLiteStore.open(path)
        try:
            return await store.message(ROWS[2][1], ROWS[2][0])
        finally:
            await store.close()

    assert asyncio.run(read()) == ROWS[2][2]


VERSION_2 = """
CREATE TABLE accounts (address TEXT PRIMARY KEY, public_key BLOB NOT NULL);
CREATE TABLE mailbox (receiver TEXT NOT NULL, id TEXT NOT NULL, size INTEGER NOT NULL,
    blob_key INTEGER NOT NULL, PRIMARY KEY (receiver, id)) WITHOUT ROWID;
CREATE TABLE blobs (key INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE invitations (token_hash BLOB PRIMARY KEY, address TEXT NOT NULL,
    expires_at INTEGER NOT NULL);
CREATE VIEW messages (id, receiver, blob) AS SELECT mailbox.id, mailbox.receiver, blobs.data
    FROM mailbox JOIN blobs ON blobs.key = mailbox.blob_key;
PRAGMA user_version=2;
"""


def test_a_version_2_database_is_upgraded_and_its_order_hidden_at_once(tmp_path: Path) -> None:
    """Version 2 kept registration order in rowids and arrival order in page order:
    the upgrade moves everything into the slot array and the first pass shuffles it."""
    path = tmp_path / "rune.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(VERSION_2)
    db.execute("INSERT INTO accounts VALUES ('bob@x.example', x'01')")
    db.execute("INSERT INTO invitations VALUES (x'aa', 'dan@x.example', 99)")
    for key, (message_id, receiver, blob) in enumerate(ROWS, start=7):
        db.execute("INSERT INTO blobs VALUES (?, ?)", (key, blob))
        db.execute(
            "INSERT INTO mailbox VALUES (?, ?, ?, ?)", (receiver, message_id, len(blob), key)
        )
    db.close()
    upgraded = Database(path)
    try:
        assert user_version(path) == SCHEMA_VERSION
        assert upgraded.order_pending()  # the store runs the pass as soon as it opens
        upgraded.order_pass()
        assert not upgraded.order_pending()
        for message_id, receiver, blob in ROWS:
            assert upgraded.message(receiver, message_id) == blob
        assert upgraded.public_key("bob@x.example") == b"\x01"
        assert upgraded.invitation(b"\xaa", "dan@x.example", 0).value == "valid"
        without_rowid = {
            name
            for (name, sql) in upgraded._db.execute("SELECT name, sql FROM sqlite_master")
            if sql and "WITHOUT ROWID" in sql
        }
        assert {"accounts", "mailbox", "usage", "invitations", "layout"} <= without_rowid
        assert upgraded.add_message("bob@x.example", b"\x04", 300_000 + 18_846) is None
    finally:
        upgraded.close()


def test_a_version_3_database_gains_the_holds_table_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "rune.db"
    db = Database(path, create=True)
    db.create_account("bob@x.example", b"\x01", None, 0)
    (message_id,) = db.add_messages([("bob@x.example", b"\x02" * 5000, 10**9)])
    db.close()
    with sqlite3.connect(path) as old:  # as version 3 left it
        old.execute("DROP TABLE holds")
        old.execute("DELETE FROM layout WHERE name = 'holds'")
        old.execute("PRAGMA user_version=3")
    old.close()
    db = Database(path)
    try:
        assert user_version(path) == SCHEMA_VERSION == 5
        assert db.holds_generation() == 0 and db.held() == {}
        assert db.registrable("carol@x.example") and not db.registrable("bob@x.example")
        assert db.message("bob@x.example", str(message_id)) == b"\x02" * 5000
    finally:
        db.close()


def test_a_version_4_database_gains_the_failures_table_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """The shared throttle's table (failures.py) arrives by upgrade, nothing else moves."""
    path = tmp_path / "rune.db"
    db = Database(path, create=True)
    db.create_account("bob@x.example", b"\x01", None, 0)
    (message_id,) = db.add_messages([("bob@x.example", b"\x02" * 5000, 10**9)])
    db.close()
    with sqlite3.connect(path) as old:  # as version 4 left it
        old.execute("DROP TABLE failures")
        old.execute("PRAGMA user_version=4")
    old.close()
    db = Database(path)
    try:
        assert user_version(path) == SCHEMA_VERSION == 5
        db.read(lambda c: failures.record(c, "login", b"k" * 16, 10.0, 0.0, 5))
        assert db.read(lambda c: failures.count(c, "login", b"k" * 16, 0.0)) == 1
        assert db.message("bob@x.example", str(message_id)) == b"\x02" * 5000
    finally:
        db.close()
