"""The store's SQLite schema, and the upgrade of an older database on open.

What a copy of the file must not show (docs/server.md, "What a copy of the data
directory reveals"): the order in which messages arrived or accounts registered.
Nothing here counts up with time: no table has a rowid that grows with arrivals
(``accounts``, ``mailbox``, ``usage``, ``invitations``, ``holds`` and ``layout`` are
WITHOUT ROWID, keyed by address, random id or token hash), blobs sit in the slot array of
slots.py, and the order pass (compaction.py) shuffles the slots appended since its
last run and rewrites the small tables in key order at most ``order_window``
seconds after a change.

Why the searched rows hold keys only. A WITHOUT ROWID table is a b-tree of whole
records, and SQLite compares a key with a record by loading the record *in full*:
when the blob was part of the searched row (schema version 1), a ``RETRIEVE`` of an
id in someone else's mailbox read that whole message while a random id did not,
and the time told them apart (docs/security.md, "Timing and replay"). ``mailbox``
holds the receiver, the id, the size and the list of the blob's slots (a few bytes
a chunk), so a lookup compares ids only and LIST walks small rows (its cost per
message does not grow with the store). ``usage`` keeps each mailbox's bytes, so the
quota check reads one row instead of summing the mailbox inside a commit.

The view ``messages`` shows the old shape (``id, receiver, blob``) for operators
and tools that read or clear a mailbox directly; deleting from it keeps ``usage``
right and leaves holes for the next pass.
"""

from __future__ import annotations

import functools
import sqlite3

from . import failures, slots

SCHEMA_VERSION = 5

LIMITS_TABLE = """CREATE TABLE IF NOT EXISTS limits (
    key BLOB PRIMARY KEY, ends INTEGER NOT NULL, count INTEGER NOT NULL) WITHOUT ROWID"""

