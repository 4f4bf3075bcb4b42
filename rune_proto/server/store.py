"""Storage: a small async interface and its SQLite implementation.

The store keeps exactly what DESIGN.md §5 allows: addresses with public keys,
opaque sealed blobs per receiver under random UUIDs, and invitation token hashes
with their expiry. No sender, no message timestamps, no IPs. ``Store`` is the seam
where a networked database could replace SQLite.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit is on disk when it
returns, so ``202`` is never sent for a message that a crash could lose) and
``secure_delete`` (deleted blobs are overwritten, not left in free pages); each
DELETE is followed by a TRUNCATE checkpoint, so the overwriting reaches the main file
and no old WAL frame keeps the blob. All of it runs on one dedicated thread with its
own connection, off the event loop.

What keeps a MESSAGE cheap (measured in bench/server_throughput.py):

- Group commit. Messages that arrive while a commit is in progress wait for it, then
  go to disk together in one transaction (one ``fsync``, one INSERT statement); each
  caller still gets its answer only after the transaction holding its message has
  committed.
- WAL checkpoints are not run by a commit. SQLite's automatic checkpoint runs inside
  the commit that crosses its threshold and held it 50–70 ms every ~140 messages;
  here a second connection on its own thread runs them (checkpoint.py), while
  commits go on. The automatic one is kept only as a safety valve, far out
  (``AUTOCHECKPOINT_PAGES``).
- The mailbox quota check reads one ``usage`` row, kept in the same transactions
  as the messages, so it never scans a mailbox on the commit path and stays right
  whoever else writes the database.
- A blob is appended to the slot array (slots.py) as page-sized chunks; the work of
  hiding when it arrived is left to the order pass (compaction.py), which runs on
  this thread at most ``order_window`` seconds later.

Lookups never touch a blob they do not return: the rows searched hold keys only
(schema.py says why, and what it cost when they did not).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from . import compaction, failures, limits
from .admission import RateLimitedLog
from .checkpoint import Checkpointer
from .database import (
    SCHEMA_VERSION,
    Database,
    DiskFull,
    Invitation,
    Outcome,
    StoreError,
    why_failed,
)
from .diskspace import Reserve, is_disk_full
from .limits import Charge, LimitReached
from .metrics import Histogram
from .throttle import FailureLedger

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "DiskFull",
    "Invitation",
    "Outcome",
    "SQLiteStore",
    "Store",
    "StoreError",
]

_T = TypeVar("_T")
log = logging.getLogger("rune_proto.server")

ORDER_WINDOW = 60.0  # seconds: the default of the server's ``order_window`` setting
THROTTLE_WINDOW = 900.0  # seconds: the default of ``throttle_window`` (throttle.py)


class Store(FailureLedger, Protocol):
    """What the server needs from storage. Addresses are canonical (lower-case) text.

    It is also where the failed-login throttle counts (FailureLedger, throttle.py).
    """

    # Aggregates for the metrics (metrics.py): order passes completed, group-commit
    # latency, writes refused for a full disk.
    passes: int
    commit_times: Histogram
    disk_full: int

    async def totals(self) -> tuple[int, int, int]:
        """Accounts, stored messages, stored bytes."""
        ...

    async def public_key(self, address: str) -> bytes | None: ...

    async def invitation(self, token_hash: bytes, address: str, now: int) -> Invitation: ...

    async def create_account(
        self,
        address: str,
        public_key: bytes,
        token_hash: bytes | None,
        now: int,
        charges: Sequence[Charge] = (),
    ) -> Outcome:
        """Add an account, consuming the invitation and counting ``charges`` in the
        same transaction (limits.py)."""
        ...

    async def add_message(
        self, receiver: str, blob: bytes, quota: int, charges: Sequence[Charge] = ()
    ) -> str | None:
        """Store a blob; its new id once committed, or None if over ``quota`` bytes.

        Raises :class:`LimitReached` if a charge is over its limit, :class:`DiskFull`
        if the disk is full; either way nothing was stored.
        """
        ...

    async def list_messages(self, receiver: str) -> list[tuple[str, int]]: ...

    async def message(self, receiver: str, message_id: str) -> bytes | None: ...

    async def message_size(self, receiver: str, message_id: str) -> int | None:
        """A blob's size without reading it, to charge the memory budget first."""
        ...

    async def delete_message(self, receiver: str, message_id: str) -> bool: ...

    async def registrable(self, address: str) -> bool:
        """No account, and not reserved by an operator (admin.py)."""
        ...

    async def blocked(self, address: str) -> bool: ...

    async def holds_generation(self) -> int:
        """Changes whenever an operator blocks or deletes an account (admin.py)."""
        ...

    async def held(self) -> dict[str, str]:
        """Blocked or deleted addresses, and which of the two."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Queued:
    """A message waiting for the next group commit, and its caller's future."""

    receiver: str
    blob: bytes
    quota: int
    charges: Sequence[Charge]
    done: asyncio.Future[str | limits.Kind | None]


