"""Synchronous SQLite access: what the store thread (and the CLI) runs.

:class:`Database` is one connection and the statements the server needs; store.py
runs it on a dedicated thread behind the async :class:`~.store.Store` interface, and
the ``rune-server`` commands use it directly. store.py's docstring says what keeps a
commit cheap; schema.py, slots.py and compaction.py say how the file is laid out and
why it shows no order.
"""

from __future__ import annotations

import enum
import logging
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from . import admin, compaction, expiry, limits, schema, slots
from .diskspace import is_disk_full
from .limits import Charge

_T = TypeVar("_T")
log = logging.getLogger("rune_proto.server")

SCHEMA_VERSION = schema.SCHEMA_VERSION
AUTOCHECKPOINT_PAGES = 16384  # ~64 MiB of WAL: only if the background ones fall behind
# Messages per INSERT statement in a group commit. The store thread lets go of the GIL
# around every SQLite call and must win it back from a busy event loop afterwards
# (up to a switch interval each time), so a batch is one statement, not one per row.
INSERT_ROWS = 64
ERASE_RETRIES = 50  # a TRUNCATE checkpoint blocked by a background one is retried ...
ERASE_RETRY_DELAY = 0.02  # ... this often (seconds apart)


class StoreError(Exception):
    """The database is unusable (missing, wrong schema, I/O failure)."""


class DiskFull(StoreError):
    """SQLite could not write: the file system is full (nothing was stored)."""


