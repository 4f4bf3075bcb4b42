"""WAL checkpoints off the commit path: a second connection on its own thread.

SQLite's automatic checkpoint runs inside the commit that crosses its threshold and
held that commit, and every ``202`` waiting on it, for 50–70 ms every ~140 messages.
The store's own connection keeps it only as a far-out safety valve
(``AUTOCHECKPOINT_PAGES`` in store.py); this runs a PASSIVE checkpoint after every
``CHECKPOINT_EVERY`` committed messages instead, while commits go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("rune_proto.server")

CHECKPOINT_EVERY = 64  # messages committed between two background checkpoints


class Checkpointer:
    """PASSIVE WAL checkpoints on their own thread and connection, off the commit path.

    A PASSIVE checkpoint takes no lock that a writer needs: commits carry on while it
    copies pages into the database file. Its failures are logged and otherwise
    harmless (the WAL is still the durable copy); the next one catches up.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rune-checkpoint")
        self._db: sqlite3.Connection | None = None
        self._running: asyncio.Future[None] | None = None
        self._since = 0  # messages committed since the last checkpoint started
        self._paused = False

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No checkpoint and no open connection meanwhile (the order pass needs the
        database to itself for SQLite to delete the WAL when it closes)."""
        self._paused = True
        try:
            if self._running is not None:
                await asyncio.wait((self._running,))
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_db)
            yield
        finally:
            self._paused = False

    def committed(self, count: int) -> None:
        self._since += count
        if self._since >= CHECKPOINT_EVERY and self._running is None and not self._paused:
            self._since = 0
            running = asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
            running.add_done_callback(self._finished)
            self._running = running

    def _checkpoint(self) -> None:
        try:
            if self._db is None:
                self._db = sqlite3.connect(self._path, isolation_level=None)
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("background checkpoint failed (%s)", type(exc).__name__)

    def _finished(self, running: asyncio.Future[None]) -> None:
        self._running = None
        if not running.cancelled() and running.exception() is not None:
            log.warning("background checkpoint failed (%s)", type(running.exception()).__name__)

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.wait((self._running,))
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_db)
        self._executor.shutdown(wait=True)
