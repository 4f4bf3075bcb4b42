"""The asyncio TLS server: one task per connection, driving the core state machine.

Implicit TLS from the first byte; each connection is greeted, then read → parse →
handle → reply, one command at a time. The limits live here: the idle timeout (a
*complete* line must arrive within it, so a client dribbling bytes is still cut
off), the connection cap (refused with ``421`` instead of the greeting), and the
failure budget (``429``). Logs carry counts and codes only: no addresses, no IPs,
no message data, and an internal error logs code locations but not its message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import ssl
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import status
from ..connection import Connection, Role, State
from ..errors import RemoteProtocolError
from ..events import (
    NEED_DATA,
    Command,
    ConnectionClosed,
    ErrorReply,
    Event,
    Greeting,
    Reply,
    Retrieved,
)
from ..keys import Identity
from ..wire import format_reply
from .config import ServerConfig
from .session import VERSIONS, Services, Session, error
from .store import SQLiteStore

log = logging.getLogger("rune_proto.server")

READ_CHUNK = 64 * 1024
# A buffered line at least this long is parsed (base64-decoded) on a worker thread,
# and a RETRIEVE reply this large is encoded there: ~10 ms per MiB on the loop otherwise.
OFFLOAD_CODEC_BYTES = 1024 * 1024
CLOSE_TIMEOUT = 5.0  # for the peer's TLS close_notify, then the socket is just dropped
SHUTDOWN_CLOSE_TIMEOUT = 1.0  # the same while stopping, so exit is not held up by peers
SHUTDOWN_GRACE = 30.0  # how long in-flight commands may run after SIGTERM
# Before closing, what the peer still sends is read and dropped until it pauses this
# long, or for LINGER_MAX at most (see _linger).
LINGER_QUIET = 0.2
LINGER_MAX = 2.0


class _Gone(Exception):
    """The peer went away, or stopped reading; nothing more can be sent."""


def log_bug(where: str, exc: BaseException) -> None:
    """A traceback without the exception's message, which may hold user data."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "internal error in %s\nTraceback (most recent call last):\n%s%s",
        where,
        frames,
        type(exc).__name__,
    )


class RuneServer:
    """Accepts TLS connections and serves each with a :class:`_Link`."""

    def __init__(self, services: Services, context: ssl.SSLContext) -> None:
        self.services = services
        self._context = context
        self._server: asyncio.Server | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.active = 0
        self.stats: collections.Counter[str] = collections.Counter()

    @property
    def stopping(self) -> asyncio.Future[None]:
        if self._stopping is None:
            raise RuntimeError("the server was not started")
        return self._stopping

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound address (``port=0`` picks a free port)."""
        config = self.services.config
        self._stopping = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(
            self._accept,
            host,
            port,
            ssl=self._context,
            ssl_handshake_timeout=min(config.idle_timeout, 60.0),
            ssl_shutdown_timeout=CLOSE_TIMEOUT,
        )
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    def stop(self) -> None:
        """Stop accepting; idle connections get 421, busy ones finish their command first.

        A second call (a second Ctrl-C) aborts whatever is still open.
        """
        if self._server is not None:
            self._server.close()
        if not self.stopping.done():
            self.stopping.set_result(None)
            return
        self._abort_all()

    def _abort_all(self) -> None:
        """Drop every connection (not task.cancel(): asyncio's stream callback logs that)."""
        for writer in self._writers:
            writer.transport.abort()

    async def wait_stopped(self) -> None:
        await self.stopping
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE)
            if late:
                self._abort_all()
                await asyncio.wait(late, timeout=CLOSE_TIMEOUT)
        stats = self.stats
        codes = " ".join(f"{k}×{v}" for k, v in sorted(stats.items()) if k.isdigit())
        log.info(
            "stopped; %d connections, %d refused; replies %s",
            stats["connections"],
            stats["refused"],
            codes or "none",
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.stopping.done() or self.active >= self.services.config.max_connections:
                reason = "server shutting down" if self.stopping.done() else "too many connections"
                self.stats["refused"] += 1
                await _refuse(reader, writer, reason, self.stopping.done())
                return
            self.active += 1
            self.stats["connections"] += 1
            try:
                await _Link(self, reader, writer).run()
            finally:
                self.active -= 1
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)


async def _refuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reason: str, stopping: bool
) -> None:
    """Sent in place of the greeting (as SMTP does), so the client is told, not left hanging."""
    writer.write(format_reply(error(status.CLOSING, reason)))
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.drain()
    except (OSError, TimeoutError):
        pass
    await _close(reader, writer, stopping)


