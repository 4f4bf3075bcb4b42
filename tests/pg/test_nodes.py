"""Several PgStore instances on one database: what N nodes must agree on, they do.

Each store is what one rune-server node (or one worker) holds; they share nothing
but the database, and run concurrently in this event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from rune_proto.server.database import Outcome
from rune_proto.server.limits import Charge, Kind, LimitReached
from rune_proto.server.pg import ordering
from rune_proto.server.pg.store import PgStore

from .stores import PgBackend, wait_for

BLOB = b"\x02" * 3000
KEY = b"k" * 32
NODES = 3


@pytest.fixture
async def nodes(pg: PgBackend) -> AsyncIterator[list[PgStore]]:
    stores = await asyncio.gather(*(PgStore.open(pg.url, order_window=3600) for _ in range(NODES)))
    try:
        yield list(stores)
    finally:
        for store in stores:
            await store.close()


async def test_a_mailbox_never_goes_over_quota_with_messages_on_every_node(
    nodes: list[PgStore], pg: PgBackend
) -> None:
    quota = 10 * len(BLOB)
    results = await asyncio.gather(
        *(nodes[i % NODES].add_message("amy@x.example", BLOB, quota) for i in range(45))
    )
    assert sum(r is not None for r in results) == 10
    assert await pg.scalar("SELECT SUM(size) FROM mailbox") == quota
    assert await pg.scalar("SELECT bytes FROM usage WHERE receiver = 'amy@x.example'") == quota
    assert await pg.scalar("SELECT count FROM usage WHERE receiver = 'amy@x.example'") == 10


async def test_a_delete_on_one_node_frees_space_for_the_others(nodes: list[PgStore]) -> None:
    quota = 2 * len(BLOB)
    first = await nodes[0].add_message("bea@x.example", BLOB, quota)
    assert await nodes[1].add_message("bea@x.example", BLOB, quota) is not None
    assert await nodes[2].add_message("bea@x.example", BLOB, quota) is None
    assert first is not None and await nodes[1].delete_message("bea@x.example", first)
    assert await nodes[2].add_message("bea@x.example", BLOB, quota) is not None
    assert await nodes[0].add_message("bea@x.example", BLOB, quota) is None


async def test_nodes_racing_on_one_address_register_it_exactly_once(nodes: list[PgStore]) -> None:
    for round_ in range(5):
        address = f"cal{round_}@x.example"
        outcomes = await asyncio.gather(
            *(node.create_account(address, KEY, None, 0) for node in nodes for _ in range(2))
        )
        assert outcomes.count(Outcome.CREATED) == 1, outcomes
        assert set(outcomes) == {Outcome.CREATED, Outcome.TAKEN}


async def test_nodes_racing_on_one_invitation_use_it_exactly_once(
    nodes: list[PgStore], pg: PgBackend
) -> None:
    for round_ in range(5):
        token = hashlib.sha256(f"invitation {round_}".encode()).digest()
        address = f"dan{round_}@x.example"
        await pg.add_invitation(token, address, 10**10)
        outcomes = await asyncio.gather(
            *(node.create_account(address, KEY, token, 0) for node in nodes for _ in range(2))
        )
        assert outcomes.count(Outcome.CREATED) == 1, outcomes
        assert Outcome.INVITATION_INVALID in outcomes or Outcome.TAKEN in outcomes
    assert await pg.scalar("SELECT COUNT(*) FROM invitations") == 0


async def test_limits_are_counted_across_nodes(nodes: list[PgStore]) -> None:
    charge = [Charge(Kind.INFLOW, b"\x07" * 16, 5, 10**10)]
    results = await asyncio.gather(
        *(nodes[i % NODES].add_message("eve@x.example", BLOB, 10**7, charge) for i in range(12)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, str) for r in results) == 5
    assert all(isinstance(r, str | LimitReached) for r in results), results
    registrations = [Charge(Kind.REGISTER, b"\x08" * 16, 2, 10**10)]
    outcomes = await asyncio.gather(
        *(
            nodes[i % NODES].create_account(f"f{i}@x.example", KEY, None, 0, registrations)
            for i in range(6)
        )
    )
    assert outcomes.count(Outcome.CREATED) == 2
    assert outcomes.count(Outcome.REGISTRATION_LIMIT) == 4


async def test_commits_deletes_and_passes_on_every_node_keep_every_blob_whole(
    pg: PgBackend,
) -> None:
    """Order passes run (on whichever node holds the lock) while all nodes write."""
    stores = await asyncio.gather(*(PgStore.open(pg.url, order_window=0.01) for _ in range(NODES)))
    try:
        kept: dict[str, bytes] = {}

        async def work(node: int) -> None:
            store = stores[node]
            for i in range(25):
                blob = hashlib.sha256(f"{node}/{i}".encode()).digest() * (200 + 97 * i)
                message_id = await store.add_message(f"gus{i % 4}@x.example", blob, 10**8)
                assert message_id is not None
                if i % 3 == 0:
                    assert await stores[(node + 1) % NODES].delete_message(
                        f"gus{i % 4}@x.example", message_id
                    )
                else:
                    kept[message_id] = blob

        await asyncio.gather(*(work(node) for node in range(NODES)))
        await wait_for(lambda: sum(store.passes for store in stores) >= 2)
    finally:
        for store in stores:
            await store.close()  # each finishes a due pass, or leaves it to the others
    async with await_open(pg) as store:
        for message_id, blob in kept.items():
            receivers = [f"gus{i}@x.example" for i in range(4)]
            found = [await store.message(r, message_id) for r in receivers]
            assert blob in found
    assert await pg.scalar("SELECT COUNT(*) FROM holes") == 0
    assert await pg.scalar("SELECT COUNT(*) FROM chunks") == await pg.scalar(
        "SELECT COALESCE(SUM(cardinality(slots)), 0) FROM mailbox"
    )
    assert await pg.scalar("SELECT MAX(slot) + 1 FROM chunks") == await pg.scalar(
        "SELECT COUNT(*) FROM chunks"
    )  # dense
    assert await pg.scalar("SELECT SUM(bytes) FROM usage") == sum(len(b) for b in kept.values())


def await_open(pg: PgBackend) -> _Opened:
    return _Opened(pg)


class _Opened:
    def __init__(self, pg: PgBackend) -> None:
        self._pg = pg
        self._store: PgStore | None = None

    async def __aenter__(self) -> PgStore:
        self._store = await PgStore.open(self._pg.url, order_window=3600)
        return self._store

    async def __aexit__(self, *exc: object) -> None:
        assert self._store is not None
        await self._store.close()


async def test_one_pass_owner_the_others_defer(pg: PgBackend) -> None:
    holder = await asyncpg.connect(pg.url)
    try:
        async with await_open(pg):
            pass  # the schema
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", ordering.ORDER_LOCK)
        store = await PgStore.open(pg.url, order_window=0.01)
        try:
            await store.add_message("hal@x.example", BLOB, 10**6)
            await wait_for(lambda: store.passes_deferred >= 2)
            assert store.passes == 0  # another session holds the pass
            await holder.execute("SELECT pg_advisory_unlock($1)", ordering.ORDER_LOCK)
            await wait_for(lambda: store.passes >= 1)
        finally:
            await store.close()
    finally:
        await holder.close()
    assert await pg.scalar("SELECT value FROM layout WHERE name = 'pending'") == 0
