"""A copy of a PostgreSQL data directory shows no arrival order and no deleted mail
(issue 14; docs/server.md, "What a copy of a PostgreSQL data directory reveals").

As tests/hardening/test_order_audit.py does for SQLite, with the thief's tools for
PostgreSQL (pgthief.py): 40 accounts register, 300 messages (a STORED MESSAGE's size)
arrive in a known order, a third are deleted, the order pass runs, and the whole data
directory of the cluster — every database's files and ``pg_wal`` — is copied while it
runs. Then each blob, each mailbox row's id and each account's key is looked for in
the copy: where, how many copies, and Kendall's τ between arrival and the place in the
file and between arrival and the writing transaction's id (``t_xmin``).

The control runs the same workload with the defence taken out (chunks stored in the
clear, no pass): the same measurement must find the order there, or it proves nothing.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from rune_proto.server.pg import chunks, ordering
from rune_proto.server.pg.store import PgStore
from tests.hardening.thief import Order, order_of
from tests.pg.pgthief import Hit, find, read_copy
from tests.postgres import PostgresServer, postgres_cluster

USERS = 40
MESSAGES = 300
STORED_16K = 18_846
QUOTA = 1 << 30


class ClearSeal(chunks.Seal):
    """The defence taken out: chunks and slot lists stored as they are (the control)."""

    def __init__(self) -> None:
        super().__init__(bytes(32))

    def seal_chunk(self, slot: int, owner: chunks.Owner, piece: bytes) -> bytes:
        return bytes(chunks.NONCE) + chunks._owner_bytes(owner) + piece

    def open_chunk(self, slot: int, sealed: bytes) -> tuple[chunks.Owner, bytes]:
        plain = sealed[chunks.NONCE :]
        return chunks._owner_of(plain[: chunks.OWNER.size]), plain[chunks.OWNER.size :]

    def seal_slots(self, receiver: str, message_id: str, slots: list[int]) -> bytes:  # type: ignore[override]
        return b"".join(chunks.SLOT.pack(s) for s in slots)

    def open_slots(self, receiver: str, message_id: str, sealed: bytes) -> list[int]:
        return [chunks.SLOT.unpack_from(sealed, at)[0] for at in range(0, len(sealed), 8)]


@dataclass
class Stored:
    index: int  # arrival order
    receiver: str
    blob: bytes
    stored_id: str = ""
    deleted: bool = False


@dataclass
class Copy:
    files: dict[str, bytes]
    messages: list[Stored]
    keys: list[bytes]  # account keys, in registration order
    seconds: float  # the pass


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresServer]:
    """A cluster of its own: its data directory is what the thief copies. WAL segments
    are removed, not recycled, once past (the setting docs/server.md recommends)."""
    with postgres_cluster() as server:
        server.psql("ALTER SYSTEM SET wal_recycle = off")
        server.psql("SELECT pg_reload_conf()")
        yield server


async def workload(cluster: PostgresServer, seal: chunks.Seal, run_pass: bool) -> Copy:
    url = cluster.new_database()
    store = await PgStore.open(url, seal=seal, order_window=3600)
    rng = random.Random(12)
    keys = [os.urandom(1248) for _ in range(USERS)]
    addresses = [f"{secrets.token_hex(6)}u{n}@rune.test" for n in range(USERS)]  # random key order
    for address, key in zip(addresses, keys, strict=True):  # registration order = list order
        await store.create_account(address, key, None, int(time.time()))
    messages = []
    for index in range(MESSAGES):
        receiver = addresses[rng.randrange(USERS)]
        stored = Stored(index, receiver, os.urandom(STORED_16K))
        stored_id = await store.add_message(receiver, stored.blob, QUOTA)
        assert stored_id is not None
        stored.stored_id = stored_id
        messages.append(stored)
    for stored in messages[::3]:
        assert await store.delete_message(stored.receiver, stored.stored_id)
        stored.deleted = True
    started = time.perf_counter()
    if run_pass:
        conn = await asyncpg.connect(url)
        try:
            await ordering.run_pass(conn, seal, secrets.randbelow, now=time.time())
        finally:
            await conn.close()
    else:
        cluster.psql("CHECKPOINT")  # the heap reaches its files, as it would in time
    seconds = time.perf_counter() - started
    for stored in messages:  # the store still serves every kept message, whole
        blob = await store.message(stored.receiver, stored.stored_id)
        assert blob == (None if stored.deleted else stored.blob)
    store._order_timer and store._order_timer.cancel()
    store._order_timer = None
    await store._pool.close()
    into = cluster.root / f"copy-{secrets.token_hex(4)}"
    shutil.copytree(cluster.data, into, symlinks=True)
    try:
        files = read_copy(into)
    finally:
        shutil.rmtree(into, ignore_errors=True)
    return Copy(files, messages, keys, seconds)


def orders(what: str, hits: list[list[Hit]]) -> list[Order]:
    """τ of arrival against the newest heap copy's xmin and its place in its file."""
    newest = [
        max((h for h in found if h.xmin is not None), key=lambda h: h.xmin or 0) for found in hits
    ]
    return [
        order_of(f"{what} by xmin", [h.xmin or 0 for h in newest]),
        order_of(f"{what} by place", [h.offset for h in newest]),
    ]


