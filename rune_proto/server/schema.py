"""The store's SQLite schema, and the upgrade of an older database on open.

Why messages live in two tables. A WITHOUT ROWID table is a b-tree of whole records,
and SQLite compares a key with a record by loading the record *in full*, overflow
pages and all. When the blob was part of the messages row (schema version 1), every
lookup read the whole blob of each row it was compared with: a ``RETRIEVE`` of an id
in someone else's mailbox ended on that message's row and read all of it, while a
random id met only whatever rows lay nearby (90 µs against 19 µs in-process, for a
300 KB message among small ones). The time told a logged-in user whether another user still held a
message (docs/security.md, "Timing and replay").

Now the row searched holds only short keys (``mailbox``, keyed by receiver, then id),
so a lookup compares ids and never a blob, and since the receiver comes first,
another user's id and a random id miss in the same place, at the same cost. Blobs
sit in a rowid table (``blobs``) under random keys: a rowid b-tree keeps payloads in
its leaves only and is searched by integer, and random keys record no arrival order.
The view ``messages`` shows the old shape (``id, receiver, blob``) for operators and
for tools that read or clear a mailbox directly.
"""

from __future__ import annotations

import functools
import secrets
import sqlite3

SCHEMA_VERSION = 2

_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS accounts (address TEXT PRIMARY KEY, public_key BLOB NOT NULL)",
    # Keys only, no blob: see the module docstring. WITHOUT ROWID: no hidden rowid
    # records the order in which messages arrived.
    """CREATE TABLE IF NOT EXISTS mailbox (
        receiver TEXT NOT NULL, id TEXT NOT NULL, size INTEGER NOT NULL,
        blob_key INTEGER NOT NULL, PRIMARY KEY (receiver, id)) WITHOUT ROWID""",
    # Blobs under random keys (blob_key above), searched by integer only.
    "CREATE TABLE IF NOT EXISTS blobs (key INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS invitations (
        token_hash BLOB PRIMARY KEY, address TEXT NOT NULL, expires_at INTEGER NOT NULL)""",
    """CREATE VIEW IF NOT EXISTS messages (id, receiver, blob) AS
        SELECT mailbox.id, mailbox.receiver, blobs.data FROM mailbox
        JOIN blobs ON blobs.key = mailbox.blob_key""",
    """CREATE TRIGGER IF NOT EXISTS messages_delete INSTEAD OF DELETE ON messages BEGIN
        DELETE FROM blobs WHERE key =
            (SELECT blob_key FROM mailbox WHERE receiver = OLD.receiver AND id = OLD.id);
        DELETE FROM mailbox WHERE receiver = OLD.receiver AND id = OLD.id;
    END""",
)


# One table row read whether or not the address has an account (see Database.public_key).
ACCOUNT_QUERY = """
SELECT address = ?1, public_key FROM accounts WHERE rowid = COALESCE(
    (SELECT rowid FROM accounts WHERE address = ?1), (SELECT MAX(rowid) FROM accounts))
"""


class SchemaError(Exception):
    """The database has a schema this code cannot use or upgrade."""


def new_blob_key() -> int:
    """A random positive 63-bit key: collisions are negligible, order tells nothing."""
    return secrets.randbits(63) or 1


def create(db: sqlite3.Connection) -> None:
    """Create a new database's tables (in autocommit mode: each statement commits)."""
    _create_tables(db)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _create_tables(db: sqlite3.Connection) -> None:
    for statement in _STATEMENTS:
        db.execute(statement)


def upgrade(db: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION; a no-op when it is there already.

    One transaction (SQLite's DDL is transactional): a crash part-way leaves the old
    version whole, and the next open does the upgrade again from the start.
    """
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    if version != 1:
        raise SchemaError(f"database schema version {version}, expected {SCHEMA_VERSION}")
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version == 1:  # another process may have upgraded it meanwhile
            _from_version_1(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _from_version_1(db: sqlite3.Connection) -> None:
    """Move every blob into ``blobs``, one row at a time (no blob is held in memory)."""
    db.execute("ALTER TABLE messages RENAME TO messages_v1")
    db.execute("DROP INDEX IF EXISTS messages_by_receiver")
    _create_tables(db)
    rows = db.execute("SELECT id, receiver, LENGTH(blob) FROM messages_v1").fetchall()
    for message_id, receiver, size in rows:
        key = new_blob_key()
        db.execute(
            "INSERT INTO blobs (key, data) SELECT ?, blob FROM messages_v1 WHERE id = ?",
            (key, message_id),
        )
        db.execute(
            "INSERT INTO mailbox (receiver, id, size, blob_key) VALUES (?, ?, ?, ?)",
            (receiver, message_id, size, key),
        )
    db.execute("DROP TABLE messages_v1")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


@functools.lru_cache(maxsize=256)
def insert_rows(table: str, columns: int, count: int) -> str:
    """One INSERT of ``count`` rows into ``table`` (store.py batches them, see INSERT_ROWS)."""
    row = "(" + ", ".join(["?"] * columns) + ")"
    return f"INSERT INTO {table} VALUES " + ",".join([row] * count)