async def _linger(reader: asyncio.StreamReader, limit: float) -> None:
    """Read and drop what the peer still sends: until EOF, a pause, or ``limit`` seconds.

    Closing a socket that holds unread received data makes the kernel send a TCP reset,
    and a reset makes the peer's kernel discard what it received but has not read yet:
    our last replies. A client that pipelined commands past a closing one (a 429, a
    412, a QUIT) would lose them, even the ``202`` of a MESSAGE that was stored.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(min(LINGER_QUIET, remaining)):
                if not await reader.read(READ_CHUNK):
                    return
        except (OSError, TimeoutError):
            return


async def _close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopping: bool
) -> None:
    """Linger (see :func:`_linger`), then close TLS and the socket, bounded in time."""
    if not writer.transport.is_closing():
        await _linger(reader, min(LINGER_MAX, SHUTDOWN_CLOSE_TIMEOUT) if stopping else LINGER_MAX)
    timeout = SHUTDOWN_CLOSE_TIMEOUT if stopping else CLOSE_TIMEOUT
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()


class _Link:
    """One client connection: bytes in and out, limits, and its :class:`Session`."""

    def __init__(
        self, server: RuneServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._server = server
        self._reader = reader
        self._writer = writer
        self._config = server.services.config
        self._conn = Connection(
            Role.SERVER, max_line=self._config.max_line, max_payload=self._config.max_payload
        )
        self._session = Session(server.services, self._conn)
        self._loop = asyncio.get_running_loop()
        self._deadline = 0.0
        self._failures = 0
        self._newline = False  # whether the last chunk read held the end of a line

    async def run(self) -> None:
        try:
            await self._send(Greeting(VERSIONS, self._config.welcome))
            await self._serve()
        except _Gone:
            pass
        except Exception as exc:
            log_bug("the connection loop", exc)
            self._server.stats["500"] += 1
            self._writer.write(format_reply(error(status.INTERNAL_ERROR)))
        finally:
            await _close(self._reader, self._writer, self._server.stopping.done())

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
                data = await self._read()
                if data is None:
                    return
                self._newline = b"\n" in data
                conn.receive_data(data)
            elif isinstance(event, ConnectionClosed):
                return
            elif isinstance(event, Command):
                await self._send(await self._handle(event))
            else:
                raise AssertionError(f"unexpected event {event!r}")

    async def _handle(self, command: Command) -> Reply:
        try:
            return await self._session.handle(command)
        except Exception as exc:
            log_bug(f"the {command.verb} handler", exc)
            return error(status.INTERNAL_ERROR)

    async def _next_event(self) -> Event:
        if self._newline and self._conn.buffered >= OFFLOAD_CODEC_BYTES:
            self._newline = False
            return await self._loop.run_in_executor(
                self._server.services.crypto, self._conn.next_event
            )
        return self._conn.next_event()

    async def _read(self) -> bytes | None:
        """The next chunk; ``b""`` at EOF; None after answering a timeout or shutdown.

        On shutdown a connection between commands is told 421 at once, but one in the
        middle of a command line (say a long MESSAGE upload) may finish sending it.
        """
        stopping = self._server.stopping
        read: asyncio.Future[bytes] | None = None
        while not (stopping.done() and self._conn.buffered == 0):
            remaining = self._deadline - self._loop.time()
            if remaining <= 0:
                break
            read = read or asyncio.ensure_future(self._reader.read(READ_CHUNK))
            waiters = (read,) if stopping.done() else (read, stopping)
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if read.done():
                try:
                    return read.result()
                except OSError:  # reset, or a TLS error (ssl.SSLError is an OSError)
                    return b""
        if read is not None:
            read.cancel()
            await asyncio.wait((read,))  # so that the reader is free for _linger
        reason = "server shutting down" if stopping.done() else "idle timeout"
        await self._send(error(status.CLOSING, reason))
        return None

    async def _send(self, reply: Reply) -> None:
        if isinstance(reply, ErrorReply):
            self._failures += 1
            if self._failures > self._config.max_failures and not status.closes(reply.status):
                reply = error(status.TOO_MANY_FAILURES)
            self._server.stats[str(reply.status)] += 1
        elif not isinstance(reply, Greeting):
            self._server.stats[str(reply.code)] += 1
        if isinstance(reply, Retrieved) and len(reply.blob) >= OFFLOAD_CODEC_BYTES:
            data = await self._loop.run_in_executor(
                self._server.services.crypto, self._conn.send, reply
            )
        else:
            data = self._conn.send(reply)
        self._writer.write(data)
        try:
            async with asyncio.timeout(self._config.idle_timeout):
                await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            # A peer that does not read gets nothing more, not even a TLS close_notify:
            # drop the connection now rather than wait for a flush that cannot happen.
            self._writer.transport.abort()
            raise _Gone from exc
        self._deadline = self._loop.time() + self._config.idle_timeout


def quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's default handler prints transports (peer addresses); this one does not."""
    exc = context.get("exception")
    message = str(context.get("message", "asyncio error"))
    if isinstance(exc, Exception) and not isinstance(exc, OSError):
        log_bug(f"asyncio ({message})", exc)
    else:
        log.warning("%s%s", message, f" ({type(exc).__name__})" if exc else "")


async def serve(
    config: ServerConfig,
    identity: Identity,
    context: ssl.SSLContext,
    database: Path,
    host: str,
    port: int,
    ready: Callable[[str, int], None],
) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully (see :meth:`RuneServer.stop`)."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_exception_handler)
    store = await SQLiteStore.open(database)
    workers = min(4, os.cpu_count() or 1)
    crypto = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rune-crypto")
    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        server = RuneServer(Services(config, identity, store, crypto), context)
        bound = await server.start(host, port)
        for signum in signals:
            loop.add_signal_handler(signum, server.stop)
        log.info(
            "serving; registration %s, %d connections at most",
            config.registration,
            config.max_connections,
        )
        ready(*bound)
        await server.wait_stopped()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        crypto.shutdown(wait=True)
        await store.close()
