"""The asyncio TLS server: one task per connection, driving the core state machine.

Implicit TLS from the first byte; each connection is greeted, then read → parse →
handle → reply, one command at a time (see link.py, which also holds the idle timeout
and the failure budget). The limits here: the connection cap (refused with ``421``
instead of the greeting) and a graceful shutdown. Logs carry counts and codes only:
no addresses, no IPs, no message data, and an internal error logs code locations but
not its message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..keys import Identity
from .budget import MemoryBudget, return_freed_memory_to_os
from .config import ServerConfig
from .link import CLOSE_TIMEOUT, Link, log_bug, refuse
from .session import Services
from .store import SQLiteStore

log = logging.getLogger("rune_proto.server")

SHUTDOWN_GRACE = 30.0  # how long in-flight commands may run after SIGTERM
# How long the event loop's thread may keep the GIL while another thread waits for it
# (Python's default: 5 ms). The store thread needs it back after each SQLite call,
# and under load the loop never blocks to hand it over: at 5 ms a group commit of
# eight messages took 14 ms (p50) to 60 ms (p90) instead of 2-6 ms, and every 202
# in it waited that long (measured with a busy loop thread; see docs/performance.md).
SWITCH_INTERVAL = 0.001


class RuneServer:
    """Accepts TLS connections and serves each with a :class:`~.link.Link`."""

    def __init__(self, services: Services, context: ssl.SSLContext) -> None:
        self.services = services
        self._context = context
        self._server: asyncio.Server | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._links: set[Link] = set()
        self.active = 0
        self.budget = MemoryBudget(services.config.memory_budget)
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
            for link in self._links:
                link.stop_waiting()
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
                await refuse(reader, writer, reason, self.stopping.done())
                return
            self.active += 1
            self.stats["connections"] += 1
            link = Link(self, reader, writer, task)
            self._links.add(link)
            try:
                await link.run()
            finally:
                self._links.discard(link)
                self.active -= 1
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)


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
    return_freed_memory_to_os()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL))
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
        sys.setswitchinterval(switch_interval)
