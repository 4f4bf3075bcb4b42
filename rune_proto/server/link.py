"""One client connection: read → parse → handle → reply, with its limits.

The idle timeout lives here (a *complete* line must arrive within it, so a client
dribbling bytes is still cut off), and so does the login timeout (before login, the
connection closes ``login_timeout`` after accept, however busy it is), as do the
failure budget (``429``) and the way a connection is closed (linger, then TLS close,
bounded in time). Logs carry counts and codes only, and an internal error logs code
locations but not its message.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import status
from ..connection import Connection, Role, State
from ..errors import RemoteProtocolError
from ..events import (
    DISCARDED,
    NEED_DATA,
    Authenticated,
    Command,
    ConnectionClosed,
    Done,
    ErrorReply,
    Event,
    Greeting,
    ListMessages,
    NewMail,
    Reply,
    Retrieve,
    Retrieved,
    Wait,
    WaitEnded,
    WaitOver,
)
from ..wire import format_reply
from .budget import GRANT_STEP
from .closing import close_link
from .host import ServerHost
from .outbox import Gone as _Gone
from .outbox import Outbox
from .session import VERSIONS, ServerSession, error

if TYPE_CHECKING:
    from .admission import Ticket

log = logging.getLogger("rune_proto.server")

READ_CHUNK = 64 * 1024
# A buffered line at least this long is parsed (base64-decoded) on a worker thread:
# ~10 ms per MiB on the loop otherwise.
OFFLOAD_CODEC_BYTES = 1024 * 1024
# Each connection's free allowance (see budget.py): an unfinished line may hold this
# much, counting the chunk being read, before it is charged to the memory budget ...
FREE_INPUT = 2 * READ_CHUNK
# ... and a blob this large or larger is charged before it is read for RETRIEVE, and
# written in pieces of REPLY_PIECE bytes, each once the last has left the transport.
LARGE_REPLY = 64 * 1024
REPLY_PIECE = 256 * 1024


DISCARDED_TEXT = "no send in progress; message discarded"


# Why a waiting read was interrupted when the answer is the WAIT's, not a 421.
_NEW_MAIL = "new mail"
_WAIT_OVER = "wait over"


class _Woken:
    """Returned by a read that a WAIT's end interrupted (see Link._read)."""


_WOKEN = _Woken()


