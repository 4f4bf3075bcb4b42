"""The order pass after appends alone rewrites only the leaf pages that took a new row
(rewrite.py), and still leaves no new row where its arrival shows (issue 17).

What shows a row's arrival on its page: SQLite takes a new cell from the top of the
page's content area, so before a pass a new row is its page's topmost cell while its
key sits among the others. The oracle here reads the file's bytes, not the code's own
bookkeeping: which mailbox ids sit on which leaf page is found by searching the page.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import struct
from pathlib import Path

import pytest

from rune_proto.server import compaction, rewrite
from rune_proto.server.store import Database

MAILBOX_KEY = ("receiver", "id")
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
STORED = 3000
NEW = 30


def _fill(db: Database, count: int, rng: random.Random) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 50):
        batch = [(f"user{rng.randrange(200)}@x", os.urandom(300), 1 << 40) for _ in range(50)]
        ids += [str(i) for i in db.add_messages(batch[: count - start])]
    return ids


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Database]:
    """3,000 one-chunk messages in 200 mailboxes, their first (whole) pass done."""
    path = tmp_path / "rune.db"
    Database.create(path)
    db = Database(path)
    _fill(db, STORED, random.Random(7))
    assert db.order_pass().full  # the first pass of a process rewrites everything
    return path, db


def _leaves(path: Path) -> dict[int, bytes]:
    """The mailbox table's leaf pages, as they are in the file (WAL folded in)."""
    with sqlite3.connect(path) as db:
        (size,) = db.execute("PRAGMA page_size").fetchone()
        query = "SELECT pageno FROM dbstat WHERE name = 'mailbox' AND pagetype = 'leaf'"
        numbers = [n for (n,) in db.execute(query)]
    db.close()
    data = path.read_bytes()
    return {n: data[(n - 1) * size : n * size] for n in numbers}


def _tops(path: Path, ids: list[str]) -> int:
    """How many of ``ids`` are the topmost cell of their page (the newest there)."""
    found = 0
    for page in _leaves(path).values():
        (content,) = struct.unpack_from(">H", page, 5)
        top = page[content : content + 128]
        found += sum(1 for i in ids if i.encode() in top)
    return found


def test_a_pass_after_a_few_new_messages_rewrites_only_their_leaves(
    store: tuple[Path, Database],
) -> None:
    _, db = store
    try:
        new = _fill(db, 10, random.Random(8))
        progress = db.order_pass()
        assert progress.full is False
        # 10 new rows touch at most 10 mailbox leaves and 10 usage leaves (~60 rows
        # each); the whole pass used to write all 3,000 mailbox rows again.
        assert progress.rows_rewritten < STORED // 3, progress
        assert progress.chunks_placed == 10
        for message_id in new:
            assert any(message_id == i for i, _ in _listing(db))
    finally:
        db.close()


def _listing(db: Database) -> list[tuple[str, int]]:
    return [entry for n in range(200) for entry in db.list_messages(f"user{n}@x")]


def test_the_changed_ranges_cover_every_leaf_that_holds_a_new_row(
    store: tuple[Path, Database],
) -> None:
    """Every row on a page that took a new row lies in a range the pass rewrites: a
    page left out would keep its new row on top (an order leak in a changed range)."""
    path, db = store
    try:
        new = _fill(db, NEW, random.Random(9))
        db.erase()  # fold the WAL into the file, so its pages can be read
        with sqlite3.connect(path) as conn:
            receivers = dict(conn.execute("SELECT id, receiver FROM mailbox").fetchall())
            changed = {(receivers[i], i) for i in new}
            ranges = rewrite.changed_ranges(conn, "mailbox", MAILBOX_KEY, changed)
        conn.close()
        pages_with_new = 0
        for page in _leaves(path).values():
            on_page = {match.decode() for match in UUID.findall(page)}
            if not on_page & set(new):
                continue
            pages_with_new += 1
            for message_id in on_page:
                key = (receivers[message_id], message_id)
                assert any(low <= key <= high for low, high in ranges), (key, ranges)
        assert pages_with_new >= NEW // 3
    finally:
        db.close()


def test_after_the_pass_new_rows_no_longer_sit_on_top_of_their_pages(
    store: tuple[Path, Database],
) -> None:
    path, db = store
    try:
        new = _fill(db, NEW, random.Random(10))
        db.erase()
        before = _tops(path, new)
        assert db.order_pass().full is False
        after = _tops(path, new)
        print(f"new rows on top of their page: {before} of {NEW} before the pass, {after} after")
        assert before >= NEW // 2  # the control: the thief's reading works
        assert after <= NEW // 5  # a rewritten page puts a new row on top only by chance
    finally:
        db.close()


def test_a_change_other_than_new_messages_makes_the_pass_whole(
    store: tuple[Path, Database],
) -> None:
    path, db = store
    try:
        (some,) = db.add_messages([("user1@x", b"x" * 300, 1 << 40)])
        assert isinstance(some, str) and db.delete_message("user1@x", some)
        assert db.order_pass().full
        reopened = Database(path)  # a new process cannot name what changed before it
        _fill(reopened, 5, random.Random(11))
        assert reopened.order_pass().full
        _fill(reopened, 5, random.Random(12))
        assert reopened.order_pass().full is False
        reopened.close()
    finally:
        db.close()


def test_the_pending_row_says_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "rune.db"
    Database.create(path)
    db = Database(path)
    try:
        db.add_messages([("a@x", b"x", 1 << 40)])
        with sqlite3.connect(path) as conn:
            (value,) = conn.execute("SELECT value FROM layout WHERE name = 'pending'").fetchone()
        conn.close()
        assert value == compaction.APPENDS and db.order_pending()
        db.order_pass()
        assert not db.order_pending()
    finally:
        db.close()