_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS accounts (
        address TEXT PRIMARY KEY, public_key BLOB NOT NULL) WITHOUT ROWID""",
    # Keys and the blob's slots only: see the module docstring.
    # epoch: one bit, the parity of the max-age bucket it arrived in (expiry.py).
    """CREATE TABLE IF NOT EXISTS mailbox (
        receiver TEXT NOT NULL, id TEXT NOT NULL, size INTEGER NOT NULL,
        slots BLOB NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (receiver, id)) WITHOUT ROWID""",
    # One page-sized chunk a row, dense slot numbers (slots.py). The owner columns let
    # a move update the owner's slot list.
    """CREATE TABLE IF NOT EXISTS chunks (
        slot INTEGER PRIMARY KEY, receiver TEXT NOT NULL, id TEXT NOT NULL,
        seq INTEGER NOT NULL, data BLOB NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS holes (slot INTEGER PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS usage (
        receiver TEXT PRIMARY KEY, bytes INTEGER NOT NULL, count INTEGER NOT NULL)
        WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS invitations (
        token_hash BLOB PRIMARY KEY, address TEXT NOT NULL, expires_at INTEGER NOT NULL)
        WITHOUT ROWID""",
    # Addresses an operator blocked or deleted (admin.py): no time, no reason, no order.
    """CREATE TABLE IF NOT EXISTS holds (
        address TEXT PRIMARY KEY, kind TEXT NOT NULL) WITHOUT ROWID""",
    # chunk_bytes (fixed at creation), shuffled (slots below it are in random order),
    # pending (1 when something changed since the last order pass, 2 when only new
    # messages came: compaction.py), holds (a random number drawn again at each block
    # or delete: running servers poll it, admin.py).
    """CREATE TABLE IF NOT EXISTS layout (
        name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID""",
    # Abuse-limit counters (limits.py): keyed digests, the end of their window, a count.
    LIMITS_TABLE,
    # The failed LOGIN/REGISTER throttle (throttle.py, failures.py): keyed digests too.
    failures.TABLE,
    # Reassembles a blob from its chunks by scanning them: for operators, not the server.
    """CREATE VIEW IF NOT EXISTS messages (id, receiver, blob) AS
        SELECT m.id, m.receiver, substr(CAST((SELECT group_concat(data, '') FROM
            (SELECT data FROM chunks AS c WHERE c.receiver = m.receiver AND c.id = m.id
             ORDER BY c.seq)) AS BLOB), 1, m.size)
        FROM mailbox AS m""",
    """CREATE TRIGGER IF NOT EXISTS messages_delete INSTEAD OF DELETE ON messages BEGIN
        INSERT OR IGNORE INTO holes (slot) SELECT slot FROM chunks
            WHERE receiver = OLD.receiver AND id = OLD.id;
        DELETE FROM chunks WHERE receiver = OLD.receiver AND id = OLD.id;
        UPDATE usage SET bytes = bytes - (SELECT size FROM mailbox
                WHERE receiver = OLD.receiver AND id = OLD.id), count = count - 1
            WHERE receiver = OLD.receiver
            AND EXISTS (SELECT 1 FROM mailbox WHERE receiver = OLD.receiver AND id = OLD.id);
        DELETE FROM mailbox WHERE receiver = OLD.receiver AND id = OLD.id;
        UPDATE layout SET value = 1 WHERE name = 'pending';
    END""",
)

# One table row read whether or not the address has an account (see Database.public_key):
# the account's own, or for an unknown address the next one in key order (the last one
# for an address that sorts after all of them).
ACCOUNT_QUERY = """
SELECT address = ?1, public_key FROM accounts WHERE address = COALESCE(
    (SELECT MIN(address) FROM accounts WHERE address >= ?1), (SELECT MAX(address) FROM accounts))
"""


class SchemaError(Exception):
    """The database has a schema this code cannot use or upgrade."""


def create(db: sqlite3.Connection) -> None:
    """Create a new database's tables (in autocommit mode: each statement commits)."""
    _create_tables(db)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _create_tables(db: sqlite3.Connection) -> None:
    for statement in _STATEMENTS:
        db.execute(statement)
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.executemany(
        "INSERT OR IGNORE INTO layout (name, value) VALUES (?, ?)",
        [
            ("chunk_bytes", slots.chunk_bytes(page_size)),
            ("shuffled", 0),
            ("pending", 0),
            ("holds", 0),
            ("epoch", 0),
        ],
    )


def upgrade(db: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION; a no-op when it is there already.

    One transaction (SQLite's DDL is transactional): a crash part-way leaves the old
    version whole, and the next open does the upgrade again from the start.
    """
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"database schema version {version} is newer than this rune-server"
            f" ({SCHEMA_VERSION}): run the newer version, or restore a backup made for this one"
        )
    if version not in (1, 2, 3, 4):
        raise SchemaError(f"database schema version {version}, expected {SCHEMA_VERSION}")
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version in (1, 2):  # another process may have upgraded it meanwhile
            _upgrade(db, version)
        elif version == 3:  # 3 -> 4: the holds and limits tables, the expiry bit
            _upgrade_3(db)
        elif version == 4:  # 4 -> 5: the failures table (the shared throttle)
            _create_tables(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _upgrade_3(db: sqlite3.Connection) -> None:
    _create_tables(db)  # holds, limits and their layout rows
    columns = [row[1] for row in db.execute("PRAGMA table_info(mailbox)")]
    if "epoch" not in columns:
        db.execute("ALTER TABLE mailbox ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")
    db.execute("INSERT OR IGNORE INTO layout (name, value) VALUES ('epoch', 0)")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _upgrade(db: sqlite3.Connection, version: int) -> None:
    """Copy everything into the version-3 tables, one blob in memory at a time.

    The chunks land in arrival order; ``pending`` makes the store run the order pass
    as soon as it opens, which shuffles all of them (``shuffled`` is 0).
    """
    if version == 2:
        db.execute("DROP TRIGGER IF EXISTS messages_delete")
        db.execute("DROP VIEW IF EXISTS messages")
    renames = {"accounts": "accounts_old", "invitations": "invitations_old"}
    renames.update({"mailbox": "mailbox_v2"} if version == 2 else {"messages": "messages_v1"})
    for old, new in renames.items():
        db.execute(f"ALTER TABLE {old} RENAME TO {new}")
    db.execute("DROP INDEX IF EXISTS messages_by_receiver")
    _create_tables(db)
    db.execute("INSERT INTO accounts SELECT address, public_key FROM accounts_old ORDER BY address")
    db.execute("INSERT INTO invitations SELECT * FROM invitations_old ORDER BY token_hash")
    if version == 1:
        ids = "SELECT receiver, id FROM messages_v1 ORDER BY receiver, id"
        one = "SELECT blob FROM messages_v1 WHERE receiver = ? AND id = ?"
    else:
        ids = "SELECT receiver, id FROM mailbox_v2 ORDER BY receiver, id"
        one = (
            "SELECT data FROM mailbox_v2 JOIN blobs ON key = blob_key WHERE receiver = ? AND id = ?"
        )
    (chunk_bytes,) = db.execute("SELECT value FROM layout WHERE name = 'chunk_bytes'").fetchone()
    top = 0
    for receiver, message_id in db.execute(ids).fetchall():
        (blob,) = db.execute(one, (receiver, message_id)).fetchone()
        pieces = slots.chunks_of(bytes(blob), chunk_bytes)
        placed = slots.append(db, top, receiver, message_id, pieces)
        top += len(pieces)
        db.execute(
            "INSERT INTO mailbox (receiver, id, size, slots) VALUES (?, ?, ?, ?)",
            (receiver, message_id, len(blob), slots.encode(placed)),
        )
    db.execute(
        "INSERT INTO usage SELECT receiver, SUM(size), COUNT(*) FROM mailbox GROUP BY receiver"
    )
    for table in (*renames.values(), "blobs"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute("UPDATE layout SET value = 1 WHERE name = 'pending'")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


@functools.lru_cache(maxsize=256)
def insert_rows(table: str, columns: int, count: int) -> str:
    """One INSERT of ``count`` rows into ``table`` (store.py batches them, see INSERT_ROWS)."""
    row = "(" + ", ".join(["?"] * columns) + ")"
    return f"INSERT INTO {table} VALUES " + ",".join([row] * count)
