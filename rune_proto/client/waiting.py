"""Waiting for new mail: ``WAIT`` where the server offers it, polling where it does not.

A :class:`Session` inherits these. A waiting session can do nothing else until the
wait ends, so a client that wants to send while it waits keeps a second session for
the wait (as rune-tui does) or bounds each wait with a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..address import Address
from ..events import Done, Listing, ListMessages, NewMail, Wait, WaitEnded
from ..keys import Identity
from .channel import Channel
from .errors import ClientError

# Beyond the announced lifetime, how long the reply to WAIT may take before the
# connection is given up as dead (a slow or busy server still answers within it).
WAIT_GRACE = 30.0
DEFAULT_POLL_SECONDS = 60.0


class MailWaiter(Channel):
    """The wait operations, on top of the request/reply loop."""

    _lock: asyncio.Lock

    def _require_login(self) -> tuple[Address, Identity]:  # pragma: no cover - Session's
        raise NotImplementedError

    @property
    def can_wait(self) -> bool:
        """Whether the server announced ``WAIT`` in its ``CAPA``."""
        return bool(self.capabilities and self.capabilities.wait_seconds)

    async def wait(self, timeout: float | None = None) -> bool:
        """Hold until new mail is stored for us (True) or the wait ends without (False).

        It ends without after the server's lifetime for a wait, or after ``timeout``
        seconds (then DONE is sent and the server's answer read, so the session stays
        usable). Mail stored since login, the last :meth:`list` or the last True counts,
        so nothing that arrives between a list and a wait is missed. Raises
        :class:`ClientError` against a server without WAIT (use :meth:`wait_for_mail`).
        """
        self._require_login()
        caps = self.capabilities
        if caps is None or not caps.wait_seconds:
            raise ClientError("this server does not offer WAIT; poll with list() instead")
        command = Wait()
        async with self._lock:
            await self._transmit(command)
            try:
                async with asyncio.timeout(timeout):
                    reply = await self._reply(command, WaitEnded, caps.wait_seconds + WAIT_GRACE)
            except TimeoutError:  # ours: the reply's own deadline raises ConnectionFailed
                await self._transmit(Done())
                reply = await self._reply(command, WaitEnded)
        return isinstance(reply, NewMail)

    async def wait_for_mail(
        self, *, poll_seconds: float = DEFAULT_POLL_SECONDS
    ) -> AsyncIterator[None]:
        """Yield each time new mail may be there: once at once, then on every notice.

        With WAIT it wakes the moment mail is stored; against a server without it, it
        lists every ``poll_seconds`` and yields when an id appeared. It runs until the
        caller stops iterating or the connection fails (the error is raised).
        """
        yield None  # mail may have come before we started
        if self.can_wait:
            while True:
                if await self.wait():
                    yield None
        seen = await self._message_ids()
        while True:
            await asyncio.sleep(poll_seconds)  # the fallback's poll interval
            now = await self._message_ids()
            fresh, seen = now - seen, now
            if fresh:
                yield None

    async def _message_ids(self) -> set[str]:
        self._require_login()
        async with self._lock:
            listing = await self._exchange(ListMessages(), Listing)
        return {message_id for message_id, _ in listing.entries}
