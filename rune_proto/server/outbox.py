"""Replies on their way out of one connection, written together where they can be.

A reply is held back while the next command line has already begun to arrive (a
pipelining client writes it without waiting, docs/protocol.md §9.9), and what is held
is written in one go — one TLS record, one ``send`` — once the connection is between
commands, or once ``HELD_REPLIES`` are held, so a client that pipelines many LOOKUPs is
answered as it goes. A lock-step client never has a line half sent while it waits for
a reply, so it is answered at once.
"""

from __future__ import annotations

import asyncio

HELD_REPLIES = 16 * 1024


class Gone(Exception):
    """The peer went away, or stopped reading; nothing more can be sent."""


class Outbox:
    def __init__(self, writer: asyncio.StreamWriter, timeout: float) -> None:
        self._writer = writer
        self._timeout = timeout  # the idle timeout: how long a flush may wait
        self._held: list[bytes] = []
        self._held_bytes = 0

    async def put(self, data: bytes, *, more_coming: bool) -> None:
        """Hold ``data``; write all that is held unless more is coming and room is left."""
        self._held.append(data)
        self._held_bytes += len(data)
        if not more_coming or self._held_bytes >= HELD_REPLIES:
            await self.flush()

    def write_held(self) -> None:
        """Hand what is held to the transport without waiting (the link is closing)."""
        if self._held:
            held = self._held
            self._writer.write(held[0] if len(held) == 1 else b"".join(held))
            self._held = []
            self._held_bytes = 0

    async def flush(self) -> None:
        """Write what is held, and wait (within the idle timeout) until it has left.

        A peer that does not read gets nothing more, not even a TLS close_notify: the
        connection is dropped (:class:`Gone`) rather than wait for a flush that cannot
        happen.
        """
        if not self._held:
            return
        self.write_held()
        writer = self._writer
        try:
            if writer.transport.get_write_buffer_size() == 0:
                await writer.drain()  # all sent (the usual case): cannot wait, no timer
            else:
                async with asyncio.timeout(self._timeout):
                    await writer.drain()
        except (OSError, TimeoutError) as exc:
            writer.transport.abort()
            raise Gone from exc