def heap_hits(files: dict[str, bytes], needles: list[bytes]) -> list[list[Hit]]:
    return [[h for h in find(files, needle) if h.xmin is not None] for needle in needles]


@pytest.fixture(scope="module")
def defended(cluster: PostgresServer) -> Copy:
    import asyncio

    seal = chunks.Seal.from_identity(os.urandom(128))
    return asyncio.run(workload(cluster, seal, run_pass=True))


@pytest.mark.slow
def test_a_copy_of_the_cluster_shows_no_blob_and_no_order(defended: Copy) -> None:
    files, messages = defended.files, defended.messages
    kept = [m for m in messages if not m.deleted]
    blob_copies = sum(
        len(find(files, m.blob[64:96])) + len(find(files, m.blob[-48:-16])) for m in messages
    )
    assert blob_copies == 0, f"{blob_copies} pieces of blobs in the copy"
    # The live mailbox rows: in key order, one transaction; nothing in pg_wal.
    ids = [find(files, m.stored_id.encode()) for m in kept]
    in_wal = sum(h.in_wal for found in ids for h in found)
    measured = orders("mailbox rows", [[h for h in found if h.xmin is not None] for found in ids])
    measured += orders("accounts", heap_hits(files, [k[:32] for k in defended.keys]))
    gone = sum(len(find(files, m.stored_id.encode())) for m in messages if m.deleted)
    for order in measured:
        print(order)
    print(
        f"pass {defended.seconds:.2f} s; blob pieces found 0 of {2 * len(messages)}; "
        f"mailbox ids in pg_wal {in_wal}; copies of deleted ids {gone}; "
        f"copies per kept id {sorted({len(found) for found in ids})}"
    )
    assert in_wal == 0, "the mailbox rows' history is still in pg_wal"
    assert gone == 0, "deleted messages' ids are still in the copy"
    assert not [order for order in measured if order.leaks], measured


@pytest.mark.slow
def test_the_thief_finds_the_order_without_the_defence(cluster: PostgresServer) -> None:
    import asyncio

    copy = asyncio.run(workload(cluster, ClearSeal(), run_pass=False))
    files = copy.files
    first = heap_hits(files, [m.blob[64:96] for m in copy.messages if not m.deleted])
    measured = orders("blobs", first) + orders(
        "mailbox rows", heap_hits(files, [m.stored_id.encode() for m in copy.messages])
    )
    for order in measured:
        print(order)
    assert all(order.leaks for order in measured), measured
    assert min(order.tau for order in measured if order.what.startswith("blobs")) > 0.9
