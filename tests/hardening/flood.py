"""A connection flood against a real rune-server, from several 127.0.0.x sources.

Each of the flood's workers holds one hostile connection of one kind and, when the
server closes it, opens another (paced, and only until the flood is stopped):

- ``bare``: TCP that never sends a ClientHello;
- ``half``: a ClientHello, then silence (the handshake is never finished);
- ``noop``: a TLS session that never logs in and sends NOOP now and then.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Iterable

from .rawlink import client_context

CONNECT_TIMEOUT = 10.0
NOOP_INTERVAL = 1.0  # how often an idle session says NOOP
REOPEN_PAUSE = 1.0  # a worker's pause before it opens its next connection
KINDS = ("bare", "half", "noop")


def client_hello() -> bytes:
    """The first flight of a real TLS client, to send and then leave unanswered."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_side=False)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


class Flood:
    """Workers holding hostile connections; ``counts`` says what happened to them."""

    def __init__(self, host: str, port: int, sources: Iterable[str]) -> None:
        self.host = host
        self.port = port
        self.sources = list(sources)
        self.counts: collections.Counter[str] = collections.Counter()
        self.open_now = 0  # connections the server has accepted and not closed yet
        self.started = 0  # workers whose first connection is in place (or failed)
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._hello = client_hello()

    def start(self, **mix: int) -> None:
        """``start(bare=60, half=40, noop=270)``: that many workers of each kind."""
        index = 0
        for kind in KINDS:
            for _ in range(mix.get(kind, 0)):
                source = self.sources[index % len(self.sources)]
                self._workers.append(asyncio.create_task(self._worker(kind, source)))
                index += 1

    @property
    def workers(self) -> int:
        return len(self._workers)

    async def wait_started(self, timeout: float) -> None:
        """Until every worker's first connection is in place (bounded)."""
        async with asyncio.timeout(timeout):
            while self.started < len(self._workers):
                await asyncio.sleep(0.05)

    @property
    def attempts(self) -> int:
        return sum(n for what, n in self.counts.items() if what.endswith(("opened", "connected")))

    async def wait_churn(self, reopened: int, timeout: float) -> None:
        """Until workers have opened ``reopened`` connections after their first (bounded)."""
        async with asyncio.timeout(timeout):
            while self.attempts < len(self._workers) + reopened:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _worker(self, kind: str, source: str) -> None:
        first = True
        while not self._stop.is_set():
            await self._hold(kind, source, first)
            first = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REOPEN_PAUSE):
                    await self._stop.wait()

    async def _hold(self, kind: str, source: str, first: bool) -> None:
        """One connection of ``kind``, held until the server closes it."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=client_context() if kind == "noop" else None,
                    local_addr=(source, 0),
                )
        except (OSError, TimeoutError):
            self.counts[f"{kind} not connected"] += 1
            if first:
                self.started += 1
            return
        self.counts[f"{kind} opened"] += 1
        self.open_now += 1
        try:
            if kind == "noop":
                await self._idle_session(reader, writer, first)
            else:
                if kind == "half":
                    writer.write(self._hello)
                if first:
                    self.started += 1
                with contextlib.suppress(OSError):
                    while await reader.read(65536):
                        pass
                self.counts[f"{kind} closed by the server"] += 1
        finally:
            self.open_now -= 1
            writer.transport.abort()

    async def _idle_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bool
    ) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                greeting = await reader.readline()
        except (OSError, TimeoutError):
            greeting = b""
        if first:
            self.started += 1
        if not greeting.startswith(b"HOWDY"):
            self.counts[f"noop refused: {greeting[:24]!r}"] += 1
            return
        self.counts["noop greeted"] += 1
        while not self._stop.is_set():
            try:
                writer.write(b"NOOP\r\n")
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    line = await reader.readline()
            except (OSError, TimeoutError):
                line = b""
            if not line.startswith(b"200"):
                self.counts[f"noop closed: {line[:24]!r}"] += 1
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(NOOP_INTERVAL):
                    await self._stop.wait()