def answer_batch(
    batch: Sequence[_Queued], commit: asyncio.Future[list[str | limits.Kind | None]]
) -> bool:
    """Give each caller of a finished group commit its answer; whether it committed.

    Shared by both stores: a caller cancelled meanwhile is skipped, a cancelled or
    failed commit is passed on to every caller of its batch.
    """
    failure = None if commit.cancelled() else commit.exception()
    for index, done in enumerate(q.done for q in batch):
        if done.done():  # its caller was cancelled
            continue
        if commit.cancelled():
            done.cancel()
        elif failure is not None:
            done.set_exception(failure)
        else:
            done.set_result(commit.result()[index])
    return failure is None and not commit.cancelled()


_disk_full_log = RateLimitedLog()


class SQLiteStore:
    """:class:`Store` over :class:`Database`, all calls on one dedicated thread."""

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        database: Database,
        checkpointer: Checkpointer,
        order_window: float = ORDER_WINDOW,
        reserve: Reserve | None = None,
        clock: Callable[[], float] = time.time,
        throttle_window: float = THROTTLE_WINDOW,
    ) -> None:
        self._executor = executor
        self._throttle_window = throttle_window  # the pass sweeps rows older than this
        self._reserve = reserve
        self._clock = clock  # wall clock of the abuse-limit windows (tests move it)
        self._db = database
        self._checkpointer = checkpointer
        # Group commit, all on the event loop's thread: messages queue here while a
        # commit is in progress, and the next commit takes all of them.
        self._queued: list[_Queued] = []
        self._commit: asyncio.Future[list[str | limits.Kind | None]] | None = None
        # The order pass (compaction.py): due ``order_window`` seconds after the first
        # change it has not covered yet.
        self._order_window = order_window
        self._order_timer: asyncio.TimerHandle | None = None
        self._order_task: asyncio.Task[None] | None = None
        self._changed_during_pass = False
        self._due_at_open = False  # a pass is due since before this process (begin)
        self.passes = 0  # completed order passes (tests wait on it)
        self.commit_times = Histogram()  # seconds per group commit (metrics.py)
        self.disk_full = 0  # writes refused for a full disk

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        order_window: float = ORDER_WINDOW,
        reserve: Reserve | None = None,
        clock: Callable[[], float] = time.time,
        throttle_window: float = THROTTLE_WINDOW,
    ) -> SQLiteStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rune-store")
        loop = asyncio.get_running_loop()
        if reserve is not None:
            reserve.make()
        try:
            try:
                database = await loop.run_in_executor(executor, Database, path)
            except StoreError as exc:  # a full disk: give SQLite the reserve and try again
                if not (is_disk_full(exc.__cause__) and reserve and reserve.release()):
                    raise
                database = await loop.run_in_executor(executor, Database, path)
            await loop.run_in_executor(executor, database.defer_checkpoints)
            pending = await loop.run_in_executor(executor, database.order_pending)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        store = cls(
            executor, database, Checkpointer(path), order_window, reserve, clock, throttle_window
        )
        store._due_at_open = pending
        return store

    def begin(self) -> None:
        """The server is serving: run now the pass a crash or an upgrade left due.

        Not from :meth:`open`: a ``serve`` that fails to start (the port is taken by
        the server already running, say) must not run a pass on a database that
        another process is serving.
        """
        if self._due_at_open and self._order_timer is None and self._order_task is None:
            self._due_at_open = False
            self._start_order_pass()

    def _changed(self) -> None:
        """Something the order pass must hide was committed: make sure a pass is due."""
        self._changed_during_pass = True
        if self._order_timer is None and self._order_task is None:
            self._order_timer = asyncio.get_running_loop().call_later(
                self._order_window, self._start_order_pass
            )

    def _start_order_pass(self) -> None:
        self._order_timer = None
        self._order_task = asyncio.get_running_loop().create_task(self._order_pass())

    async def _order_pass(self) -> None:
        """The pass, one step at a time: commits queued meanwhile run between steps."""
        self._changed_during_pass = False
        progress = compaction.Progress()
        started = time.perf_counter()
        try:
            await self._run(partial(self._db.sweep_limits, self._clock()))
            since = self._clock() - self._throttle_window
            await self._run(partial(self._db.transact, partial(failures.sweep, since=since)))
            while not progress.done:
                await self._run(partial(self._db.order_step, progress))
            async with self._checkpointer.paused():
                covered = not self._changed_during_pass
                await self._run(partial(self._db.order_finish, covered))
            self.passes += 1
            if self._reserve is not None:
                await self._run(self._reserve.remake_if_room)
            log.info(
                "order pass: %d chunks placed, %d rows rewritten, %d steps, %.0f ms",
                progress.chunks_placed,
                progress.rows_rewritten,
                progress.steps,
                (time.perf_counter() - started) * 1000,
            )
        except (sqlite3.Error, DiskFull) as exc:  # the data is whole; the next pass tries again
            log.warning(
                "order pass failed (%s)", why_failed(exc) if isinstance(exc, sqlite3.Error) else exc
            )
            self._changed_during_pass = True
        finally:
            self._order_task = None
        if self._changed_during_pass:
            self._changed()

    async def _run(self, call: Callable[[], _T]) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise self._full() from exc
            raise

    def _full(self) -> DiskFull:
        self.disk_full += 1
        _disk_full_log.warning("disk full: a write was refused and nothing was stored")
        return DiskFull("disk full")

    async def totals(self) -> tuple[int, int, int]:
        """Accounts, stored messages, stored bytes (for metrics; sums, nobody's own)."""
        return await self._run(self._db.totals)

    async def expire(self, max_age: float) -> int:
        """Delete messages past the maximum age (expiry.py) by the store's clock."""
        deleted = await self._run(partial(self._db.expire, self._clock(), max_age))
        if deleted:
            self._changed()
            log.info("expiry: %d messages past the maximum age deleted", deleted)
        return deleted

    async def expire_every(self, max_age: float, interval: float) -> None:
        """At start, then every ``interval`` seconds while expiry is on."""
        while True:
            try:
                await self.expire(max_age)
            except (StoreError, sqlite3.Error) as exc:  # the next round tries again
                log.warning(
                    "expiry failed (%s)", why_failed(exc) if isinstance(exc, sqlite3.Error) else exc
                )
            if max_age <= 0:
                return
            await asyncio.sleep(interval)

    async def public_key(self, address: str) -> bytes | None:
        return await self._run(partial(self._db.public_key, address))

    async def invitation(self, token_hash: bytes, address: str, now: int) -> Invitation:
        return await self._run(partial(self._db.invitation, token_hash, address, now))

    async def create_account(
        self,
        address: str,
        public_key: bytes,
        token_hash: bytes | None,
        now: int,
        charges: Sequence[Charge] = (),
    ) -> Outcome:
        outcome = await self._run(
            partial(self._db.create_account, address, public_key, token_hash, now, charges)
        )
        self._changed()
        return outcome

    async def add_message(
        self, receiver: str, blob: bytes, quota: int, charges: Sequence[Charge] = ()
    ) -> str | None:
        """Answered once the transaction holding the message has committed."""
        done: asyncio.Future[str | limits.Kind | None] = asyncio.get_running_loop().create_future()
        self._queued.append(_Queued(receiver, blob, quota, charges, done))
        if self._commit is None:
            self._start_commit()
        try:
            result = await done
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise self._full() from exc
            raise
        if isinstance(result, limits.Kind):
            raise LimitReached(result)
        return result

    def _start_commit(self) -> None:
        batch, self._queued = self._queued, []
        items = [(q.receiver, q.blob, q.quota) for q in batch]
        charges = [q.charges for q in batch]
        commit = asyncio.get_running_loop().run_in_executor(
            self._executor, self._db.add_messages, items, charges
        )
        commit.add_done_callback(partial(self._committed, batch, time.perf_counter()))
        self._commit = commit

    def _committed(
        self,
        batch: list[_Queued],
        started: float,
        commit: asyncio.Future[list[str | limits.Kind | None]],
    ) -> None:
        self._commit = None
        self.commit_times.observe(time.perf_counter() - started)
        if answer_batch(batch, commit):
            self._checkpointer.committed(len(batch))
            self._changed()
        if self._queued:
            self._start_commit()

    async def list_messages(self, receiver: str) -> list[tuple[str, int]]:
        return await self._run(partial(self._db.list_messages, receiver))

    async def message(self, receiver: str, message_id: str) -> bytes | None:
        return await self._run(partial(self._db.message, receiver, message_id))

    async def message_size(self, receiver: str, message_id: str) -> int | None:
        return await self._run(partial(self._db.message_size, receiver, message_id))

    async def delete_message(self, receiver: str, message_id: str) -> bool:
        """On a full disk, the reserve (diskspace.py) is given up so a DELETE can run."""
        delete = partial(self._db.delete_message, receiver, message_id)
        try:
            deleted = await self._run(delete)
        except DiskFull:
            if self._reserve is None or not self._reserve.release():
                raise
            deleted = await self._run(delete)
        if deleted:
            self._changed()
        return deleted

    async def registrable(self, address: str) -> bool:
        return await self._run(partial(self._db.registrable, address))

    async def failures(self, kind: str, key: bytes, since: float) -> int:
        query = partial(failures.count, kind=kind, key=key, since=since)
        return await self._run(partial(self._db.read, query))

    async def count_failure(
        self, kind: str, key: bytes, now: float, since: float, capacity: int
    ) -> None:
        """Its own transaction, committed before the verdict is sent (failures.py)."""
        record = partial(failures.record, kind=kind, key=key, now=now, since=since)
        await self._run(partial(self._db.read, partial(record, capacity=capacity)))
        self._changed()

    async def blocked(self, address: str) -> bool:
        return await self._run(partial(self._db.blocked, address))

    async def holds_generation(self) -> int:
        return await self._run(self._db.holds_generation)

    async def held(self) -> dict[str, str]:
        return await self._run(self._db.held)

    async def close(self) -> None:
        """Close after every queued call has run (the executor is first in, first out)."""
        while self._commit is not None:  # and the messages queued behind it
            await asyncio.wait((self._commit,))
            await asyncio.sleep(0)  # let _committed run (it may start the next commit)
        if self._order_task is not None:
            await asyncio.wait((self._order_task,))
        if self._order_timer is not None:  # a change not hidden yet: hide it before leaving
            self._order_timer.cancel()
            self._order_timer = None
            await self._order_pass()
            if self._order_timer is not None:
                self._order_timer.cancel()
        await self._checkpointer.close()  # first: the last connection to close checkpoints
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)
