"""The shared throttle's counts in PostgreSQL: ../failures.py's twin (why: ../throttle.py).

Every node reads and writes the same ``failures`` rows, so N nodes give an attacker
no more guesses than one, and a restart forgets nothing. The count goes up in one
``INSERT … ON CONFLICT DO UPDATE``: PostgreSQL locks the row, so failures counted on
several nodes at once all count. A failure's commit does not wait for the WAL
flush (``SET LOCAL synchronous_commit = off``): a crash of PostgreSQL can lose the
last few counts, never corrupt anything, and a failed login must not cost a disk
flush (or failures would slow every node's commits down). Messages keep
``synchronous_commit=on``: the setting is local to this transaction.

One statement counts the failure and marks the order pass due; it touches the
``pending`` row only when no pass is due yet (``value = 0``), so failures on many
nodes do not queue behind each other's and the message commits' lock on that row.
The order pass (ordering.py) calls :func:`sweep` to delete rows whose last failure
is older than the window.
"""

from __future__ import annotations

from .chunks import Connection


async def count(conn: Connection, kind: str, key: bytes, since: float) -> int:
    """Failures of ``key`` whose run has a failure after ``since``; 0 if none."""
    found = await conn.fetchval(
        "SELECT count FROM failures WHERE kind = $1 AND key = $2 AND last_at > $3",
        kind,
        key,
        since,
    )
    return 0 if found is None else int(found)


async def record(
    conn: Connection, kind: str, key: bytes, now: float, since: float, capacity: int
) -> None:
    """Count one failure at ``now``, in the caller's transaction."""
    await conn.execute("SET LOCAL synchronous_commit = off")
    inserted = await conn.fetchval(
        """WITH counted AS (
               INSERT INTO failures AS f (kind, key, count, last_at) VALUES ($1, $2, 1, $3)
               ON CONFLICT (kind, key) DO UPDATE SET
                   count = CASE WHEN f.last_at > $4 THEN f.count + 1 ELSE 1 END,
                   last_at = EXCLUDED.last_at
               RETURNING xmax = 0 AS inserted),
           due AS (UPDATE layout SET value = 1 WHERE name = 'pending' AND value = 0)
           SELECT inserted FROM counted""",
        kind,
        key,
        now,
        since,
    )
    if inserted:
        await _bound(conn, kind, since, capacity)


async def _bound(conn: Connection, kind: str, since: float, capacity: int) -> None:
    """At most ``capacity`` rows of ``kind``: stale ones go first, then the oldest."""
    rows = int(await conn.fetchval("SELECT COUNT(*) FROM failures WHERE kind = $1", kind))
    if rows <= capacity:
        return
    await conn.execute("DELETE FROM failures WHERE kind = $1 AND last_at <= $2", kind, since)
    rows = int(await conn.fetchval("SELECT COUNT(*) FROM failures WHERE kind = $1", kind))
    if rows > capacity:
        await conn.execute(
            """DELETE FROM failures WHERE kind = $1 AND key IN (SELECT key FROM failures
               WHERE kind = $1 ORDER BY last_at LIMIT $2)""",
            kind,
            rows - capacity,
        )


async def sweep(conn: Connection, since: float) -> int:
    """Delete the rows whose last failure is at or before ``since``; how many."""
    status = await conn.execute("DELETE FROM failures WHERE last_at <= $1", since)
    return int(status.rsplit(" ", 1)[-1])
