"""The shared throttle's counts in SQLite: the ``failures`` table (throttle.py says why).

One row per (kind, keyed digest): how many failures in a row, and when the last
one was. A row older than the window counts as none; the next failure starts it
again at one. Each kind holds at most ``capacity`` rows: a new key pushes out the
stale rows first, then the ones whose last failure is the oldest. The order pass
deletes stale rows (:func:`sweep`) and rewrites the table in key order with the
other small tables (compaction.py), so neither a row's place nor its absence
tells when it was written. pg/failures.py is the PostgreSQL twin.

A failure's commit does not wait for ``fsync`` (``synchronous=NORMAL``, as the
order pass's steps): in WAL mode a crash can lose only whole recent transactions,
never corrupt the file, and a count a power cut loses is a few guesses, not data;
a failed login must not cost a disk flush, or failures would be a way to slow
every commit down.
"""

from __future__ import annotations

import sqlite3

TABLE = """CREATE TABLE IF NOT EXISTS failures (
    kind TEXT NOT NULL, key BLOB NOT NULL, count INTEGER NOT NULL,
    last_at REAL NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID"""


def count(db: sqlite3.Connection, kind: str, key: bytes, since: float) -> int:
    """Failures of ``key`` whose run has a failure after ``since``; 0 if none."""
    row = db.execute(
        "SELECT count FROM failures WHERE kind = ? AND key = ? AND last_at > ?",
        (kind, key, since),
    ).fetchone()
    return int(row[0]) if row else 0


def record(
    db: sqlite3.Connection, kind: str, key: bytes, now: float, since: float, capacity: int
) -> None:
    """Count one failure of ``key`` at ``now`` in its own short transaction."""
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        known = db.execute(
            "SELECT 1 FROM failures WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        db.execute(
            """INSERT INTO failures (kind, key, count, last_at) VALUES (?, ?, 1, ?)
               ON CONFLICT (kind, key) DO UPDATE SET
                   count = CASE WHEN last_at > ? THEN count + 1 ELSE 1 END,
                   last_at = excluded.last_at""",
            (kind, key, now, since),
        )
        if known is None:
            _bound(db, kind, since, capacity)
        db.execute("UPDATE layout SET value = 1 WHERE name = 'pending'")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.execute("PRAGMA synchronous=FULL")


def _bound(db: sqlite3.Connection, kind: str, since: float, capacity: int) -> None:
    """At most ``capacity`` rows of ``kind``: stale ones go first, then the oldest."""
    (rows,) = db.execute("SELECT COUNT(*) FROM failures WHERE kind = ?", (kind,)).fetchone()
    if rows <= capacity:
        return
    db.execute("DELETE FROM failures WHERE kind = ? AND last_at <= ?", (kind, since))
    (rows,) = db.execute("SELECT COUNT(*) FROM failures WHERE kind = ?", (kind,)).fetchone()
    if rows > capacity:
        db.execute(
            """DELETE FROM failures WHERE kind = ?1 AND key IN (SELECT key FROM failures
               WHERE kind = ?1 ORDER BY last_at LIMIT ?2)""",
            (kind, rows - capacity),
        )


def sweep(db: sqlite3.Connection, since: float) -> int:
    """Delete the rows whose last failure is at or before ``since``; how many."""
    return db.execute("DELETE FROM failures WHERE last_at <= ?", (since,)).rowcount
