"""Throttling of failed logins and registrations, in memory only.

A :class:`Throttle` counts recent failures per key and says how long the next
verdict for that key must wait: nothing until ``free`` failures have been counted,
then ``base`` seconds, doubling with every further failure, at most ``cap``. The server
keeps one for the target address of ``LOGIN`` and one for the address of
``REGISTER``; each connection also counts its own failures the same way (see
:func:`backoff`). The delay is applied *before* the verdict is computed and
depends only on the failure count, never on whether the address exists, so it is
no oracle; and since every verdict for a throttled key waits, a guesser that hangs
up early learns nothing sooner.

Privacy: nothing here is written anywhere, and no IP address is involved at all.
Keys are not even kept as text: each is a keyed BLAKE2b digest under a random key
made at start-up, so the table in memory does not list addresses either. The table
holds at most ``capacity`` keys; when full, the key whose last failure is the
oldest is forgotten first. A key is also forgotten ``window`` seconds after its
last failure — but not when a login succeeds: a count that suddenly dropped would
tell whoever probes an address that it exists and was just used.
"""

from __future__ import annotations

import collections
import hashlib
import os
import time
from collections.abc import Callable


def backoff(failures: int, *, free: int, base: float, cap: float) -> float:
    """Seconds an attempt waits after ``failures`` recent failures.

    None for the first ``free`` attempts; then ``base``, doubling, at most ``cap``.
    """
    over = failures - free
    if over < 0 or base <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(over, 64)))


class Throttle:
    """Failure counts per key, bounded, forgotten after ``window`` seconds of quiet."""

    def __init__(
        self,
        *,
        free: int,
        base: float,
        cap: float,
        window: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.window = window
        self.capacity = capacity
        self._clock = clock
        self._secret = os.urandom(32)
        # digest -> (failures, time of the last failure); oldest failure first
        self._entries: collections.OrderedDict[bytes, tuple[int, float]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _digest(self, key: str) -> bytes:
        return hashlib.blake2b(key.encode("utf-8"), key=self._secret, digest_size=16).digest()

    def _failures(self, digest: bytes, now: float) -> int:
        entry = self._entries.get(digest)
        if entry is None:
            return 0
        failures, last = entry
        if now - last >= self.window:
            del self._entries[digest]
            return 0
        return failures

    def delay(self, key: str) -> float:
        """How long the verdict of an attempt for ``key`` made now must wait."""
        failures = self._failures(self._digest(key), self._clock())
        return backoff(failures, free=self.free, base=self.base, cap=self.cap)

    def failed(self, key: str) -> None:
        """Count a failure for ``key``."""
        now = self._clock()
        digest = self._digest(key)
        failures = self._failures(digest, now) + 1
        self._entries[digest] = (failures, now)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
