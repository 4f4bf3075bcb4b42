"""An optional maximum age for stored messages, without storing when any arrived.

Time is cut into buckets of ``max_age_days``. A message is tagged with one bit, the
parity of the bucket it arrived in (``mailbox.epoch``); the ``layout`` row ``epoch``
holds the current bucket's number. When a new bucket begins, the messages tagged
with its parity — those from the bucket before the last — are deleted. So a message
lives between ``max_age_days`` and twice that, and a copy of the database shows of
each message only whether it came in the current bucket or the one before: one bit,
never a day or an order (docs/server.md, "Operating").

Off (``max_age_days = 0``), every tag is 0 and ``layout.epoch`` stays 0; the first
sweep after it is turned on only starts counting (it tags everything with the
current bucket), so turning it on never deletes mail that is younger than the limit.
"""

from __future__ import annotations

import sqlite3

from . import compaction, slots

BATCH = 500  # messages deleted in one transaction
DOOMED = 2  # the tag of a message marked for deletion by the sweep under way


def current_bucket(db: sqlite3.Connection) -> int:
    """The current bucket's number; 0 while expiry is off."""
    row = db.execute("SELECT value FROM layout WHERE name = 'epoch'").fetchone()
    return int(row[0]) if row else 0


def current(db: sqlite3.Connection) -> int:
    """The tag for a message stored now: the parity of the current bucket."""
    return current_bucket(db) % 2


def sweep_step(db: sqlite3.Connection, now: float, bucket_seconds: float) -> tuple[int, bool]:
    """One transaction's worth: (messages deleted, whether the sweep is finished).

    The caller runs it inside ``BEGIN IMMEDIATE`` … ``COMMIT`` until it is finished.
    A new bucket first marks the doomed messages (tag ``DOOMED``) and moves the
    current bucket on, in one transaction, so messages stored while the deletion
    goes on (tagged with the new bucket) are never among them.
    """
    rows = db.execute(
        f"SELECT receiver, id, size, slots FROM mailbox WHERE epoch = {DOOMED} LIMIT {BATCH}"
    ).fetchall()
    if rows:
        for receiver, message_id, size, placed in rows:
            db.execute("DELETE FROM mailbox WHERE receiver = ? AND id = ?", (receiver, message_id))
            slots.remove(db, slots.decode(placed))
            db.execute(
                "UPDATE usage SET bytes = bytes - ?, count = count - 1 WHERE receiver = ?",
                (size, receiver),
            )
        compaction.mark_pending(db)
        return len(rows), False
    bucket = int(now // bucket_seconds)
    (epoch,) = db.execute("SELECT value FROM layout WHERE name = 'epoch'").fetchone()
    if bucket <= epoch:
        return 0, True
    if epoch == 0:  # never swept (or just turned on): start counting from now
        db.execute("UPDATE mailbox SET epoch = ?", (bucket % 2,))
        _set(db, bucket)
        return 0, True
    if bucket >= epoch + 2:  # both buckets ended: everything is past the age
        db.execute(f"UPDATE mailbox SET epoch = {DOOMED} WHERE epoch < {DOOMED}")
    else:  # the bucket before the last: the new bucket's parity
        db.execute(f"UPDATE mailbox SET epoch = {DOOMED} WHERE epoch = ?", (bucket % 2,))
    _set(db, bucket)
    return 0, False


def reset(db: sqlite3.Connection) -> None:
    """Expiry is off: forget the bucket, so turning it on later starts afresh."""
    _set(db, 0)


def _set(db: sqlite3.Connection, bucket: int) -> None:
    db.execute("INSERT OR REPLACE INTO layout (name, value) VALUES ('epoch', ?)", (bucket,))
