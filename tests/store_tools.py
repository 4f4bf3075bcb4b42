"""Writing a message straight into a server's database, as a server that kept a
copy would put it back (tests of replay detection)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rune_proto.server import slots


def put_back(database: Path, receiver: str, message_id: str, blob: bytes) -> None:
    """Store ``blob`` under ``message_id`` in ``receiver``'s mailbox (schema 3)."""
    with sqlite3.connect(database) as db:
        (chunk,) = db.execute("SELECT value FROM layout WHERE name = 'chunk_bytes'").fetchone()
        placed = slots.append(db, slots.end(db), receiver, message_id, slots.chunks_of(blob, chunk))
        db.execute(
            "INSERT INTO mailbox (receiver, id, size, slots) VALUES (?, ?, ?, ?)",
            (receiver, message_id, len(blob), slots.encode(placed)),
        )
        db.execute(
            """INSERT INTO usage (receiver, bytes, count) VALUES (?, ?, 1)
               ON CONFLICT (receiver) DO UPDATE SET bytes = bytes + excluded.bytes,
               count = count + 1""",
            (receiver, len(blob)),
        )
    db.close()
