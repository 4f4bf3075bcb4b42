"""Abuse-limit windows against a server whose clock the test moves (no sleeping for it).

The server runs in the test's event loop (real TLS, store and sessions on loopback);
only :attr:`Services.clock` and the store's clock are the test's. Both stores
(``store_kind``): SQLite, and PostgreSQL on the tests' private cluster.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rune_proto import status
from rune_proto.address import random_address
from rune_proto.envelope import Content
from rune_proto.events import ErrorReply, Listing, ListMessages, Registered, Roger
from rune_proto.keys import Identity
from rune_proto.server.admission import fit_limits
from rune_proto.server.config import DataDir, ServerConfig
from rune_proto.server.datadir import create_data_dir, load_identity, tls_context
from rune_proto.server.dburl import Location
from rune_proto.server.service import RuneServer
from rune_proto.server.session import Services
from rune_proto.server.stores import ServedStore, open_store
from tests.pg_tools import pg_rows

from .conftest import User
from .wire_client import WireClient

PASSPHRASE = "limit window test passphrase"
DOMAIN = "example"
WINDOW = 600


@dataclass
class Clock:
    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    host: str
    port: int
    clock: Clock
    store: ServedStore
    location: Location
    config: ServerConfig
    server_key: object

    def rows(self, sqlite_query: str, pg_query: str, *args: object) -> list[tuple[object, ...]]:
        """A query on the store's database, whichever it is."""
        if self.location.url is not None:
            return pg_rows(self.location.url, pg_query, *args)
        with sqlite3.connect(self.location.path) as db:
            rows = [tuple(row) for row in db.execute(sqlite_query, args)]
        db.close()
        return rows


@pytest.fixture
async def server(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[Server]:
    data = DataDir(tmp_path / "data")
    url = request.getfixturevalue("postgres").new_database() if store_kind != "sqlite" else ""
    config = ServerConfig(
        domain=DOMAIN, send_limit=2, send_window=WINDOW, order_window=3600, database=url
    )
    location = Location(data.database, url or None)
    await asyncio.to_thread(create_data_dir, data, config, PASSPHRASE, location)
    clock = Clock()
    identity = load_identity(data, PASSPHRASE)
    store = await open_store(location, config, identity, clock=clock)
    crypto = ThreadPoolExecutor(max_workers=2)
    services = Services(config, identity, store, crypto, clock=clock)
    limits = fit_limits(config.max_connections, 0, config.max_anonymous_per_source, 1024)
    rune = RuneServer(services, tls_context(data, PASSPHRASE), limits)
    host, port = await rune.start("127.0.0.1", 0)
    running = Server(host, port, clock, store, location, config, identity.public)
    try:
        yield running
    finally:
        rune.stop()
        await asyncio.wait_for(rune.wait_stopped(), timeout=15)
        crypto.shutdown(wait=True)
        await running.store.close()


def _register(server: Server) -> User:
    address, identity = random_address(DOMAIN), Identity.generate()
    with WireClient(server.host, server.port) as client:
        assert client.register(address, identity) == Registered(address)
    return address, identity


def _send(server: Server, alice: User, bob: User) -> object:
    with WireClient(server.host, server.port) as client:
        assert client.login(*alice, server.server_key).code == status.AUTHENTICATED  # type: ignore[arg-type]
        return client.send_message(*alice, bob[0], Content("s", "b"))


def _counters(server: Server) -> int:
    ((count,),) = server.rows("SELECT COUNT(*) FROM limits", "SELECT COUNT(*) FROM limits")
    assert isinstance(count, int)
    return count


async def test_a_new_window_lifts_the_send_limit_and_the_order_pass_forgets_old_counts(
    server: Server,
) -> None:
    alice = await asyncio.to_thread(_register, server)
    bob = await asyncio.to_thread(_register, server)
    for _ in range(2):
        assert await asyncio.to_thread(_send, server, alice, bob) == Roger()
    over = ErrorReply(status.SEND_LIMIT, status.default_text(status.SEND_LIMIT))
    assert await asyncio.to_thread(_send, server, alice, bob) == over
    server.clock.now += WINDOW  # the window has ended: the count starts again
    assert await asyncio.to_thread(_send, server, alice, bob) == Roger()
    assert await asyncio.to_thread(_send, server, alice, bob) == Roger()
    assert await asyncio.to_thread(_send, server, alice, bob) == over
    assert _counters(server) >= 1  # this window's count (and the registrations')
    server.clock.now += 2 * WINDOW
    await server.store.close()  # its order pass sweeps every ended window
    assert _counters(server) == 0
    server.store = await open_store(  # for the fixture's close
        server.location,
        server.config,
        load_identity(DataDir(server.location.path.parent), PASSPHRASE),
    )


DAY = 86400.0


async def _listed(server: Server, user: User) -> int:
    def count() -> int:
        with WireClient(server.host, server.port) as client:
            assert client.login(*user, server.server_key).code == status.AUTHENTICATED  # type: ignore[arg-type]
            listing = client.request(ListMessages())
            assert isinstance(listing, Listing)
            return len(listing.entries)

    return await asyncio.to_thread(count)


async def test_messages_expire_after_the_maximum_age_without_a_stored_time(
    server: Server,
) -> None:
    """max_age_days = 1: a message lives one to two days (rune_proto/server/expiry.py)."""
    alice = await asyncio.to_thread(_register, server)
    bob = await asyncio.to_thread(_register, server)
    assert await server.store.expire(DAY) == 0  # turned on: counting starts, nothing goes
    assert await asyncio.to_thread(_send, server, alice, bob) == Roger()  # the old one
    server.clock.now += DAY  # a new bucket: the old one is one bucket old, and stays
    assert await server.store.expire(DAY) == 0
    assert await _listed(server, bob) == 1
    server.clock.now += 0.5 * WINDOW  # the send limit's window is long past by now
    assert await asyncio.to_thread(_send, server, alice, bob) == Roger()  # the new one
    server.clock.now += DAY
    assert await server.store.expire(DAY) == 1  # the old one, two buckets old, goes
    assert await _listed(server, bob) == 1
    tags = {row[0] for row in server.rows("SELECT epoch FROM mailbox", "SELECT epoch FROM mailbox")}
    usage = server.rows(
        "SELECT count FROM usage WHERE receiver = ?",
        "SELECT count FROM usage WHERE receiver = $1",
        str(bob[0]),
    )
    assert tags <= {0, 1} and usage == [(1,)]  # one bit per message; the quota stays right
    server.clock.now += 5 * DAY  # idle for long: everything is past the age
    assert await server.store.expire(DAY) == 1
    assert await _listed(server, bob) == 0
    assert await server.store.expire(0) == 0  # turned off: nothing more is deleted
