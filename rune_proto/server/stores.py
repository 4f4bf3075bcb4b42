"""One factory that opens the store ``serve`` uses: SQLite in the data directory, or
PostgreSQL at a ``postgresql://`` URL (dburl.py says which).

The PostgreSQL code, and its driver, is imported here only when a URL asks for it, so
a server on SQLite never loads asyncpg.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from ..keys import Identity
from .config import ServerConfig
from .dburl import Location
from .diskspace import Reserve
from .store import SQLiteStore, Store


class ServedStore(Store, Protocol):
    """What ``serve`` needs beyond :class:`Store`: start the pass, run the expiry."""

    def begin(self) -> None: ...

    async def expire(self, max_age: float) -> int: ...

    async def expire_every(self, max_age: float, interval: float) -> None: ...


async def open_store(
    location: Location,
    config: ServerConfig,
    identity: Identity,
    clock: Callable[[], float] = time.time,
) -> ServedStore:
    """The store at ``location``, opened (and its schema created or upgraded).

    On PostgreSQL the chunks are sealed at rest under a key derived from the server
    identity (pg/chunks.py): every node holds the same identity, so the same key.

    On SQLite a disk reserve in the data directory keeps DELETE possible on a full
    disk (diskspace.py); PostgreSQL's disk is the database server's, not ours.
    """
    if location.url is not None:
        from .pg.chunks import Seal
        from .pg.store import PgStore  # asyncpg only for PostgreSQL

        return await PgStore.open(
            location.url,
            seal=Seal.from_identity(identity.private_bytes()),
            order_window=config.order_window,
            clock=clock,
            throttle_window=config.throttle_window,
        )
    reserve = Reserve(location.path.parent, config.disk_reserve)
    return await SQLiteStore.open(
        location.path,
        order_window=config.order_window,
        reserve=reserve,
        clock=clock,
        throttle_window=config.throttle_window,
    )