class Invitation(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"  # unknown, used, or bound to another address: the same answer
    EXPIRED = "expired"


class Outcome(enum.Enum):
    """Result of :meth:`Store.create_account`."""

    CREATED = "created"
    TAKEN = "taken"
    INVITATION_INVALID = "invitation invalid"
    INVITATION_EXPIRED = "invitation expired"
    REGISTRATION_LIMIT = "registration limit reached"


class Database:
    """Synchronous SQLite access; one instance per thread (the CLI, or the store thread)."""

    def __init__(
        self, path: Path, *, create: bool = False, randbelow: slots.Randbelow = secrets.randbelow
    ) -> None:
        if not create and not path.is_file():
            raise StoreError(f"no database at {path}")
        self._path = path
        self._randbelow = randbelow  # the order pass's randomness (tests pass their own)
        self._autocheckpoint: int | None = None
        # Whether the next order pass rewrites every table whole: it must when this
        # process did not see every change since the last pass (the first pass after
        # opening, or after a pass that failed part-way), as then the new messages'
        # rows cannot all be named from the chunks it places (compaction.py).
        self._full_pass_next = True
        try:
            self._db = self._connect()
            if create:
                schema.create(self._db)
            schema.upgrade(self._db)
            (self._chunk_bytes,) = self._db.execute(
                "SELECT value FROM layout WHERE name = 'chunk_bytes'"
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database: {exc}") from exc
        except schema.SchemaError as exc:
            raise StoreError(str(exc)) from exc

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA secure_delete=ON")
        if self._autocheckpoint is not None:
            db.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
        return db

    @classmethod
    def create(cls, path: Path) -> None:
        cls(path, create=True).close()

    def close(self) -> None:
        self._db.close()

    def public_key(self, address: str) -> bytes | None:
        """The account's key; for an unknown address, as much work, then None.

        A hit used to cost a second b-tree search (the address index, then the table
        row) and a key copy that a miss skipped: LOGIN/PROOF must not tell them apart.
        Now both read one table row: the account's, or the newest account's.
        """
        row = self._db.execute(schema.ACCOUNT_QUERY, (address,)).fetchone()
        if row is None:  # no account at all
            return None
        key = bytes(row[1])
        return key if row[0] else None

    def add_invitation(self, token_hash: bytes, address: str, expires_at: int) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO invitations (token_hash, address, expires_at) VALUES (?, ?, ?)",
                (token_hash, address, expires_at),
            )
            compaction.mark_pending(self._db)

    def invitation(self, token_hash: bytes, address: str, now: int) -> Invitation:
        row = self._db.execute(
            "SELECT address, expires_at FROM invitations WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        if row is None or row[0] != address:
            return Invitation.INVALID
        return Invitation.EXPIRED if row[1] <= now else Invitation.VALID

    def create_account(
        self,
        address: str,
        public_key: bytes,
        token_hash: bytes | None,
        now: int,
        charges: Sequence[Charge] = (),
    ) -> Outcome:
        with self._transaction():
            if token_hash is not None:
                state = self.invitation(token_hash, address, now)
                if state is Invitation.INVALID:
                    return Outcome.INVITATION_INVALID
                if state is Invitation.EXPIRED:
                    return Outcome.INVITATION_EXPIRED
            if not self.registrable(address):
                return Outcome.TAKEN
            tally: limits.Tally = {}
            if limits.check(self._db, charges, tally) is not None:
                return Outcome.REGISTRATION_LIMIT
            limits.write(self._db, tally)
            self._db.execute(
                "INSERT INTO accounts (address, public_key) VALUES (?, ?)", (address, public_key)
            )
            if token_hash is not None:
                self._db.execute("DELETE FROM invitations WHERE token_hash = ?", (token_hash,))
            compaction.mark_pending(self._db)
        return Outcome.CREATED

    def registrable(self, address: str) -> bool:
        return self.public_key(address) is None and admin.hold_of(self._db, address) is None

    def blocked(self, address: str) -> bool:
        return admin.hold_of(self._db, address) == admin.BLOCKED

    def holds_generation(self) -> int:
        return admin.generation(self._db)

    def held(self) -> dict[str, str]:
        return admin.held(self._db)

    def transact(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """``action`` in one ``BEGIN IMMEDIATE`` transaction (the admin commands)."""
        with self._transaction():
            return action(self._db)

    def read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        return query(self._db)

    def erase(self) -> None:
        """Make deletions reach the file's bytes (see :meth:`_erase`)."""
        self._erase()

    def add_message(self, receiver: str, blob: bytes, quota: int) -> str | None:
        """One message, no limits (the CLI and tests)."""
        result = self.add_messages([(receiver, blob, quota)])[0]
        return result if isinstance(result, str) else None

    def add_messages(
        self,
        items: Sequence[tuple[str, bytes, int]],
        charges: Sequence[Sequence[Charge]] | None = None,
    ) -> list[str | limits.Kind | None]:
        """Store several ``(receiver, blob, quota)`` in one transaction: one commit.

        Each gets its new id, or None if it would take its receiver over ``quota``
        bytes (counting the messages before it in ``items``), or the limit its
        ``charges`` (one sequence per item) would pass. If anything fails, the
        whole transaction is rolled back and the exception raised.
        """
        ids: list[str | limits.Kind | None] = []
        used: dict[str, tuple[int, int]] = {}  # receiver: (bytes, count) as it will be
        rows: list[tuple[str, str, int, bytes, int]] = []
        tally: limits.Tally = {}
        with self._transaction():
            top = slots.end(self._db)
            epoch = expiry.current(self._db)
            for index, (receiver, blob, quota) in enumerate(items):
                before, count = used[receiver] if receiver in used else self._usage(receiver)
                used[receiver] = (before, count)
                if before + len(blob) > quota:
                    ids.append(None)
                    continue
                over = limits.check(self._db, charges[index] if charges else (), tally)
                if over is not None:
                    ids.append(over)
                    continue
                message_id = str(uuid.uuid4())
                pieces = slots.chunks_of(blob, self._chunk_bytes)
                placed = slots.append(self._db, top, receiver, message_id, pieces)
                top += len(pieces)
                rows.append((receiver, message_id, len(blob), slots.encode(placed), epoch))
                used[receiver] = (before + len(blob), count + 1)
                ids.append(message_id)
            for start in range(0, len(rows), INSERT_ROWS):
                batch = rows[start : start + INSERT_ROWS]
                self._db.execute(
                    schema.insert_rows("mailbox (receiver, id, size, slots, epoch)", 5, len(batch)),
                    [value for row in batch for value in row],
                )
            self._db.executemany(
                """INSERT INTO usage (receiver, bytes, count) VALUES (?, ?, ?)
                   ON CONFLICT (receiver) DO UPDATE SET bytes = excluded.bytes,
                   count = excluded.count""",
                [(receiver, size, count) for receiver, (size, count) in used.items()],
            )
            limits.write(self._db, tally)
            if rows or tally:
                compaction.mark_appended(self._db)
        return ids

    def _usage(self, receiver: str) -> tuple[int, int]:
        row = self._db.execute(
            "SELECT bytes, count FROM usage WHERE receiver = ?", (receiver,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def list_messages(self, receiver: str) -> list[tuple[str, int]]:
        # Ordered by the random id, so the listing shows no arrival order.
        rows = self._db.execute(
            "SELECT id, size FROM mailbox WHERE receiver = ? ORDER BY id", (receiver,)
        ).fetchall()
        return [(str(i), int(n)) for i, n in rows]

    def message(self, receiver: str, message_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT size, slots FROM mailbox WHERE receiver = ? AND id = ?",
            (receiver, message_id),
        ).fetchone()
        return slots.read(self._db, slots.decode(row[1]), int(row[0])) if row else None

    def message_size(self, receiver: str, message_id: str) -> int | None:
        row = self._db.execute(
            "SELECT size FROM mailbox WHERE receiver = ? AND id = ?", (receiver, message_id)
        ).fetchone()
        return int(row[0]) if row else None

    def delete_message(self, receiver: str, message_id: str) -> bool:
        with self._transaction():
            row = self._db.execute(
                "DELETE FROM mailbox WHERE receiver = ? AND id = ? RETURNING size, slots",
                (receiver, message_id),
            ).fetchone()
            if row is not None:
                slots.remove(self._db, slots.decode(row[1]))
                self._db.execute(
                    "UPDATE usage SET bytes = bytes - ?, count = count - 1 WHERE receiver = ?",
                    (row[0], receiver),
                )
                compaction.mark_pending(self._db)
        if row is None:
            return False
        self._erase()
        return True

    def totals(self) -> tuple[int, int, int]:
        (accounts,) = self._db.execute("SELECT COUNT(*) FROM accounts").fetchone()
        count, size = self._db.execute(
            "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM usage"
        ).fetchone()
        return int(accounts), int(count), int(size)

    def expire(self, now: float, max_age: float) -> int:
        """Delete the messages past ``max_age`` seconds (expiry.py); how many.

        ``max_age`` 0: expiry is off (its bucket is forgotten).
        """
        if max_age <= 0:
            if expiry.current_bucket(self._db):  # no write when there is nothing to forget
                with self._transaction():
                    expiry.reset(self._db)
            return 0
        deleted, finished = 0, False
        while not finished:
            with self._transaction():
                count, finished = expiry.sweep_step(self._db, now, max_age)
            deleted += count
        if deleted:
            self._erase()
        return deleted

    def sweep_limits(self, now: float) -> int:
        """Drop the abuse-limit counters whose window has ended (limits.py)."""
        with self._transaction():
            return limits.sweep(self._db, now)

    def clear_limits(self, keys: Sequence[bytes]) -> int:
        with self._transaction():
            cleared = limits.clear(self._db, keys)
            compaction.mark_pending(self._db)
        return cleared

    def order_pending(self) -> bool:
        return compaction.pending(self._db)

    def order_step(self, progress: compaction.Progress) -> None:
        """One bounded step of the order pass (compaction.py)."""
        if progress.full is None and self._full_pass_next:
            progress.full = True
        self._full_pass_next = True  # until this pass ends
        compaction.step(self._db, progress, self._randbelow)

    def order_finish(self, covered: bool) -> None:
        """End a pass: clear ``pending`` if it covered every change, then drop the WAL.

        Closing the connection is what makes SQLite delete the WAL and the ``-shm``
        index (the last connection to close does); if another one is open (a
        ``rune-server`` command, say), the TRUNCATE checkpoint has emptied the WAL.
        """
        if covered:
            compaction.finish(self._db)
        self._full_pass_next = False
        self._erase()
        self._db.close()
        self._db = self._connect()

    def order_pass(self) -> compaction.Progress:
        """A whole pass at once (tests, and the store when it closes)."""
        progress = compaction.Progress()
        while not progress.done:
            self.order_step(progress)
        self.order_finish(covered=True)
        return progress

    def defer_checkpoints(self) -> None:
        """Leave checkpoints to :class:`Checkpointer`, but for the far-out safety valve."""
        self._autocheckpoint = AUTOCHECKPOINT_PAGES
        self._db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")

    def _erase(self) -> None:
        """Make a committed DELETE reach the file's bytes, not just the WAL.

        ``secure_delete`` zeroes the freed pages, but in WAL mode the zeroed pages go
        to the WAL: until a checkpoint the main file still holds the blob, and older
        WAL frames hold it too. A TRUNCATE checkpoint copies the zeroed pages into the
        main file and empties the WAL (found by tests/hardening/test_privacy_audit.py).
        A background checkpoint running at the same moment makes it return "busy" at
        once, so it is retried for a while; if it is still blocked, the next DELETE or
        the close finishes the job.
        """
        for _ in range(ERASE_RETRIES):
            try:
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("checkpoint after a delete failed (%s)", why_failed(exc))
                return
            if not busy:
                return
            time.sleep(ERASE_RETRY_DELAY)
        log.warning("checkpoint after a delete was blocked; it happens at the next one")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def why_failed(exc: sqlite3.Error) -> str:
    """What the log says about a failed write: "disk full", or SQLite's name for the
    error (``SQLITE_IOERR_WRITE``…): never its message, which may quote data."""
    if is_disk_full(exc):
        return "disk full"
    return str(getattr(exc, "sqlite_errorname", None) or type(exc).__name__)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on any exception)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite may have rolled back already (a full disk)
            self._db.execute("ROLLBACK")
