"""Throttling of failed logins and registrations, counted in the store.

A :class:`Throttle` counts recent failures per key and says how long the next
verdict for that key must wait: nothing until ``free`` failures have been counted,
then ``base`` seconds, doubling with every further failure, at most ``cap``. The server
keeps one for the target address of ``LOGIN`` and one for the address of
``REGISTER``; each connection also counts its own failures the same way (see
:func:`backoff`). The delay is applied *before* the verdict is computed and
depends only on the failure count, never on whether the address exists, so it is
no oracle; and since every verdict for a throttled key waits, a guesser that hangs
up early learns nothing sooner.

Why in the store and not in memory: with several nodes on one database, counts in
each process's memory gave an attacker N× the guesses (one allowance per node), and
a restart gave them all back. The counts live in the ``failures`` table
(failures.py on SQLite, pg/failures.py on PostgreSQL), read before each verdict
and written after each failure, so every node sees every node's failures and a
restart forgets nothing. The clock is the wall clock, the same on every node.

Privacy: no IP address is involved at all, and keys are never stored as text: each
is a keyed BLAKE2b digest of the kind and the address under a secret derived from
the server identity (limits.secret_of, like the abuse-limit counters), so every
node computes the same key while a copy of the database does not list addresses
(not even by trying them: the secret is not in it). A row holds a count and the
time of the last failure. Each kind keeps at most ``capacity`` rows (the oldest
failure goes first), and a row is forgotten ``window`` seconds after its last
failure (the order pass deletes it) — but not when a login succeeds: a count that
suddenly dropped would tell whoever probes an address that it exists and was just
used.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Protocol


class FailureLedger(Protocol):
    """Where the counts live (the stores implement it)."""

    async def failures(self, kind: str, key: bytes, since: float) -> int:
        """The count of ``key`` if its last failure is after ``since``, else 0."""
        ...

    async def count_failure(
        self, kind: str, key: bytes, now: float, since: float, capacity: int
    ) -> None:
        """One more failure at ``now`` (a count that went stale starts again at 1)."""
        ...


def backoff(failures: int, *, free: int, base: float, cap: float) -> float:
    """Seconds an attempt waits after ``failures`` recent failures.

    None for the first ``free`` attempts; then ``base``, doubling, at most ``cap``.
    """
    over = failures - free
    if over < 0 or base <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(over, 64)))


class Throttle:
    """Failure counts of one ``kind`` (``login``, ``register``) in a ledger."""

    def __init__(
        self,
        ledger: FailureLedger,
        kind: str,
        secret: bytes,
        *,
        free: int,
        base: float,
        cap: float,
        window: float,
        capacity: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.kind = kind
        self.free = free
        self.base = base
        self.cap = cap
        self.window = window
        self.capacity = capacity
        self._secret = secret
        self._clock = clock

    def digest(self, key: str) -> bytes:
        """The row's key: the same on every node holding the identity, never the text."""
        text = f"{self.kind}\0{key}".encode()
        return hashlib.blake2b(text, key=self._secret, digest_size=16).digest()

    async def delay(self, key: str) -> float:
        """How long the verdict of an attempt for ``key`` made now must wait."""
        if self.base <= 0:  # throttling is off: nothing to read
            return 0.0
        since = self._clock() - self.window
        failures = await self.ledger.failures(self.kind, self.digest(key), since)
        return backoff(failures, free=self.free, base=self.base, cap=self.cap)

    async def failed(self, key: str) -> None:
        """Count a failure for ``key`` (in the store before the verdict is sent)."""
        if self.base <= 0:  # throttling is off: nothing to count
            return
        now = self._clock()
        await self.ledger.count_failure(
            self.kind, self.digest(key), now, now - self.window, self.capacity
        )


class MemoryLedger:
    """A :class:`FailureLedger` in a dict, with the stores' semantics (unit tests)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, bytes], tuple[int, float]] = {}

    async def failures(self, kind: str, key: bytes, since: float) -> int:
        count, last = self.rows.get((kind, key), (0, 0.0))
        return count if last > since else 0

    async def count_failure(
        self, kind: str, key: bytes, now: float, since: float, capacity: int
    ) -> None:
        known = (kind, key) in self.rows
        self.rows[(kind, key)] = (await self.failures(kind, key, since) + 1, now)
        if known:
            return
        mine = sorted((last, k) for (kd, k), (_, last) in self.rows.items() if kd == kind)
        if len(mine) <= capacity:
            return
        stale = [k for last, k in mine if last <= since]
        fresh = [k for last, k in mine if last > since]
        for k in stale + fresh[: max(0, len(fresh) - capacity)]:  # oldest first
            del self.rows[(kind, k)]
