"""admin.py on a real SQLite file: erasing in batches, holds through the order pass."""

from __future__ import annotations

import os
from pathlib import Path

from rune_proto.server import admin
from rune_proto.server.store import Database

BOB, CAROL = "bob@x.example", "carol@x.example"


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
