"""The PostgreSQL order pass keeps every message whole while nodes deliver, delete and
read around it, has one owner, and is finished by the next pass when one is killed
(rune_proto/server/pg/ordering.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from rune_proto.server.database import StoreError
from rune_proto.server.pg import chunks, ordering
from rune_proto.server.pg.store import PgStore
from tests.postgres import PostgresServer

QUOTA = 1 << 30
BLOB = 18_846


@pytest.fixture
def seal() -> chunks.Seal:
    return chunks.Seal.from_identity(os.urandom(128))


@pytest.fixture
async def opened(postgres: PostgresServer, seal: chunks.Seal) -> AsyncIterator[tuple[str, PgStore]]:
    url = postgres.new_database()
    store = await PgStore.open(url, seal=seal, order_window=3600)
    try:
        yield url, store
    finally:
        await store.close()


async def fill(store: PgStore, count: int) -> dict[tuple[str, str], bytes]:
    stored = {}
    for n in range(count):
        receiver, blob = f"r{n % 7}@rune.test", os.urandom(BLOB + n)
        message_id = await store.add_message(receiver, blob, QUOTA)
        assert message_id is not None
        stored[(receiver, message_id)] = blob
    return stored


async def check_whole(url: str, store: PgStore, stored: dict[tuple[str, str], bytes]) -> None:
    for (receiver, message_id), blob in stored.items():
        assert await store.message(receiver, message_id) == blob
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM chunks")
        expected = sum(-(-len(blob) // chunks.CHUNK_BYTES) for blob in stored.values())
        assert rows == expected, "chunk rows left behind, or lost"
    finally:
        await conn.close()


async def test_deliveries_deletes_and_reads_during_a_pass(
    opened: tuple[str, PgStore], seal: chunks.Seal
) -> None:
    url, store = opened
    stored = await fill(store, 120)
    conn = await asyncpg.connect(url)
    try:
        passing = asyncio.create_task(
            ordering.run_pass(conn, seal, secrets.randbelow, now=time.time())
        )
        doomed = list(stored)[::4]
        for key in doomed:  # while the pass moves these very chunks
            assert await store.delete_message(*key)
            del stored[key]
        stored.update(await fill(store, 40))
        for key in list(stored)[:30]:
            assert await store.message(*key) == stored[key]
        await passing
        progress = await ordering.run_pass(conn, seal, secrets.randbelow, now=time.time())
        assert await conn.fetchval("SELECT count(*) FROM fresh") == 0
        assert progress.tables_rewritten == len(ordering.REWRITTEN)
    finally:
        await conn.close()
    await check_whole(url, store, stored)


async def test_a_pass_killed_midway_is_finished_by_the_next(
    opened: tuple[str, PgStore], seal: chunks.Seal
) -> None:
    url, store = opened
    stored = await fill(store, 60)  # 180 chunks: more than one step of moves
    first = await asyncpg.connect(url)
    progress = ordering.OrderProgress()
    await ordering.begin(first)
    await ordering.move_step(first, seal, progress, secrets.randbelow)
    assert 0 < await first.fetchval("SELECT count(*) FROM fresh") < 180
    await first.close()  # the node dies with its connection (and its advisory lock)
    second = await asyncpg.connect(url)
    try:
        assert await ordering.due(second)
        await ordering.rewrite(second, 0)  # and one killed after its first rewrite
        assert await second.fetchval("SELECT value FROM layout WHERE name = 'rewrite'") == 1
        done = await ordering.run_pass(second, seal, secrets.randbelow, now=time.time())
        assert done.tables_rewritten == len(ordering.REWRITTEN) - 1
        assert not await ordering.due(second)
    finally:
        await second.close()
    await check_whole(url, store, stored)


async def test_one_owner_across_nodes(opened: tuple[str, PgStore], seal: chunks.Seal) -> None:
    url, store = opened
    await fill(store, 3)
    holder, other = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", ordering.ORDER_LOCK)
        with pytest.raises(ordering.PassBusy):
            await ordering.run_pass(other, seal, secrets.randbelow, now=time.time())
        assert await other.fetchval("SELECT count(*) FROM fresh") == 3 * 3
    finally:
        await holder.close()
        await other.close()


async def test_the_pass_sweeps_ended_limits_and_old_failures(
    opened: tuple[str, PgStore], seal: chunks.Seal
) -> None:
    url, _ = opened
    now = time.time()
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO limits VALUES ($1, $2, 1)",
            [(b"old", int(now) - 1), (b"new", int(now) + 60)],
        )
        await conn.executemany(
            "INSERT INTO failures VALUES ('login', $1, 3, $2)",
            [(b"old", now - 1000), (b"new", now - 1)],
        )
        await ordering.run_pass(conn, seal, secrets.randbelow, now=now, failures_before=now - 900)
        assert [bytes(r[0]) for r in await conn.fetch("SELECT key FROM limits")] == [b"new"]
        assert [bytes(r[0]) for r in await conn.fetch("SELECT key FROM failures")] == [b"new"]
    finally:
        await conn.close()


async def test_deleted_without_the_key_is_freed_by_the_pass(
    opened: tuple[str, PgStore], seal: chunks.Seal
) -> None:
    """An operator's command has no server key: it queues the sealed list."""
    url, store = opened
    stored = await fill(store, 4)
    (receiver, message_id), *_ = stored
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            sealed = await conn.fetchval(
                "DELETE FROM mailbox WHERE receiver = $1 AND id = $2 RETURNING slots",
                receiver,
                message_id,
            )
            await chunks.free_later(conn, [(receiver, message_id, bytes(sealed))])
        progress = await ordering.run_pass(conn, seal, secrets.randbelow, now=time.time())
        assert progress.freed == 1
    finally:
        await conn.close()
    del stored[(receiver, message_id)]
    await check_whole(url, store, stored)


async def test_a_node_with_another_identity_is_refused(
    opened: tuple[str, PgStore],
) -> None:
    url, store = opened
    await fill(store, 1)
    stranger = chunks.Seal.from_identity(os.urandom(128))
    with pytest.raises(StoreError, match="another identity") as caught:
        await PgStore.open(url, seal=stranger)
    assert url.split("@")[0].split(":")[-1] not in str(caught.value)  # no password


async def test_a_role_without_checkpoint_rights_still_runs_the_pass(
    postgres: PostgresServer, seal: chunks.Seal
) -> None:
    """Operators may not grant pg_checkpoint: the pass does the rest and says so."""
    role = f"plain_{secrets.token_hex(4)}"
    url = postgres.new_database()
    name = url.rsplit("/", 1)[1]
    postgres.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'; ALTER DATABASE {name} OWNER TO {role}")
    plain = url.replace(url.split("@")[0], f"postgresql://{role}:pw")
    store = await PgStore.open(plain, seal=seal, order_window=3600)
    try:
        stored = await fill(store, 5)
        conn = await asyncpg.connect(plain)
        try:
            progress = await ordering.run_pass(conn, seal, secrets.randbelow, now=time.time())
        finally:
            await conn.close()
        assert progress.done and not progress.wal_flushed
        assert progress.tables_rewritten == len(ordering.REWRITTEN)
        for (receiver, message_id), blob in stored.items():
            assert await store.message(receiver, message_id) == blob
    finally:
        await store.close()
