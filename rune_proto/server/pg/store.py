"""PgStore: the :class:`~rune_proto.server.store.Store` on PostgreSQL, for several nodes.

Everything that SQLiteStore could keep in one process lives in the database here,
so N nodes (or N worker processes) on one database agree without talking to each
other: quota in ``usage`` rows, abuse limits in ``limits`` rows, both locked in the
transaction that stores a message (transactions.py says in which order, and why
that makes races end in one winner and never in an error).

Durability. A ``202`` is sent only after the transaction holding the message has
committed, and every pooled connection runs with ``synchronous_commit=on``, sent
in the connection's start-up packet: that overrides a database or role default of
``off`` (which would acknowledge commits that a crash of PostgreSQL can lose) and
it is also what the pool's ``RESET ALL`` returns to between borrowers.

Group commit, per node. Messages arriving while this node's commit is in flight
wait and go to the database together in the next transaction (one WAL flush), and
each caller gets its answer only after ITS transaction committed. Commits of
several nodes serialise on the ``next_slot`` row (dense slot numbers) only for the
short tail of the transaction that appends chunks.

The order pass (ordering.py) is scheduled as on SQLite (``order_window`` seconds
after a change, and when the server begins if one is due), but has one owner
across nodes: the node that gets ``pg_try_advisory_lock`` on its connection runs
it; a node that does not reschedules, and finds the work done or due. A node's
crash releases the lock with its connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

import asyncpg

from .. import limits
from ..admission import RateLimitedLog
from ..database import DiskFull, Invitation, Outcome, StoreError
from ..limits import Charge, LimitReached
from ..metrics import Histogram
from ..store import ORDER_WINDOW, THROTTLE_WINDOW, _Queued, answer_batch
from . import chunks, failures, ordering, reads, schema, transactions
from .chunks import Connection
from .errors import connection_error
from .url import masked

_T = TypeVar("_T")
log = logging.getLogger("rune_proto.server")

POOL_SIZE = 8  # connections per node: one group commit, the pass, and reads
CONNECT_TIMEOUT = 15.0  # seconds to reach PostgreSQL at open
RETRIES = 5  # a transaction ended by a deadlock or serialization failure runs again
# Whatever the database's default: a commit is durable before it is acknowledged.
SERVER_SETTINGS = {"synchronous_commit": "on"}
WAL_LEFT = (
    "pg_wal keeps the window's changes until they age out (grant pg_checkpoint and"
    " EXECUTE on pg_switch_wal, set wal_recycle = off: see docs/server.md)"
)
_RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_disk_full_log = RateLimitedLog()


class PgStore:
    """:class:`Store` over an asyncpg pool; one instance per node (or worker)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        chunk_bytes: int,
        order_window: float,
        clock: Callable[[], float],
        randbelow: ordering.Randbelow,
        seal: chunks.Seal,
    ) -> None:
        self._pool = pool
        self._seal = seal  # the at-rest key of chunks and slot lists (chunks.py)
        self._wal_warned = False
        self._throttle_window = THROTTLE_WINDOW
        self._chunk_bytes = chunk_bytes
        self._clock = clock  # wall clock of the abuse-limit windows and expiry
        self._randbelow = randbelow  # the pass's randomness (tests pass their own)
        self._queued: list[_Queued] = []
        self._commit: asyncio.Task[list[str | limits.Kind | None]] | None = None
        self._order_window = order_window
        self._order_timer: asyncio.TimerHandle | None = None
        self._order_task: asyncio.Task[None] | None = None
        self._due_at_open = False
        self.passes = 0
        self.passes_deferred = 0  # passes left to the node that held the lock
        self.commit_times = Histogram()
        self.disk_full = 0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        seal: chunks.Seal,
        order_window: float = ORDER_WINDOW,
        clock: Callable[[], float] = time.time,
        pool_size: int = POOL_SIZE,
        randbelow: ordering.Randbelow = secrets.randbelow,
        throttle_window: float = THROTTLE_WINDOW,
    ) -> PgStore:
        """Connect, create or upgrade the schema; StoreError (password masked) if not."""
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=CONNECT_TIMEOUT,
                server_settings=SERVER_SETTINGS,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise connection_error(url, exc) from None
        except ValueError:  # asyncpg's DSN parser (its message may quote the URL)
            raise StoreError(f"not a usable PostgreSQL URL: {masked(url)}") from None
        try:
            async with pool.acquire() as conn:
                await schema.prepare(conn)
                chunk_bytes = await schema.chunk_bytes(conn)
                await chunks.check_key(conn, seal)
                pending = await ordering.due(conn)
        except schema.SchemaError as exc:
            await pool.close()
            raise StoreError(str(exc)) from None
        except chunks.SealError:
            await pool.close()
            raise StoreError(
                f"the mail in {masked(url)} was stored by a server with another identity:"
                " every node needs the same identity.key (docs/deploy.md)"
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await pool.close()
            raise StoreError(f"cannot prepare {masked(url)}: {_reason(exc)}") from None
        store = cls(pool, chunk_bytes, order_window, clock, randbelow, seal)
        store._due_at_open = pending
        store._throttle_window = throttle_window  # the pass sweeps failures older than this
        return store

    def begin(self) -> None:
        """The server is serving: run now the pass a crash or an upgrade left due."""
        if self._due_at_open and self._order_timer is None and self._order_task is None:
            self._due_at_open = False
            self._start_order_pass()

    # -- the order pass -----------------------------------------------------------

    def _changed(self) -> None:
        if self._order_timer is None and self._order_task is None:
            self._order_timer = asyncio.get_running_loop().call_later(
                self._order_window, self._start_order_pass
            )

    def _start_order_pass(self) -> None:
        self._order_timer = None
        self._order_task = asyncio.get_running_loop().create_task(self._order_pass())

    async def _order_pass(self) -> None:
        """One pass if this node gets the lock; otherwise try again later."""
        again = False
        try:
            async with self._pool.acquire() as conn:
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ordering.ORDER_LOCK):
                    self.passes_deferred += 1
                    again = True  # another node's pass: it may not cover our last change
                    return
                try:
                    again = not await self._owned_pass(conn)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", ordering.ORDER_LOCK)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("order pass failed (%s)", _unavailable(exc))
            again = True
        finally:
            self._order_task = None
            if again:
                self._changed()

    async def _owned_pass(self, conn: Connection) -> bool:
        """The pass proper, under the lock; whether it covered every change."""
        if not await ordering.due(conn):
            return True
        started = time.perf_counter()
        await ordering.begin(conn)
        progress = ordering.OrderProgress()
        while not progress.done:
            now = self._clock()
            await ordering.step(
                conn,
                self._seal,
                progress,
                self._randbelow,
                now=now,
                failures_before=now - self._throttle_window,
            )
        self.passes += 1
        log.info(
            "order pass: %d chunks placed, %d steps, %.0f ms",
            progress.chunks_moved,
            progress.steps,
            (time.perf_counter() - started) * 1000,
        )
        if not progress.wal_flushed and not self._wal_warned:
            self._wal_warned = True
            log.warning("order pass: %s", WAL_LEFT)
        return await ordering.covered(conn)

    # -- transactions -------------------------------------------------------------

    async def _transact(self, body: Callable[[Connection], Awaitable[_T]]) -> _T:
        """``body`` in one transaction, run again after a deadlock or serialization failure."""
        for attempt in range(RETRIES):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await body(conn)
            except _RETRIED as exc:
                if attempt == RETRIES - 1:
                    raise _unavailable(exc) from exc
            except asyncpg.DiskFullError:
                raise self._full() from None
            except _FAILURES as exc:
                raise _unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def _read(self, body: Callable[[Connection], Awaitable[_T]]) -> _T:
        try:
            async with self._pool.acquire() as conn:
                return await body(conn)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def _full(self) -> DiskFull:
        self.disk_full += 1
        _disk_full_log.warning("disk full: a write was refused and nothing was stored")
        return DiskFull("disk full")

    async def add_message(
        self, receiver: str, blob: bytes, quota: int, charges: Sequence[Charge] = ()
    ) -> str | None:
        """Answered once the transaction holding the message has committed."""
        done: asyncio.Future[str | limits.Kind | None] = asyncio.get_running_loop().create_future()
        self._queued.append(_Queued(receiver, blob, quota, charges, done))
        if self._commit is None:
            self._start_commit()
        result = await done
        if isinstance(result, limits.Kind):
            raise LimitReached(result)
        return result

    def _start_commit(self) -> None:
        batch, self._queued = self._queued, []
        items = [(q.receiver, q.blob, q.quota) for q in batch]
        charges = [q.charges for q in batch]
        body = partial(
            transactions.add_messages,
            items=items,
            charges=charges,
            chunk_bytes=self._chunk_bytes,
            seal=self._seal,
        )
        commit = asyncio.get_running_loop().create_task(self._transact(body))
        commit.add_done_callback(partial(self._committed, batch, time.perf_counter()))
        self._commit = commit

    def _committed(
        self,
        batch: list[_Queued],
        started: float,
        commit: asyncio.Task[list[str | limits.Kind | None]],
    ) -> None:
        self._commit = None
        self.commit_times.observe(time.perf_counter() - started)
        if answer_batch(batch, commit):
            self._changed()
        if self._queued:
            self._start_commit()

    async def create_account(
        self,
        address: str,
        public_key: bytes,
        token_hash: bytes | None,
        now: int,
        charges: Sequence[Charge] = (),
    ) -> Outcome:
        try:
            outcome = await self._transact(
                partial(
                    transactions.create_account,
                    address=address,
                    public_key=public_key,
                    token_hash=token_hash,
                    now=now,
                    charges=charges,
                )
            )
        except transactions.Rollback as undone:
            return undone.outcome
        if outcome is Outcome.CREATED:
            self._changed()
        return outcome

    async def delete_message(self, receiver: str, message_id: str) -> bool:
        deleted = await self._transact(
            partial(
                transactions.delete_message,
                receiver=receiver,
                message_id=message_id,
                seal=self._seal,
            )
        )
        if deleted:
            self._changed()
        return deleted

    async def expire(self, max_age: float) -> int:
        """Delete messages past the maximum age (../expiry.py) by the store's clock."""
        if max_age <= 0:
            if await self._read(transactions.current_bucket):
                await self._transact(partial(transactions.expire_off))
            return 0
        deleted, finished = 0, False
        now = self._clock()
        while not finished:
            count, finished = await self._transact(
                partial(transactions.expire_step, now=now, bucket_seconds=max_age, seal=self._seal)
            )
            deleted += count
        if deleted:
            self._changed()
            log.info("expiry: %d messages past the maximum age deleted", deleted)
        return deleted

    async def expire_every(self, max_age: float, interval: float) -> None:
        """At start, then every ``interval`` seconds while expiry is on."""
        while True:
            try:
                await self.expire(max_age)
            except StoreError as exc:  # the next round tries again
                log.warning("expiry failed (%s)", exc)
            if max_age <= 0:
                return
            await asyncio.sleep(interval)

    # -- reads --------------------------------------------------------------------

    async def totals(self) -> tuple[int, int, int]:
        """Accounts, stored messages, stored bytes (for metrics; sums, nobody's own)."""
        return await self._read(reads.totals)

    async def public_key(self, address: str) -> bytes | None:
        return await self._read(partial(reads.public_key, address=address))

    async def invitation(self, token_hash: bytes, address: str, now: int) -> Invitation:
        return await self._read(
            partial(reads.invitation, token_hash=token_hash, address=address, now=now)
        )

    async def list_messages(self, receiver: str) -> list[tuple[str, int]]:
        return await self._read(partial(reads.list_messages, receiver=receiver))

    async def message(self, receiver: str, message_id: str) -> bytes | None:
        return await self._read(
            partial(reads.message, seal=self._seal, receiver=receiver, message_id=message_id)
        )

    async def message_size(self, receiver: str, message_id: str) -> int | None:
        return await self._read(
            partial(reads.message_size, receiver=receiver, message_id=message_id)
        )

    async def registrable(self, address: str) -> bool:
        return await self._read(partial(reads.registrable, address=address))

    async def blocked(self, address: str) -> bool:
        return await self._read(partial(reads.blocked, address=address))

    async def holds_generation(self) -> int:
        return await self._read(reads.holds_generation)

    async def held(self) -> dict[str, str]:
        return await self._read(reads.held)

    # -- the shared throttle (../throttle.py, failures.py) ---------------------------

    async def failures(self, kind: str, key: bytes, since: float) -> int:
        return await self._read(partial(failures.count, kind=kind, key=key, since=since))

    async def count_failure(
        self, kind: str, key: bytes, now: float, since: float, capacity: int
    ) -> None:
        record = partial(failures.record, kind=kind, key=key, now=now, since=since)
        await self._transact(partial(record, capacity=capacity))
        self._changed()

    async def close(self) -> None:
        """Close after the queued commits; finish a due pass if this node can."""
        while self._commit is not None:
            await asyncio.wait((self._commit,))
            await asyncio.sleep(0)  # let _committed run (it may start the next commit)
        if self._order_task is not None:
            await asyncio.wait((self._order_task,))
        if self._order_timer is not None:  # a change not hidden yet: hide it before leaving
            self._order_timer.cancel()
            self._order_timer = None
            await self._order_pass()
            if self._order_timer is not None:  # (another node holds the pass: it will)
                self._order_timer.cancel()
                self._order_timer = None
        await self._pool.close()


def _reason(exc: BaseException) -> str:
    """What an error at open says: PostgreSQL's message (refused, bad password, no
    such database: no data in them) or the error's kind; never a URL."""
    if isinstance(exc, asyncpg.PostgresError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _unavailable(exc: BaseException) -> StoreError:
    """A failure while serving, for logs: its kind and SQLSTATE only, since
    PostgreSQL's messages can quote a row (an address, say)."""
    state = getattr(exc, "sqlstate", None)
    return StoreError(f"database error: {type(exc).__name__}" + (f" ({state})" if state else ""))
