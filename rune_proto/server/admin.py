"""Operator actions on the store, safe while the server runs (``rune-server accounts`` …).

They act on the database only, never on one server process's memory, so every
server that opens the same database sees them (docs/server.md, "Administration"):

- ``holds`` names the addresses an operator blocked or deleted. A blocked account
  keeps its row and its mail but cannot log in; a deleted one loses both, and its
  address stays reserved (nobody can register it) until ``accounts release``. No
  time and no reason is kept, so a copy of the file does not tell when it happened.
- The ``holds`` row of ``layout`` is set to a fresh random number by every block and
  delete. A running server reads that one row every ``admin_poll_interval`` seconds
  (a primary-key lookup of a few microseconds on the store thread) and, when it
  changed, ends the sessions of held addresses. A random number rather than a count:
  nothing in the file counts up with time.
- Mail is erased through the store's delete path (holes, ``usage``, ``pending``), a
  batch of messages per transaction, so the server's commits go on in between and a
  quota is right after every commit.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass

from . import compaction, slots

BLOCKED = "blocked"
DELETED = "deleted"
ERASE_BATCH = 64  # messages a transaction: ~25 ms of the writer lock (docs/server.md)


@dataclass(frozen=True, slots=True)
class AccountRow:
    """What ``accounts list`` shows: nothing about senders or single messages."""

    address: str
    blocked: bool
    messages: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Counts:
    accounts: int
    blocked: int
    reserved: int  # deleted addresses not released yet
    messages: int
    bytes: int


@dataclass(frozen=True, slots=True)
class InvitationRow:
    address: str
    expires_at: int


def list_accounts(db: sqlite3.Connection) -> list[AccountRow]:
    """Every account in address order (never registration order), with its usage."""
    rows = db.execute(
        """SELECT a.address, h.kind IS NOT NULL, COALESCE(u.count, 0), COALESCE(u.bytes, 0)
           FROM accounts AS a LEFT JOIN holds AS h ON h.address = a.address
           LEFT JOIN usage AS u ON u.receiver = a.address ORDER BY a.address"""
    ).fetchall()
    return [AccountRow(str(a), bool(b), int(n), int(s)) for a, b, n, s in rows]


def count(db: sqlite3.Connection) -> Counts:
    (accounts,) = db.execute("SELECT COUNT(*) FROM accounts").fetchone()
    blocked, reserved = (
        db.execute("SELECT COUNT(*) FROM holds WHERE kind = ?", (kind,)).fetchone()[0]
        for kind in (BLOCKED, DELETED)
    )
    messages, size = db.execute(
        "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM usage"
    ).fetchone()
    return Counts(int(accounts), int(blocked), int(reserved), int(messages), int(size))


def hold_of(db: sqlite3.Connection, address: str) -> str | None:
    """``blocked``, ``deleted`` or None."""
    row = db.execute("SELECT kind FROM holds WHERE address = ?", (address,)).fetchone()
    return str(row[0]) if row else None


def held(db: sqlite3.Connection) -> dict[str, str]:
    """Every blocked or deleted address, with its kind: whose sessions a server ends."""
    return {str(a): str(k) for a, k in db.execute("SELECT address, kind FROM holds")}


def generation(db: sqlite3.Connection) -> int:
    """The random number that changes at each block or delete (see the module docstring)."""
    row = db.execute("SELECT value FROM layout WHERE name = 'holds'").fetchone()
    return int(row[0]) if row else 0


def has_account(db: sqlite3.Connection, address: str) -> bool:
    return db.execute("SELECT 1 FROM accounts WHERE address = ?", (address,)).fetchone() is not None


def block(db: sqlite3.Connection, address: str) -> None:
    """In a transaction; the caller has checked that the account exists."""
    db.execute("INSERT OR REPLACE INTO holds (address, kind) VALUES (?, ?)", (address, BLOCKED))
    _announce(db)


def unblock(db: sqlite3.Connection, address: str) -> bool:
    """False if the address was not blocked."""
    cursor = db.execute("DELETE FROM holds WHERE address = ? AND kind = ?", (address, BLOCKED))
    compaction.mark_pending(db)
    return cursor.rowcount > 0


def delete_account(db: sqlite3.Connection, address: str) -> None:
    """Remove the account and its invitations, and reserve the address; the mail goes
    next, in batches (:func:`erase_batch`), so this transaction stays short."""
    db.execute("DELETE FROM accounts WHERE address = ?", (address,))
    db.execute("DELETE FROM invitations WHERE address = ?", (address,))
    db.execute("INSERT OR REPLACE INTO holds (address, kind) VALUES (?, ?)", (address, DELETED))
    _announce(db)


def release(db: sqlite3.Connection, address: str) -> bool:
    """Free a deleted address for registration; False if it was not reserved."""
    cursor = db.execute("DELETE FROM holds WHERE address = ? AND kind = ?", (address, DELETED))
    compaction.mark_pending(db)
    return cursor.rowcount > 0


def erase_batch(db: sqlite3.Connection, address: str) -> tuple[int, int]:
    """Delete up to ERASE_BATCH of the mailbox's messages as DELETE does (holes, usage);
    (messages, bytes) erased, (0, 0) when the mailbox is empty."""
    rows = db.execute(
        "SELECT id, size, slots FROM mailbox WHERE receiver = ? LIMIT ?", (address, ERASE_BATCH)
    ).fetchall()
    if not rows:
        db.execute("DELETE FROM usage WHERE receiver = ?", (address,))
        return 0, 0
    for _, _, placed in rows:
        slots.remove(db, slots.decode(placed))
    db.executemany(
        "DELETE FROM mailbox WHERE receiver = ? AND id = ?", [(address, r[0]) for r in rows]
    )
    size = sum(int(r[1]) for r in rows)
    db.execute(
        "UPDATE usage SET bytes = bytes - ?, count = count - ? WHERE receiver = ?",
        (size, len(rows), address),
    )
    compaction.mark_pending(db)
    return len(rows), size


def list_invitations(db: sqlite3.Connection) -> list[InvitationRow]:
    """Bound address and expiry, in address order; the token hashes stay unshown."""
    rows = db.execute(
        "SELECT address, expires_at FROM invitations ORDER BY address, expires_at"
    ).fetchall()
    return [InvitationRow(str(a), int(e)) for a, e in rows]


def revoke_invitations(db: sqlite3.Connection, address: str) -> int:
    cursor = db.execute("DELETE FROM invitations WHERE address = ?", (address,))
    compaction.mark_pending(db)
    return cursor.rowcount


def _announce(db: sqlite3.Connection) -> None:
    """Tell running servers to look at ``holds`` again (see the module docstring)."""
    db.execute("UPDATE layout SET value = ? WHERE name = 'holds'", (secrets.randbits(62) + 1,))
    compaction.mark_pending(db)
