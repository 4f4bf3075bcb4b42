"""The order pass: what a copy of the database shows about time is erased here.

Between two passes the file does show some order: new chunks sit at the end of the
slot array, and SQLite places a new small row (a mailbox row, a ``usage`` update, an
account) below the rows already on its page, so a page's layout tells which of its
rows changed last; the WAL holds recent commits in the order they were made. The
pass, which the store starts at most ``order_window`` seconds after a change (and
when it opens or closes), undoes all of that:

1. the slot array's holes are filled and every chunk appended since the last pass
   gets a uniformly random slot (slots.py);
2. the small tables are written again in key order, a range of keys at a time;
3. the store then checkpoints and reopens its connection, so SQLite folds the WAL
   into the file and deletes it and its index (store.py).

The pass is cut into steps of bounded work (``STEP_SWAPS`` chunk moves, or
``STEP_ROWS`` rows), each its own transaction on the store thread, so the commits
queued meanwhile run between two steps: a long pass never holds a ``202`` back for
more than one step. Progress is kept in the ``layout`` table, so a pass cut short
by a crash goes on from there. Its cost — one swap (two page writes) per new chunk,
and a rewrite of the small tables — is measured in docs/performance.md.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from . import slots

STEP_SWAPS = 256  # chunk moves in one step (~30 µs each)
STEP_ROWS = 4000  # small-table rows rewritten in one step (~3 µs each)

# Small tables, and the key each is written back in.
REWRITTEN = (
    ("accounts", ("address",)),
    ("mailbox", ("receiver", "id")),
    ("usage", ("receiver",)),
    ("invitations", ("token_hash",)),
    ("holds", ("address",)),
    ("limits", ("key",)),
    ("failures", ("kind", "key")),
)


@dataclass
class Progress:
    """Where a pass is: shuffling (``table`` is None), then rewriting each table."""

    table: int | None = None
    after: tuple[object, ...] | None = None  # the last key rewritten in that table
    chunks_placed: int = 0
    rows_rewritten: int = 0
    steps: int = 0

    @property
    def done(self) -> bool:
        return self.table is not None and self.table >= len(REWRITTEN)


def pending(db: sqlite3.Connection) -> bool:
    """Whether anything changed since the last pass."""
    row = db.execute("SELECT value FROM layout WHERE name = 'pending'").fetchone()
    return bool(row and row[0])


def mark_pending(db: sqlite3.Connection) -> None:
    """Called inside every transaction that changes what the pass must hide."""
    db.execute("UPDATE layout SET value = 1 WHERE name = 'pending'")


def step(db: sqlite3.Connection, progress: Progress, randbelow: slots.Randbelow) -> None:
    """One bounded step of the pass, in its own transaction; advances ``progress``.

    The step's commit does not wait for ``fsync`` (``synchronous=NORMAL``): in WAL
    mode a crash can lose it only whole, which leaves the data as the step found it,
    and the next message's commit (``FULL``) makes it durable with its own.
    """
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        if progress.table is None:
            placed, finished = slots.shuffle_step(db, STEP_SWAPS, randbelow)
            progress.chunks_placed += placed
            if finished:
                progress.table, progress.after = 0, None
        else:
            table, key = REWRITTEN[progress.table]
            last, count = _rewrite(db, table, key, progress.after)
            progress.rows_rewritten += count
            if last is None:
                progress.table, progress.after = progress.table + 1, None
            else:
                progress.after = last
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite already rolled back after a full disk
            db.execute("ROLLBACK")
        raise
    finally:
        db.execute("PRAGMA synchronous=FULL")
    progress.steps += 1


def finish(db: sqlite3.Connection) -> None:
    """Record that the pass covered everything committed before it ended."""
    db.execute("UPDATE layout SET value = 0 WHERE name = 'pending'")


def _rewrite(
    db: sqlite3.Connection, table: str, key: tuple[str, ...], after: tuple[object, ...] | None
) -> tuple[tuple[object, ...] | None, int]:
    """Write the next ``STEP_ROWS`` rows of ``table`` after ``after`` again, in key
    order; the last key written (None when there were none left) and the count.

    Deleting frees their cells (``secure_delete`` zeroes them) and the rows go back
    in key order, so where a row sits follows its key, never when it was written.
    """
    columns = ", ".join(key)
    since = f"WHERE ({columns}) > ({', '.join('?' * len(key))})" if after else ""
    rows = db.execute(
        f"SELECT * FROM {table} {since} ORDER BY {columns} LIMIT {STEP_ROWS}", after or ()
    ).fetchall()
    if not rows:
        return None, 0
    names = [d[1] for d in db.execute(f"PRAGMA table_info({table})")]
    last = tuple(rows[-1][names.index(column)] for column in key)
    marks = ", ".join("?" * len(key))
    upto = f"({columns}) <= ({marks})"
    db.execute(
        f"DELETE FROM {table} {since} {'AND' if after else 'WHERE'} {upto}", (*(after or ()), *last)
    )
    db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})", rows)
    return last, len(rows)
