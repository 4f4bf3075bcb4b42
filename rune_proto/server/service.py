"""The asyncio TLS server: one task per connection, driving the core state machine.

Implicit TLS from the first byte; each connection is greeted, then read → parse →
handle → reply, one command at a time (see link.py, which also holds the idle and
login timeouts and the failure budget). The limits here: connection slots, counted
from accept with the TLS handshake included (see admission.py; refused with ``421``
instead of the greeting, or closed before TLS under a flood) and a graceful shutdown.
Logs carry counts and codes only: no addresses, no IPs, no message data, and an
internal error logs code locations but not its message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import socket
import sqlite3
import ssl
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ..keys import Identity
from .acceptor import Acceptor, open_listeners
from .admission import (
    ACCEPT_BACKLOG,
    Admission,
    Limits,
    RateLimitedLog,
    Ticket,
    Verdict,
    fit_limits,
    raise_descriptor_limit,
)
from .budget import MemoryBudget, return_freed_memory_to_os
from .closing import CLOSE_TIMEOUT, refuse
from .config import ServerConfig
from .dburl import Location
from .eventloop import running_loop_name
from .link import Link, log_bug
from .metrics import start_metrics
from .notices import start_notifier
from .notifier import MailNotifier
from .reporting import metrics_text, report_counts
from .session import Services
from .store import StoreError
from .stores import open_store

log = logging.getLogger("rune_proto.server")

EXPIRY_INTERVAL = 3600.0  # seconds between two checks for messages past max_age_days
SHUTDOWN_GRACE = 30.0  # how long in-flight commands may run after SIGTERM
# How long the event loop's thread may keep the GIL while another thread waits for it
# (Python's default: 5 ms). The store thread needs it back after each SQLite call,
# and under load the loop never blocks to hand it over: at 5 ms a group commit of
# eight messages took 14 ms (p50) to 60 ms (p90) instead of 2-6 ms, and every 202
# in it waited that long (measured with a busy loop thread; see docs/performance.md).
SWITCH_INTERVAL = 0.001
# asyncio's warnings (accept() out of descriptors, above all) at most once per this
# many seconds each, with a count of the ones left out.
_asyncio_warnings = RateLimitedLog()


class RuneServer:
    """Accepts TLS connections and serves each with a :class:`~.link.Link`."""

    def __init__(self, services: Services, context: ssl.SSLContext, limits: Limits) -> None:
        self.services = services
        self._context = context
        self.admission = Admission(limits, clock=asyncio.get_running_loop().time)
        self._flood_log = RateLimitedLog()
        self._listeners: list[socket.socket] = []
        self._acceptors: list[Acceptor] = []
        self._stopping: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # Connections in their TLS handshake, and the handshakes being stopped.
        self._handshaking: set[asyncio.Task[Any]] = set()
        self._halted: set[asyncio.Task[Any]] = set()
        self._links: set[Link] = set()
        self.budget = MemoryBudget(services.config.memory_budget)
        self.stats: collections.Counter[str] = collections.Counter()

    @property
    def stopping(self) -> asyncio.Future[None]:
        if self._stopping is None:
            raise RuntimeError("the server was not started")
        return self._stopping

    async def start(
        self, host: str, port: int, listeners: list[socket.socket] | None = None
    ) -> tuple[str, int]:
        """Listen; returns the bound address (``port=0`` picks a free port).

        ``listeners``: sockets already listening (a worker's, shared with the others:
        workers.py); stopping closes this process's copies only.
        """
        self._stopping = asyncio.get_running_loop().create_future()
        # Plain TCP, upgraded in _accept: a connection counts from accept, not from the
        # end of a handshake the peer may never finish.
        if listeners is None:
            listeners = await open_listeners(host, port, ACCEPT_BACKLOG)
        self._listeners = listeners
        self._acceptors = [
            Acceptor(sock, self._on_socket, _asyncio_warnings) for sock in self._listeners
        ]
        bound = self._listeners[0].getsockname()
        return str(bound[0]), int(bound[1])

    def stop(self) -> None:
        """Stop accepting; idle connections get 421, busy ones finish their command first,
        and connections still in their TLS handshake are closed.

        A second call (a second Ctrl-C) aborts whatever is still open.
        """
        for acceptor in self._acceptors:
            acceptor.close()
        for sock in self._listeners:
            sock.close()
        if not self.stopping.done():
            self.stopping.set_result(None)
            for link in self._links:
                link.stop_waiting()
            for handshake in list(self._handshaking):  # nobody greeted yet
                self._halt(handshake)
            return
        self._abort_all()

    def _abort_all(self) -> None:
        """Drop every connection (not task.cancel(): asyncio's stream callback logs that)."""
        for handshake in list(self._handshaking):
            self._halt(handshake)
        for writer in self._writers:
            writer.transport.abort()

    def _halt(self, handshake: asyncio.Task[Any]) -> None:
        """Stop a connection in its TLS handshake (see :meth:`_handshake`)."""
        if handshake not in self._halted:
            self._halted.add(handshake)
            handshake.cancel()

    async def watch_holds(self) -> None:
        """End the sessions of accounts an operator blocked or deleted (admin.py).

        Reads one row every ``admin_poll_interval`` seconds (a primary-key lookup on
        the store thread, a few microseconds), and the ``holds`` table only when that
        row changed: the CLI may be another process, the database is what we share.
        """
        store, config = self.services.store, self.services.config
        seen: int | None = None
        while not self.stopping.done():
            try:
                current = await store.holds_generation()
                if seen is not None and current != seen:
                    self._end_held_sessions(await store.held())
                seen = current
            except (sqlite3.Error, StoreError, OSError) as exc:
                log.warning("reading the account holds failed (%s)", type(exc).__name__)
            await asyncio.sleep(config.admin_poll_interval)

    def _end_held_sessions(self, held: dict[str, str]) -> None:
        self.services.receiver_keys.clear()  # a deleted account's key must not stay
        ended = 0
        for link in self._links:
            kind = held.get(link.address or "")
            if kind is not None:
                link.end_session(f"account {kind}")
                ended += 1
        log.info("account holds changed: %d sessions ended", ended)

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
        counts = self.admission.counts
        log.info(
            "stopped; %d connections, %d refused, %d closed before TLS, %d displaced,"
            " %d failed handshakes; replies %s",
            stats["connections"],
            stats["refused"],
            counts["dropped"],
            counts["evicted"],
            stats["handshake failed"],
            codes or "none",
        )

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def _on_socket(self, conn: socket.socket, peer: object) -> None:
        """Judge an accepted socket at once: a dropped one never gets a transport."""
        verdict, ticket = self.admission.arrive(peer)
        if verdict is Verdict.DROP:
            self._flood_log.warning("connection flood: connections closed before TLS")
            conn.close()
            self.admission.socket_closed()
            return
        task = asyncio.create_task(self._attach(conn, verdict, ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(self, conn: socket.socket, verdict: Verdict, ticket: Ticket | None) -> None:
        """TLS on the accepted socket within ``handshake_timeout``; once it is done the
        stream protocol starts :meth:`_accept` in a task. On failure the socket is closed.

        TLS is the transport's protocol from its first read (not plain, then
        ``start_tls``): uvloop reads as soon as a transport exists, and a ClientHello
        read as plain bytes would be lost to the handshake. A connection displaced (or
        dropped) during its handshake, or still in it when the server stops, is stopped
        by cancelling this task: the loop then aborts the half-made TLS transport.
        """
        task = asyncio.current_task()
        assert task is not None
        if ticket is not None:
            ticket.evict = lambda: self._halt(task)
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(
            reader, lambda r, w: self._accept(r, w, verdict, ticket)
        )
        self._handshaking.add(task)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self._context,
                ssl_handshake_timeout=self.services.config.handshake_timeout,
            )
        except asyncio.CancelledError:
            if task not in self._halted:
                self._release(verdict, ticket)
                raise
            task.uncancel()
            self._release(verdict, ticket)
        except (OSError, TimeoutError, EOFError):  # reset, timeout; ssl.SSLError is an OSError
            self.stats["handshake failed"] += 1
            self._release(verdict, ticket)
        finally:
            self._handshaking.discard(task)
            self._halted.discard(task)

    def _release(self, verdict: Verdict, ticket: Ticket | None) -> None:
        """The connection is over: give back what it held."""
        if ticket is not None:
            # Its evict callback refers to the link (and the link to the ticket): without
            # this cycle break a finished link, buffers and all, waits for the cyclic GC.
            ticket.evict = _ignore
            if ticket.evicted:
                self._flood_log.warning("connection flood: pre-login connections displaced")
            self.admission.leave(ticket)
        if verdict is Verdict.REFUSE:
            self.admission.refused()
        self.admission.socket_closed()

    async def _accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        verdict: Verdict,
        ticket: Ticket | None,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.stopping.done() or ticket is None:
                if ticket is not None:  # being told 421 already: nothing left to displace
                    ticket.evict = _ignore
                reason = "server shutting down" if self.stopping.done() else "too many connections"
                self.stats["refused"] += 1
                await refuse(reader, writer, reason, self.stopping.done())
                return
            self.stats["connections"] += 1
            link = Link(self, reader, writer, task, ticket)
            ticket.evict = link.evict
            self._links.add(link)
            try:
                await link.run()
            finally:
                self._links.discard(link)
        finally:
            self._release(verdict, ticket)
            self._tasks.discard(task)
            self._writers.discard(writer)


def _ignore() -> None:
    """The evict callback of a connection that has nothing left to give up."""


def _hangup() -> None:
    """SIGHUP is ignored, never fatal (its default): the config is read at start only."""
    log.info("SIGHUP ignored: the config is read at start; restart to apply changes")


def quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's default handler prints transports (peer addresses); this one does not."""
    exc = context.get("exception")
    message = str(context.get("message", "asyncio error"))
    if isinstance(exc, Exception) and not isinstance(exc, OSError):
        log_bug(f"asyncio ({message})", exc)
    else:
        _asyncio_warnings.warning(f"{message}{f' ({type(exc).__name__})' if exc else ''}")


async def serve(
    config: ServerConfig,
    identity: Identity,
    context: ssl.SSLContext,
    location: Location,
    host: str,
    port: int,
    ready: Callable[[str, int], None],
    listeners: list[socket.socket] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully (see :meth:`RuneServer.stop`).

    ``listeners``: listening sockets to serve on instead of binding ``host:port``.
    """
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_exception_handler)
    return_freed_memory_to_os()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL))
    store = await open_store(location, config, identity)
    workers = min(4, os.cpu_count() or 1)
    crypto = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rune-crypto")
    signals = (signal.SIGINT, signal.SIGTERM)
    watcher: asyncio.Task[None] | None = None
    notifier: MailNotifier | None = None
    try:
        descriptors = raise_descriptor_limit()
        limits = fit_limits(
            config.max_connections,
            config.login_reserved_connections,
            config.max_anonymous_per_source,
            descriptors,
        )
        notifier = await start_notifier(location.url, identity)
        services = Services(config, identity, store, crypto, notifier=notifier)
        server = RuneServer(services, context, limits)
        bound = await server.start(host, port, listeners)
        for signum in signals:
            loop.add_signal_handler(signum, server.stop)
        log.info(
            "serving; registration %s, %d connections at most (%d before login, %d per"
            " source), descriptor limit %d, event loop %s",
            config.registration,
            limits.slots,
            limits.anonymous,
            limits.per_source,
            descriptors,
            running_loop_name(),
        )
        if limits.slots < config.max_connections:
            log.warning(
                "max_connections lowered to %d to fit the descriptor limit (%d open sockets)",
                limits.slots,
                limits.sockets,
            )
        loop.add_signal_handler(signal.SIGHUP, _hangup)
        watcher = loop.create_task(server.watch_holds())
        metrics = None
        if config.metrics_port:
            metrics = await start_metrics(
                config.metrics_bind, config.metrics_port, partial(metrics_text, server)
            )
            log.info("metrics on http://%s:%d/metrics", config.metrics_bind, config.metrics_port)
        expirer = asyncio.create_task(store.expire_every(config.max_age, EXPIRY_INTERVAL))
        reporter = None
        if config.stats_interval > 0:
            reporter = asyncio.create_task(report_counts(server, config.stats_interval))
        store.begin()
        ready(*bound)
        await server.wait_stopped()
        expirer.cancel()
        if reporter is not None:
            reporter.cancel()
        if metrics is not None:
            metrics.close()
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.wait((watcher,))
        for signum in (*signals, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        crypto.shutdown(wait=True)
        if notifier is not None:
            await notifier.close()
        await store.close()
        sys.setswitchinterval(switch_interval)
