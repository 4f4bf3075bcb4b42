"""What a ``202`` promises on PostgreSQL: the message outlives a crash of the database,
and a commit that fails takes nothing with it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from rune_proto.server.database import StoreError
from rune_proto.server.pg.chunks import CHUNK_BYTES
from rune_proto.server.pg.store import PgStore
from tests.postgres import STOP_TIMEOUT, PostgresServer

from .stores import TEST_SEAL, PgBackend, wait_for

BLOB = b"\x03" * 9000


@pytest.fixture
def crashable(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The shared cluster, restarted after the test whatever happened to it."""
    try:
        yield postgres
    finally:
        if postgres.process is None or postgres.process.poll() is not None:
            postgres.process = None
            postgres.start()


def crash(postgres: PostgresServer) -> None:
    """An immediate shutdown (SIGQUIT): no checkpoint, recovery from the WAL at start,
    as after a power cut for everything that reached the WAL on disk."""
    assert postgres.process is not None
    pid = int((postgres.data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGQUIT)
    postgres.process.wait(timeout=STOP_TIMEOUT)
    postgres.process = None


async def test_acknowledged_messages_survive_a_crash_of_postgresql(
    pg: PgBackend, crashable: PostgresServer
) -> None:
    store = await PgStore.open(pg.url, seal=TEST_SEAL, order_window=3600)
    acknowledged: dict[str, bytes] = {}

    async def send(i: int) -> None:
        blob = i.to_bytes(4, "big") + BLOB
        message_id = await store.add_message(f"ida{i % 7}@x.example", blob, 10**9)
        assert message_id is not None
        acknowledged[message_id] = blob

    tasks = [asyncio.create_task(send(i)) for i in range(400)]
    await wait_for(lambda: len(acknowledged) >= 60)
    await asyncio.to_thread(crash, crashable)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(f, StoreError) for f in failures), failures[:3]
    await asyncio.wait_for(store.close(), timeout=60)
    crashable.start()
    store = await PgStore.open(pg.url, seal=TEST_SEAL, order_window=3600)
    try:
        for message_id, blob in acknowledged.items():
            receiver = f"ida{int.from_bytes(blob[:4], 'big') % 7}@x.example"
            assert await store.message(receiver, message_id) == blob
        stored = [len(await store.list_messages(f"ida{k}@x.example")) for k in range(7)]
        assert sum(stored) >= len(acknowledged)  # (some unanswered ones may be in too)
    finally:
        await store.close()


async def test_a_failed_commit_fails_its_callers_and_changes_nothing(pg: PgBackend) -> None:
    store = await PgStore.open(pg.url, seal=TEST_SEAL, order_window=3600)
    try:
        await store.add_message("jan@x.example", BLOB, 10**6)
        await pg.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'mailbox refused'; END $$"""
        )
        await pg.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON mailbox FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        results = await asyncio.gather(
            *(store.add_message("jan@x.example", BLOB, 10**6) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreError) for r in results), results
        assert "mailbox refused" not in str(results[0])  # PostgreSQL's text stays out
        assert await pg.scalar("SELECT COUNT(*) FROM mailbox") == 1
        # one message's chunk rows (they are sealed: rows, not owners, are counted)
        assert await pg.scalar("SELECT COUNT(*) FROM chunks") == -(-len(BLOB) // CHUNK_BYTES)
        await pg.execute("DROP TRIGGER refuse ON mailbox")
        quota = 2 * len(BLOB)
        assert await store.add_message("jan@x.example", BLOB, quota) is not None
        assert await store.add_message("jan@x.example", BLOB, quota) is None
    finally:
        await store.close()


async def test_messages_arriving_together_share_commits(pg: PgBackend) -> None:
    store = await PgStore.open(pg.url, seal=TEST_SEAL, order_window=3600)
    try:
        ids = await asyncio.gather(
            *(store.add_message(f"kai{i % 5}@x.example", BLOB, 10**7) for i in range(50))
        )
        assert all(ids) and len(set(ids)) == 50
        commits = sum(store.commit_times.counts)
        assert 1 <= commits < 50  # later arrivals waited for a commit and went together
    finally:
        await store.close()


async def test_a_restart_of_postgresql_costs_at_most_one_failed_write(
    pg: PgBackend, crashable: PostgresServer
) -> None:
    """The pool's connections die with the server; asyncpg sees them closed and the
    pool opens new ones (a guard: this holds without code of ours)."""
    store = await PgStore.open(pg.url, seal=TEST_SEAL, order_window=3600, pool_size=4)
    try:
        await asyncio.gather(*(store.message_size("lou@x.example", "none") for _ in range(8)))
        first = await store.add_message("lou@x.example", BLOB, 10**6)
        await asyncio.to_thread(crashable.stop)
        await asyncio.to_thread(crashable.start)
        assert len(await store.list_messages("lou@x.example")) == 1
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(await store.add_message("lou@x.example", BLOB, 10**6))
            except StoreError:
                outcomes.append(None)
        assert all(outcomes[1:]) and outcomes.count(None) <= 1, outcomes
        assert first is not None and await store.message("lou@x.example", first) == BLOB
    finally:
        await store.close()