def log_bug(where: str, exc: BaseException) -> None:
    """A traceback without the exception's message, which may hold user data."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "internal error in %s\nTraceback (most recent call last):\n%s%s",
        where,
        frames,
        type(exc).__name__,
    )


class Link:
    """One client connection: bytes in and out, limits, and its :class:`ServerSession`.

    Reading is a plain ``await reader.read()``: no task and no ``asyncio.wait`` per
    chunk (they cost ~18 µs a read, two reads a message). The idle timeout and the
    server's shutdown interrupt a waiting read instead, by cancelling this link's task
    (see :meth:`_interrupt`); one timer per link watches the deadline.
    """

    def __init__(
        self,
        server: ServerHost,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any],
        ticket: Ticket,
    ) -> None:
        self._server = server
        self._ticket = ticket
        self._reader = reader
        self._writer = writer
        self._task = task
        self._config = server.services.config
        self._conn = Connection(
            Role.SERVER, max_line=self._config.max_line, max_payload=self._config.max_payload
        )
        self._session = ServerSession(server.services, self._conn, source=ticket.source)
        self._loop = asyncio.get_running_loop()
        self._deadline = 0.0
        self._timeout_reason = "idle timeout"  # what a read past the deadline is told
        self._watchdog: asyncio.TimerHandle | None = None
        self._reading = False  # awaiting the next chunk, and so interruptible
        self._interrupted: str | None = None  # why a read was interrupted
        self._failures = 0
        self._newline = False  # whether the last chunk read held the end of a line
        self._budget = server.budget
        self._input_charge = 0  # bytes of the budget charged for the unfinished line
        self._reply_charge = 0  # ... and for the large reply being produced or written
        self._awaiting_budget = False  # a read waits for budget (see _charge_input)
        self._held_budget = False  # whether it ever did
        self._ended: str | None = None  # why an operator ended the session (end_session)
        # WAIT (docs/protocol.md §10.7): mail stored for this address since login, the
        # last LIST or the last 280; whether a WAIT is being held; how to stop hearing.
        self._new_mail = False
        self._waiting = False
        self._unsubscribe: Callable[[], None] | None = None
        self._outbox = Outbox(writer, self._config.idle_timeout)  # replies held back

    async def run(self) -> None:
        try:
            await self._send(Greeting(VERSIONS, self._config.welcome))
            await self._serve()
        except _Gone:
            pass
        except Exception as exc:
            log_bug("the connection loop", exc)
            self._server.stats["500"] += 1
            self._outbox.write_held()
            self._writer.write(format_reply(error(status.INTERNAL_ERROR)))
        finally:
            self._outbox.write_held()
            if self._unsubscribe is not None:
                # and drop it: it holds this link (a cycle would keep the TLS buffers of
                # every finished connection until the garbage collector ran)
                self._unsubscribe()
                self._unsubscribe = None
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._budget.give_all(self)
            self._input_charge = self._reply_charge = 0
            # A displaced connection closes as briskly as on shutdown: its newcomer waits.
            hurry = self._server.stopping.done() or self._ticket.evicted
            await close_link(self._reader, self._writer, hurry)
            if self._held_budget:  # it freed large buffers: give them back to the OS
                self._budget.trim_soon()

    async def _serve(self) -> None:
        conn = self._conn
        while conn.state is not State.CLOSED:
            try:
                event = await self._next_event()
            except RemoteProtocolError as exc:
                if exc.fatal:
                    raise
                await self._send(ErrorReply(exc.status, str(exc)))
                continue
            if event is NEED_DATA:
                if self._waiting and self._new_mail:  # stored while we were busy
                    await self._end_wait()
                    continue
                data = await self._read()
                if data is None:
                    return
                if isinstance(data, _Woken):
                    await self._end_wait()
                    continue
                self._newline = b"\n" in data
                conn.receive_data(data)
            elif isinstance(event, ConnectionClosed):
                return
            elif isinstance(event, Wait):
                await self._wait()
            elif isinstance(event, Done):
                await self._end_wait()
            elif event is DISCARDED:  # the MESSAGE behind a refused bound SEND (§9.9)
                await self._send(error(status.BAD_SEQUENCE, DISCARDED_TEXT), failure=False)
            elif isinstance(event, Command):
                if self._ended is not None:  # not even a command already pipelined
                    await self._send(error(status.CLOSING, self._ended))
                    return
                if isinstance(event, ListMessages):
                    self._new_mail = False  # the listing shows what is there now
                await self._send(await self._handle(event))
            else:
                raise AssertionError(f"unexpected event {event!r}")

    async def _handle(self, command: Command) -> Reply:
        try:
            if isinstance(command, Retrieve):
                busy = await self._charge_reply(command)
                if busy is not None:
                    return busy
            reply = await self._session.handle(command)
        except _Gone:
            raise
        except Exception as exc:
            log_bug(f"the {command.verb} handler", exc)
            reply = error(status.INTERNAL_ERROR)
        if self._reply_charge:  # down to what the reply needs: nothing if small or 404
            large = isinstance(reply, Retrieved) and len(reply.blob) >= LARGE_REPLY
            need = len(reply.blob) + REPLY_PIECE if isinstance(reply, Retrieved) and large else 0
            if need < self._reply_charge:
                self._budget.give(self, self._reply_charge - need)
                self._reply_charge = need
            self._held_budget = self._held_budget or large
        return reply

    async def _wait(self) -> None:
        """Hold the WAIT: answer 280 now if mail came since, else read on (for DONE)
        until a notice or the lifetime interrupts the read. No task, no extra timer:
        the link's one watchdog now watches the wait's end instead of the idle time."""
        if not self._config.wait_seconds:  # not offered: as a server that never heard of it
            await self._send(error(status.SYNTAX_ERROR, "unknown command 'WAIT'"))
            return
        if self._new_mail:
            await self._end_wait()
            return
        self._waiting = True
        self._deadline = self._loop.time() + self._config.wait_lifetime
        self._timeout_reason = _WAIT_OVER
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = self._loop.call_at(self._deadline, self._watch)

    async def _end_wait(self) -> None:
        """Answer the WAIT: 280 if mail was stored since, else 281 (DONE or lifetime)."""
        self._waiting = False
        reply: Reply = NewMail() if self._new_mail else WaitOver()
        self._new_mail = False
        await self._send(reply)

    def _on_mail(self) -> None:
        """The notifier's callback: remember, and wake a waiting read at once."""
        self._new_mail = True
        if self._waiting:
            self._interrupt(_NEW_MAIL)

    def _release_reply(self) -> None:
        self._budget.give(self, self._reply_charge)
        self._reply_charge = 0

    async def _charge_reply(self, command: Retrieve) -> Reply | None:
        """Charge a RETRIEVE's blob to the budget before it is read: for the largest blob
        possible when that fits now (no extra query), else for its size (a query: ~8 ms
        for 15 MiB), waiting for it; 451 if no budget frees in time."""
        address = self._conn.address
        if address is None:
            return None  # not logged in: the session answers 401
        largest = self._config.max_payload + 64 * 1024 + REPLY_PIECE
        if self._budget.try_take(self, largest):
            self._reply_charge = largest
            return None
        size = await self._server.services.store.message_size(str(address), command.message_id)
        if size is None or size < LARGE_REPLY:
            return None
        stopping, timeout = self._server.stopping, self._config.idle_timeout
        refused = await self._budget.take_unless(self, size + REPLY_PIECE, stopping, timeout)
        if refused == "stopping":
            return error(status.CLOSING, "server shutting down")
        if refused is not None:
            return error(status.TRY_AGAIN, "server busy; try again")
        self._reply_charge = size + REPLY_PIECE
        if self._writer.transport.is_closing():  # the peer left while we waited
            self._release_reply()
            raise _Gone
        return None

    async def _charge_input(self) -> None:
        """Before a read, hold budget for what the unfinished line may reach after it.

        Waits (and so stops reading: TCP backpressure) while the budget is spent; the
        idle deadline interrupts the wait as it would the read. Surplus is given back,
        e.g. once a long line has been handled.
        """
        need = self._conn.buffered + READ_CHUNK - FREE_INPUT
        need = 0 if need <= 0 else -(-need // GRANT_STEP) * GRANT_STEP
        if need > self._input_charge:
            self._held_budget = self._awaiting_budget = True
            try:
                await self._budget.take(self, need - self._input_charge)
            finally:
                self._awaiting_budget = False
        elif need < self._input_charge:
            self._budget.give(self, self._input_charge - need)
        self._input_charge = need

    async def _next_event(self) -> Event:
        if self._newline and self._conn.buffered >= OFFLOAD_CODEC_BYTES:
            self._newline = False
            return await self._loop.run_in_executor(
                self._server.services.crypto, self._conn.next_event
            )
        return self._conn.next_event()

    async def _read(self) -> bytes | _Woken | None:
        """The next chunk; ``b""`` at EOF; None after answering a timeout or shutdown;
        ``_WOKEN`` when a WAIT ends by a notice or its lifetime.

        On shutdown a connection between commands is told 421 at once, but one in the
        middle of a command line (say a long MESSAGE upload) may finish sending it.
        """
        if self._conn.buffered == 0:  # between commands: nothing more is coming unasked
            await self._outbox.flush()
        reason = self._timeout_reason
        if self._server.stopping.done() and self._conn.buffered == 0:
            reason = "server shutting down"
        elif self._loop.time() < self._deadline:
            self._reading = True
            try:
                if self._input_charge or self._conn.buffered > FREE_INPUT - READ_CHUNK:
                    await self._charge_input()
                return await self._reader.read(READ_CHUNK)
            except OSError:  # reset, or a TLS error (ssl.SSLError is an OSError)
                return b""
            except asyncio.CancelledError:
                if self._interrupted is None:
                    raise
                self._task.uncancel()
                reason, self._interrupted = self._interrupted, None
            finally:
                self._reading = False
        if self._waiting and reason in (_NEW_MAIL, _WAIT_OVER):
            return _WOKEN
        await self._send(error(status.CLOSING, reason))
        return None

    def _interrupt(self, reason: str) -> None:
        """Stop a waiting read; it then answers 421 with ``reason`` (see :meth:`_read`)."""
        if self._reading and self._interrupted is None:
            self._interrupted = reason
            self._task.cancel()

    def evict(self) -> None:
        """A newcomer took this pre-login connection's slot: tell it 421 at once."""
        self._deadline = 0.0
        self._timeout_reason = "too many connections"
        self._interrupt(self._timeout_reason)

    @property
    def address(self) -> str | None:
        """The logged-in address, if any."""
        return None if self._conn.address is None else str(self._conn.address)

    def end_session(self, reason: str) -> None:
        """An operator blocked or deleted the account: 421 with ``reason`` now if the
        connection waits for a command, else right after the one in progress."""
        self._ended = self._timeout_reason = reason
        self._deadline = 0.0
        self._interrupt(reason)

    def stop_waiting(self) -> None:
        """The server is stopping: a connection waiting between commands is told so now,
        and so is one whose unfinished line waits for memory budget (it cannot finish)."""
        if self._conn.buffered == 0 or self._awaiting_budget:
            self._interrupt("server shutting down")

    def _watch(self) -> None:
        """The idle timer: interrupt a read waiting past the deadline, else look again."""
        self._watchdog = None
        remaining = self._deadline - self._loop.time()
        if remaining > 0:
            self._watchdog = self._loop.call_later(remaining, self._watch)
        else:
            self._interrupt(self._timeout_reason)

    async def _send(self, reply: Reply, *, failure: bool = True) -> None:
        """Answer; every error counts as a failure but the discarded MESSAGE's 402 (§9.9)."""
        if isinstance(reply, ErrorReply):
            self._failures += failure
            if self._failures > self._config.max_failures and not status.closes(reply.status):
                reply = error(status.TOO_MANY_FAILURES)
            self._server.stats[str(reply.status)] += 1
        elif not isinstance(reply, Greeting | WaitEnded):  # waits are not counted: §10.7
            self._server.stats[str(reply.code)] += 1
            if isinstance(reply, Authenticated) and self._unsubscribe is None:
                notifier = self._server.services.notifier
                self._unsubscribe = notifier.subscribe(str(reply.address), self._on_mail)
        writer = self._writer
        try:
            if isinstance(reply, Retrieved) and len(reply.blob) >= LARGE_REPLY:
                await self._outbox.flush()
                await self._write_pieces(reply)
            else:
                # More is read already (a pipelined command): answer it in the same write.
                more = bool(self._conn.buffered) and self._conn.state is not State.CLOSED
                await self._outbox.put(self._conn.send(reply), more_coming=more)
        except (OSError, TimeoutError) as exc:
            # A peer that does not read gets nothing more, not even a TLS close_notify:
            # drop the connection now rather than wait for a flush that cannot happen.
            writer.transport.abort()
            raise _Gone from exc
        self._deadline = self._next_deadline()
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)

    async def _write_pieces(self, reply: Retrieved) -> None:
        """A large reply piece by piece, each after the last has left (all within the
        idle timeout), so about one piece sits in the transport; then its charge is
        given back."""
        writer = self._writer
        try:
            async with asyncio.timeout(self._config.idle_timeout):
                for piece in self._conn.send_pieces(reply, REPLY_PIECE):
                    writer.write(piece)
                    await writer.drain()
        finally:
            self._release_reply()

    def _next_deadline(self) -> float:
        """Idle timeout from now; before login no later than accept + ``login_timeout``.

        NOOP and CAPA move the idle deadline but not the login one, so an anonymous
        connection cannot hold its slot for longer than it takes to log in.
        """
        ticket = self._ticket
        if ticket.evicted or self._ended is not None:
            return 0.0
        if not ticket.logged_in and self._conn.address is not None:
            self._server.admission.log_in(ticket)
        idle = self._loop.time() + self._config.idle_timeout
        if ticket.logged_in:
            self._timeout_reason = "idle timeout"
            return idle
        login = ticket.accepted + self._config.login_timeout
        self._timeout_reason = "login timeout" if login < idle else "idle timeout"
        return min(idle, login)
