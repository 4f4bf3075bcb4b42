"""A client's connection to one server, under :class:`~rune_proto.client.session.Session`.

The request/reply loop (one command out, one reply back, bounded in time and size,
every failure a typed exception and the connection closed) and the opening handshake
that holds the server to its key. Logins, contacts and messages are the operations
:class:`Session` builds on it; keeping them apart keeps the bounds in one place.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TypeVar

from ..connection import MAX_BODY_BYTES, MAX_BODY_LINES, Connection, Role, State
from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import (
    NEED_DATA,
    Capa,
    Capabilities,
    Command,
    ConnectionClosed,
    ErrorReply,
    Event,
    Greeting,
    ListMessages,
    Reply,
    Retrieve,
    SendReady,
)
from ..keys import PublicKey
from ..padding import MAX_PLAINTEXT, padded_size
from ..wire import message_line_limit
from .errors import (
    ClientError,
    ConnectionFailed,
    ProtocolViolation,
    ServerError,
    ServerKeyChanged,
)

READ_CHUNK = 256 * 1024  # bytes per read, and the StreamReader's buffer limit
# A reply must arrive within the timeout; one still arriving at least this fast (bytes
# per second) gets more time, so a big RETRIEVE on a slow link completes while a server
# that trickles bytes cannot hold the client forever.
_MIN_RATE = 32 * 1024
_LINE = 16 * 1024  # the longest single-line reply but 250 (connection_replies._REPLY_LINE_LIMIT)
_CLOSE_REPORT_TURNS = 3  # loop turns for asyncio to report a broken connection (SSL: two)
# The largest CLIENT MESSAGE a valid message can need (protocol.md §9.8): a server that
# announces a bigger MAX_PAYLOAD cannot make the client buffer longer RETRIEVE replies.
LARGEST_PAYLOAD = padded_size(MAX_PLAINTEXT) + 2340

_R = TypeVar("_R", bound=Reply)


class Channel:
    """One client connection: its lock-step exchange, and the server's greeting and key."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        server_key: PublicKey | None,
        timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = Connection(Role.CLIENT)
        self._pinned_server_key = server_key
        self._timeout = timeout
        self.greeting: Greeting | None = None
        self.capabilities: Capabilities | None = None

    # --- the request/reply loop -------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._conn.state is State.CLOSED

    async def _next_event(self, budget: int = 2 * _LINE, timeout: float | None = None) -> Event:
        """The next event from the server, within bounds of time and size.

        The whole reply must arrive within the timeout (extended only while data keeps
        coming at ``_MIN_RATE``) and within ``budget`` bytes, so a silent, trickling or
        flooding server cannot hold the client: it gets ConnectionFailed or
        ProtocolViolation instead.
        """
        loop = asyncio.get_running_loop()
        timeout = self._timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        received = 0
        while True:
            try:
                event = self._conn.next_event()
            except RemoteProtocolError as exc:
                self._abort()
                raise ProtocolViolation(f"the server broke the protocol: {exc}") from exc
            if event is not NEED_DATA:
                return event
            try:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):  # no task per read, as wait_for makes
                    data = await self._reader.read(READ_CHUNK)
                if data and self._writer.transport.is_closing():
                    await self._closing_reason()
            except TimeoutError as exc:
                self._abort()
                raise ConnectionFailed(f"the server did not answer within {timeout:g} s") from exc
            except (OSError, ssl.SSLError) as exc:
                self._abort()
                raise ConnectionFailed(f"the connection broke: {exc}") from exc
            received += len(data)
            if received > budget:
                self._abort()
                raise ProtocolViolation(f"the server sent more than {budget:,} bytes for one reply")
            deadline += len(data) / _MIN_RATE
            self._conn.receive_data(data)

    async def _closing_reason(self) -> None:
        """Raise the error that is closing the connection, if there is one.

        A read returns as soon as bytes arrive, before asyncio reports that the same
        wake-up also broke the connection (say our write met a server that is gone).
        Those bytes were then sent before it went away, not in answer to us: let the
        report land (it takes a few loop turns) and raise it instead of reading them.
        """
        for _ in range(_CLOSE_REPORT_TURNS):
            if self._reader.exception() is not None:
                break
            await asyncio.sleep(0)
        exc = self._reader.exception()
        if exc is not None:
            raise exc

    def _budget(self, command: Command) -> int:
        """The most bytes any valid reply to ``command`` can take (with a closing 421)."""
        if isinstance(command, Retrieve):
            return message_line_limit(self._conn.max_payload + 64 * 1024) + 2 * _LINE
        if isinstance(command, ListMessages | Capa):
            return MAX_BODY_BYTES + 2 * MAX_BODY_LINES + 4 * _LINE
        return 2 * _LINE

    async def _unsolicited(self) -> None:
        """The server spoke before being asked: a closing status is reported, else a lie."""
        event = await self._next_event()
        self._abort()
        if isinstance(event, ErrorReply):
            raise ServerError(event.status, event.text)
        if isinstance(event, ConnectionClosed):
            raise ConnectionFailed("the server closed the connection")
        raise ProtocolViolation(f"the server sent {type(event).__name__} unasked")

    def _abort(self) -> None:
        self._conn.state = State.CLOSED
        self._writer.close()

    async def _exchange(self, command: Command, expected: type[_R]) -> _R:
        await self._transmit(command)
        return await self._reply(command, expected)

    async def _transmit(self, *commands: Command) -> None:
        """Write commands in one go (no reply awaited: WAIT's DONE has none of its own;
        a bound SEND has its MESSAGE written behind it)."""
        if self.closed:
            raise ConnectionFailed("the connection is closed")
        if self._conn.buffered:  # nothing may arrive between a reply and our next command
            await self._unsolicited()
        lines = []
        for command in commands:
            try:
                lines.append(self._conn.send(command))
            except LocalProtocolError as exc:
                raise ClientError(f"cannot {command.verb} now: {exc}") from exc
        data = lines[0] if len(lines) == 1 else b"".join(lines)
        try:
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size() == 0:
                await self._writer.drain()  # all sent: cannot wait, needs no timer
            else:
                async with asyncio.timeout(self._timeout):
                    await self._writer.drain()
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self._abort()
            raise ConnectionFailed(f"could not send to the server: {exc}") from exc

    async def _reply(
        self, command: Command, expected: type[_R], timeout: float | None = None
    ) -> _R:
        """The reply to ``command``, as ``expected``; errors become typed exceptions."""
        reply = await self._next_event(self._budget(command), timeout)
        if isinstance(reply, ConnectionClosed):
            self._abort()
            raise ConnectionFailed("the server closed the connection")
        if isinstance(reply, ErrorReply):
            if self.closed:
                self._writer.close()
            raise ServerError(reply.status, reply.text)
        if not isinstance(reply, expected):  # pragma: no cover - the codec types replies
            self._abort()
            raise ProtocolViolation(f"unexpected reply {reply!r}")
        if isinstance(reply, Capabilities | SendReady):
            # A lying MAX_PAYLOAD must not raise how much of a reply we are willing to hold.
            self._conn.max_payload = min(self._conn.max_payload, LARGEST_PAYLOAD)
        return reply

    def _violation(self, what: str) -> ProtocolViolation:
        """Close the connection and describe the lie (for the caller to raise)."""
        self._abort()
        return ProtocolViolation(what)

    # --- the opening handshake and the server's key ----------------------------

    @property
    def server_key(self) -> PublicKey:
        """The server's signing key, as pinned (or as first seen in ``CAPA``)."""
        key = self._pinned_server_key or (self.capabilities and self.capabilities.server_key)
        if not key:
            raise ClientError("the server's key is not known yet")
        return key

    async def _start(self) -> None:
        greeting = await self._next_event()
        if isinstance(greeting, ErrorReply):  # e.g. 421 too many connections, told why
            self._abort()
            raise ServerError(greeting.status, greeting.text)
        if not isinstance(greeting, Greeting):
            self._abort()
            raise ConnectionFailed("the server closed the connection before greeting")
        if "rune/1" not in greeting.versions:
            self._abort()
            raise ClientError(f"the server speaks {', '.join(greeting.versions)}, not rune/1")
        self.greeting = greeting
        self.capabilities = await self._exchange(Capa(), Capabilities)
        self._check_server_key(self.capabilities.server_key, "CAPA")

    def _check_server_key(self, offered: PublicKey, where: str) -> None:
        """Every server key the server presents must be the pinned one and CAPA's (§3.3).

        A mismatch ends the session: a server that changes its key is not to be used.
        """
        pinned = self._pinned_server_key
        if pinned is not None and pinned != offered:
            self._abort()
            raise ServerKeyChanged(pinned.fingerprint_text(), offered.fingerprint_text())
        announced = self.capabilities.server_key if self.capabilities else None
        if announced is not None and announced != offered:
            raise self._violation(f"the server's key in its {where} differs from CAPA's")
