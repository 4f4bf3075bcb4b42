"""The order pass: what a copy of the database shows about time is erased here.

Between two passes the file does show some order: new chunks sit at the end of the
slot array, and SQLite places a new small row (a mailbox row, a ``usage`` update, an
account) below the rows already on its page, so a page's layout tells which of its
rows changed last; the WAL holds recent commits in the order they were made. The
pass, run on the store thread at most ``order_window`` seconds after a change (and
when the store opens or closes), undoes all of that:

1. the slot array's holes are filled and every chunk appended since the last pass
   gets a uniformly random slot (slots.py);
2. the small tables are written again in key order (``usage`` is summed afresh from
   the mailbox rows at the same time, so no count can drift);
3. the store then checkpoints and reopens its connection, so SQLite folds the WAL
   into the file and deletes it and its index (store.py).

Its cost is paid off the commit path: one swap a new chunk (two page writes), and a
rewrite of the small tables — measured in docs/performance.md.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass

from . import slots

# Small tables and the key each is written back in. ``usage`` is recomputed instead.
REWRITTEN = (("accounts", "address"), ("mailbox", "receiver, id"), ("invitations", "token_hash"))


@dataclass(frozen=True)
class PassReport:
    """What one pass did, for the log (counts only: nothing about any one user)."""

    chunks_placed: int
    rows_rewritten: int
    seconds: float


def pending(db: sqlite3.Connection) -> bool:
    """Whether anything changed since the last pass."""
    row = db.execute("SELECT value FROM layout WHERE name = 'pending'").fetchone()
    return bool(row and row[0])


def mark_pending(db: sqlite3.Connection) -> None:
    """Called inside every transaction that changes what the pass must hide."""
    db.execute("UPDATE layout SET value = 1 WHERE name = 'pending'")


def run(db: sqlite3.Connection, randbelow: slots.Randbelow = secrets.randbelow) -> PassReport:
    """One pass, in one transaction of the caller's connection (autocommit mode)."""
    started = time.perf_counter()
    db.execute("PRAGMA temp_store=MEMORY")  # the copies below never touch the disk
    db.execute("BEGIN IMMEDIATE")
    try:
        (shuffled,) = db.execute("SELECT value FROM layout WHERE name = 'shuffled'").fetchone()
        top = slots.shuffle(db, int(shuffled), randbelow)
        placed = max(0, top - int(shuffled))
        rows = sum(_rewrite(db, table, key) for table, key in REWRITTEN)
        db.execute("DELETE FROM usage")
        db.execute(
            """INSERT INTO usage SELECT receiver, SUM(size), COUNT(*) FROM mailbox
               GROUP BY receiver ORDER BY receiver"""
        )
        db.execute("UPDATE layout SET value = ? WHERE name = 'shuffled'", (top,))
        db.execute("UPDATE layout SET value = 0 WHERE name = 'pending'")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return PassReport(placed, rows, time.perf_counter() - started)


def _rewrite(db: sqlite3.Connection, table: str, key: str) -> int:
    """Write ``table`` again in key order; its row count.

    ``DELETE`` frees every page (``secure_delete`` zeroes them) and the rows go back
    in key order, so where a row sits follows its key, never when it was written.
    """
    db.execute(f"CREATE TEMP TABLE rewrite AS SELECT * FROM {table}")
    db.execute(f"DELETE FROM {table}")
    db.execute(f"INSERT INTO {table} SELECT * FROM temp.rewrite ORDER BY {key}")
    (count,) = db.execute("SELECT COUNT(*) FROM temp.rewrite").fetchone()
    db.execute("DROP TABLE temp.rewrite")
    return int(count)
