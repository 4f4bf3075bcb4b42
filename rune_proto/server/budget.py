"""One server-wide budget for the memory that long lines and large replies hold.

Why: a connection may lawfully hold a ~22 MiB MESSAGE line while it arrives, or a
16 MiB blob while its RETRIEVE reply goes out, so ``max_connections`` hostile peers
that never finish (or never read) would multiply that into gigabytes. Each
connection gets a small free allowance, never counted, so the usual short command
costs nothing here; bytes beyond it are charged to this budget first. A connection
that cannot be charged waits: its reads stop (TCP backpressure on the sender) or
its large reply is not produced yet, while every other connection goes on.

Grant rule: a request is granted when it fits under the limit, or when the
requester already holds at least as much as any other holder. The second clause
means no deadlock: someone (the largest holder) can always make progress, so a
single line or reply larger than the whole budget still passes, and partial lines
that together fill the budget cannot wait on each other forever. Over the limit,
only the largest holder grows, so ``used <= limit + the largest single charge``
(see docs/server.md for the resulting bound on RSS). Waiters re-check on every
release; the caller bounds the wait (the idle deadline).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from typing import Any

MIB = 1024 * 1024
# Charges are taken in steps this large, so a long line costs one budget call per
# step rather than per read.
GRANT_STEP = MIB
# glibc's mallopt parameters. With a fixed threshold, buffers of 1 MiB or more are
# always their own mmap and go back to the OS when freed. (By default the threshold
# grows to the largest buffer freed so far, up to 32 MiB, and later blobs then come
# from per-thread heaps that glibc keeps: 1.5 GiB stayed after an attack had ended.)
# Fixing it also fixes the trim threshold, at 128 KiB unless set: the heap's top was
# then given back and grown again so often that a new connection cost the server
# 10-40 % more CPU (with a 256 KiB mmap threshold); freed heap memory is given back
# by trim_soon instead.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024


TRIM_DELAY = 1.0  # seconds after a connection that held budget ends (see trim_soon)


def _glibc_function(name: str) -> Any:
    """A glibc function, or None elsewhere (musl, macOS: other allocators, not needed)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    return function


_mallopt = _glibc_function("mallopt")
_malloc_trim = _glibc_function("malloc_trim")


def return_freed_memory_to_os() -> bool:
    """On glibc, make large buffers mmap-backed (see ``_M_MMAP_THRESHOLD``); else nothing."""
    if _mallopt is None:
        return False
    trim = _mallopt(ctypes.c_int(_M_TRIM_THRESHOLD), ctypes.c_int(TRIM_THRESHOLD))
    return bool(trim and _mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD)))


class MemoryBudget:
    """Bytes charged server-wide, per holder; see the module docstring for the rule."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._held: dict[object, int] = {}
        self._released: asyncio.Event | None = None
        self._trim: asyncio.TimerHandle | None = None

    def held(self, holder: object) -> int:
        return self._held.get(holder, 0)

    def _may_take(self, holder: object, amount: int) -> bool:
        if self.used + amount <= self.limit:
            return True
        mine = self._held.get(holder, 0)
        return all(mine >= other for other in self._held.values())

    def try_take(self, holder: object, amount: int) -> bool:
        """Charge ``amount`` to ``holder`` if the rule allows it now."""
        if not self._may_take(holder, amount):
            return False
        self._held[holder] = self._held.get(holder, 0) + amount
        self.used += amount
        self.peak = max(self.peak, self.used)
        return True

    async def take(self, holder: object, amount: int) -> None:
        """Charge ``amount``, waiting for releases as long as it takes (cancel to stop)."""
        while not self.try_take(holder, amount):
            if self._released is None:
                self._released = asyncio.Event()
            await self._released.wait()

    def give(self, holder: object, amount: int) -> None:
        """Return ``amount`` of what ``holder`` was charged, and wake the waiters."""
        if amount <= 0:
            return
        left = self._held.get(holder, 0) - amount
        if left < 0:
            raise AssertionError("a holder returned more than it was charged")
        if left:
            self._held[holder] = left
        else:
            del self._held[holder]
        self.used -= amount
        if self._released is not None:
            self._released.set()  # every waiter re-checks; the next one waits on a new event
            self._released = None

    def give_all(self, holder: object) -> None:
        self.give(holder, self._held.get(holder, 0))

    async def take_unless(
        self, holder: object, amount: int, stop: asyncio.Future[None], timeout: float
    ) -> str | None:
        """Charge ``amount``; None once granted, else why not: ``"stopping"`` (``stop``
        is done) or ``"timeout"``. For a wait that holds no socket read, so nothing else
        would interrupt it."""
        if self.try_take(holder, amount):
            return None
        taking = asyncio.ensure_future(self.take(holder, amount))
        try:
            await asyncio.wait((taking, stop), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not taking.done():
                taking.cancel()  # it has not resumed, so it took nothing
        if taking.done() and not taking.cancelled():
            return None
        return "stopping" if stop.done() else "timeout"

    def trim_soon(self) -> None:
        """Give freed heap memory back to the OS a moment from now (coalesced).

        glibc keeps freed small blocks; after hundreds of connections with long
        lines went away, 67 MiB stayed resident until ``malloc_trim(0)``.
        """
        if _malloc_trim is not None and self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY, self._trim_now)

    def _trim_now(self) -> None:
        self._trim = None
        if _malloc_trim is not None:
            _malloc_trim(0)
