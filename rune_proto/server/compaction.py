"""The order pass: what a copy of the database shows about time is erased here.

Between two passes the file does show some order: new chunks sit at the end of the
slot array, and SQLite places a new small row (a mailbox row, a ``usage`` update, an
account) below the rows already on its page, so a page's layout tells which of its
rows changed last; the WAL holds recent commits in the order they were made. The
pass, which the store starts at most ``order_window`` seconds after a change (and
when it opens or closes), undoes all of that:

1. the slot array's holes are filled and every chunk appended since the last pass
   gets a uniformly random slot (slots.py);
2. the small tables are written again in key order, a range of keys at a time: all
   of them after any change, or after new messages alone (``pending`` is
   ``APPENDS``) only the ``mailbox`` and ``usage`` leaf pages that hold one of their
   rows, named from the chunks step 1 placed (rewrite.py), and the other tables
   (which grow with accounts, not messages) whole;
3. the store then checkpoints and reopens its connection, so SQLite folds the WAL
   into the file and deletes it and its index (store.py).

The pass is cut into steps of bounded work (``STEP_SWAPS`` chunk moves, or
``STEP_ROWS`` rows), each its own transaction on the store thread, so the commits
queued meanwhile run between two steps: a long pass never holds a ``202`` back for
more than one step. Progress is kept in the ``layout`` table, so a pass cut short
by a crash goes on from there (rewriting every table whole: the process that
resumes it cannot name the rows added before). Its cost — one swap (two page writes)
per new chunk, and the rewrite — is measured in docs/performance.md.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from . import rewrite, slots

STEP_SWAPS = 256  # chunk moves in one step (~30 µs each)
STEP_ROWS = rewrite.STEP_ROWS  # small-table rows rewritten in one step

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


# Tables whose changed rows the pass can name after appends alone (the new messages'
# rows, their receivers' usage): then only the leaf pages holding those are rewritten
# (rewrite.py). The others are written whole by every pass, as before: ``accounts``
# too, although appends leave it alone, as the thief's audit found the overflow pages
# of accounts written again once only a little less random (p down to 0.001 in two
# of six runs, against 0.04 at worst when every pass rewrote them).
BY_CHANGE = frozenset({"mailbox", "usage"})

# The values of the ``pending`` layout row.
NOTHING, ANYTHING, APPENDS = 0, 1, 2


@dataclass
class Progress:
    """Where a pass is: shuffling (``table`` is None), then rewriting each table."""

    table: int | None = None
    after: tuple[object, ...] | None = None  # the last key rewritten in that table
    chunks_placed: int = 0
    rows_rewritten: int = 0
    steps: int = 0
    # Whether every table is rewritten whole; None until the first step reads
    # ``pending`` (the store sets it True for a pass whose changes it cannot name).
    full: bool | None = None
    added: set[slots.Owner] = field(default_factory=set)  # mailbox rows placed this pass
    ranges: list[rewrite.KeyRange] | None = None  # key ranges left in this table

    @property
    def done(self) -> bool:
        return self.table is not None and self.table >= len(REWRITTEN)


def pending(db: sqlite3.Connection) -> bool:
    """Whether anything changed since the last pass."""
    row = db.execute("SELECT value FROM layout WHERE name = 'pending'").fetchone()
    return bool(row and row[0])


def mark_pending(db: sqlite3.Connection) -> None:
    """Called inside every transaction that changes what the pass must hide."""
    db.execute(f"UPDATE layout SET value = {ANYTHING} WHERE name = 'pending'")


def mark_appended(db: sqlite3.Connection) -> None:
    """Called instead when a transaction only added messages (and limit counts): the
    pass finds their rows from the chunks it places, so it need not rewrite all."""
    db.execute(f"UPDATE layout SET value = {APPENDS} WHERE name = 'pending' AND value = {NOTHING}")


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
        if progress.full is None:
            (value,) = db.execute("SELECT value FROM layout WHERE name = 'pending'").fetchone()
            progress.full = value == ANYTHING
        if progress.table is None:
            placed, finished = slots.shuffle_step(db, STEP_SWAPS, randbelow, progress.added)
            progress.chunks_placed += placed
            if finished:
                progress.table, progress.after = 0, None
        else:
            _rewrite_step(db, progress)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite already rolled back after a full disk
            db.execute("ROLLBACK")
        raise
    finally:
        db.execute("PRAGMA synchronous=FULL")
    progress.steps += 1


def _rewrite_step(db: sqlite3.Connection, progress: Progress) -> None:
    """Up to ``STEP_ROWS`` rows of the current table written again (or its changed
    leaves only, after appends alone); moves on to the next table when it is done."""
    assert progress.table is not None
    table, key = REWRITTEN[progress.table]
    if progress.full or table not in BY_CHANGE:
        last, count = rewrite.rows(db, table, key, progress.after)
        progress.rows_rewritten += count
        progress.after = last
        if last is None:
            progress.table += 1
        return
    if progress.ranges is None:
        changed = progress.added if table == "mailbox" else {(r,) for r, _ in progress.added}
        progress.ranges = rewrite.changed_ranges(db, table, key, changed)
    if progress.ranges:
        low, high = progress.ranges[0]
        last, count = rewrite.rows(db, table, key, progress.after, low, high)
        progress.rows_rewritten += count
        progress.after = last
        if last is None:
            progress.ranges.pop(0)
    if not progress.ranges:
        progress.table, progress.after, progress.ranges = progress.table + 1, None, None


def finish(db: sqlite3.Connection) -> None:
    """Record that the pass covered everything committed before it ended."""
    db.execute(f"UPDATE layout SET value = {NOTHING} WHERE name = 'pending'")
