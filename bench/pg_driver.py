"""asyncpg against psycopg 3 on the PostgreSQL store's own workload (issue 14).

Why this exists: the PostgreSQL store's driver was chosen by measuring, not by
reputation. Both drivers run the same SQL on the same tables (the store's schema,
rune_proto/server/pg/schema.py) in a private PostgreSQL cluster started like the
tests' (tests/postgres.py: initdb in a temporary directory, loopback, fsync and
synchronous_commit on), each through its own pool, on the default asyncio loop:

- commit: one group commit of 16 × 25 KB blobs — take the slots from
  ``layout.next_slot``, write the chunk rows with COPY, update ``usage`` — in one
  transaction (what the store does for 16 messages that arrive together);
- list: the id and size of a 100-message mailbox, in id order;
- retrieve: one 25 KB blob, slot list then chunks, in one repeatable-read snapshot;
- list ×8 / retrieve ×8: eight of them at once over the pool (pool overhead).

psycopg and psycopg_pool are installed into this environment when missing (bench
only, like the aiosmtpd peer); they are not dependencies of Rune.

    .venv/bin/python bench/pg_driver.py [-n ROUNDS]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_PACKAGES = {"psycopg": "psycopg[binary]>=3.2,<4", "psycopg_pool": "psycopg-pool>=3.2,<4"}
BLOB_BYTES = 25_000
GROUP = 16  # messages in one group commit
MAILBOX = 100  # messages listed
CONCURRENT = 8
POOL = 8
RECEIVER = "bench@x.example"


def ensure_packages() -> None:
    missing = [
        spec for name, spec in BENCH_PACKAGES.items() if importlib.util.find_spec(name) is None
    ]
    if missing:
        print(f"installing {' '.join(missing)} (bench only) ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *missing,
            ],
            check=True,
        )
        importlib.invalidate_caches()


def _blob(i: int) -> bytes:
    return (i.to_bytes(4, "big") * (BLOB_BYTES // 4 + 1))[:BLOB_BYTES]


def _seal() -> Any:
    """The bench's at-rest key (the store seals chunks and slot lists: pg/chunks.py)."""
    from rune_proto.server.pg.chunks import Seal

    return Seal.from_identity(bytes(128))


def _records(chunk_bytes: int, start: int) -> list[tuple[int, bytes]]:
    """Sealed chunk rows as the store writes them (the sealing is the same work for
    both drivers, done before the clock's interval of interest)."""
    from rune_proto.server.pg.chunks import Owner, pieces_of

    seal = _seal()
    records = []
    slot = start
    for i in range(GROUP):
        message_id = str(uuid.uuid4())
        for seq, data in enumerate(pieces_of(_blob(i), chunk_bytes)):
            records.append((slot, seal.seal_chunk(slot, Owner(RECEIVER, message_id, seq), data)))
            slot += 1
    return records


def _chunks_per_group(chunk_bytes: int) -> int:
    return GROUP * -(-BLOB_BYTES // chunk_bytes)


class AsyncpgSide:
    name = "asyncpg"

    def __init__(self, url: str) -> None:
        self.url = url

    async def open(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(
            self.url, min_size=POOL, max_size=POOL, server_settings={"synchronous_commit": "on"}
        )

    async def close(self) -> None:
        await self.pool.close()

    async def commit(self, chunk_bytes: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            count = _chunks_per_group(chunk_bytes)
            start = await conn.fetchval(
                "UPDATE layout SET value = value + $1 WHERE name = 'next_slot'"
                " RETURNING value - $1",
                count,
            )
            await conn.copy_records_to_table(
                "chunks",
                records=_records(chunk_bytes, int(start)),
                columns=("slot", "data"),
            )
            await conn.execute(
                "UPDATE usage SET bytes = bytes + $1, count = count + $2 WHERE receiver = $3",
                GROUP * BLOB_BYTES,
                GROUP,
                RECEIVER,
            )

    async def list(self) -> int:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, size FROM mailbox WHERE receiver = $1 ORDER BY id", RECEIVER
            )
            return len(rows)

    async def retrieve(self, message_id: str) -> int:
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                "SELECT size, slots FROM mailbox WHERE receiver = $1 AND id = $2",
                RECEIVER,
                message_id,
            )
            slots = _seal().open_slots(RECEIVER, message_id, bytes(row[1]))
            rows = await conn.fetch(
                "SELECT slot, data FROM chunks WHERE slot = ANY($1::bigint[])", slots
            )
            data = {r[0]: r[1] for r in rows}
            return len(b"".join(data[s] for s in slots)[: row[0]])


class PsycopgSide:
    name = "psycopg"

    def __init__(self, url: str) -> None:
        self.url = url

    async def open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            self.url,
            min_size=POOL,
            max_size=POOL,
            kwargs={"options": "-c synchronous_commit=on"},
            open=False,
        )
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def commit(self, chunk_bytes: int) -> None:
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            count = _chunks_per_group(chunk_bytes)
            await cur.execute(
                "UPDATE layout SET value = value + %s WHERE name = 'next_slot'"
                " RETURNING value - %s",
                (count, count),
            )
            (start,) = await cur.fetchone()  # type: ignore[misc]
            async with cur.copy("COPY chunks (slot, data) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "bytea"])
                for record in _records(chunk_bytes, int(start)):
                    await copy.write_row(record)
            await cur.execute(
                "UPDATE usage SET bytes = bytes + %s, count = count + %s WHERE receiver = %s",
                (GROUP * BLOB_BYTES, GROUP, RECEIVER),
            )

    async def list(self) -> int:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT id, size FROM mailbox WHERE receiver = %s ORDER BY id", (RECEIVER,)
            )
            return len(await cur.fetchall())

    async def retrieve(self, message_id: str) -> int:
        from psycopg import IsolationLevel

        async with self.pool.connection() as conn:
            await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute(
                    "SELECT size, slots FROM mailbox WHERE receiver = %s AND id = %s",
                    (RECEIVER, message_id),
                )
                row = await cur.fetchone()
                assert row is not None
                slots = _seal().open_slots(RECEIVER, message_id, bytes(row[1]))
                await cur.execute(
                    "SELECT slot, data FROM chunks WHERE slot = ANY(%s::bigint[])", (slots,)
                )
                data = {r[0]: r[1] for r in await cur.fetchall()}
                return len(b"".join(data[s] for s in slots)[: row[0]])


async def _medians(
    rounds: int, actions: dict[str, Callable[[], Awaitable[Any]]]
) -> dict[str, float]:
    """Each action's median time; the drivers take turns every round, so a slower
    moment of the shared machine (or a bigger table) falls on both alike."""
    for action in actions.values():
        for _ in range(3):  # warm: prepared statements, pool connections
            await action()
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            started = time.perf_counter()
            await action()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


async def _fill(url: str) -> tuple[int, str]:
    """The store's schema, and a 100-message mailbox written by the store itself."""
    from rune_proto.server.pg.store import PgStore

    store = await PgStore.open(url, seal=_seal(), order_window=3600)
    try:
        ids = [await store.add_message(RECEIVER, _blob(i), 10**10) for i in range(MAILBOX)]
    finally:
        await store.close()
    import asyncpg

    from rune_proto.server.pg import schema

    conn = await asyncpg.connect(url)
    try:
        chunk_bytes = await schema.chunk_bytes(conn)
    finally:
        await conn.close()
    assert ids[0] is not None
    return chunk_bytes, ids[MAILBOX // 2] or ""


async def measure(url: str, rounds: int) -> dict[str, dict[str, float]]:
    chunk_bytes, message_id = await _fill(url)
    sides = [AsyncpgSide(url), PsycopgSide(url)]
    for side in sides:
        await side.open()
    try:
        for side in sides:
            assert await side.list() >= MAILBOX
            assert await side.retrieve(message_id) == BLOB_BYTES

        def concurrently(action: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
            return lambda: asyncio.gather(*(action() for _ in range(CONCURRENT)))

        operations: dict[str, Callable[[Any], Callable[[], Awaitable[Any]]]] = {
            f"commit {GROUP}×25 KB": lambda s: lambda: s.commit(chunk_bytes),
            f"list {MAILBOX}": lambda s: s.list,
            "retrieve 25 KB": lambda s: lambda: s.retrieve(message_id),
            f"list {MAILBOX} ×{CONCURRENT}": lambda s: concurrently(s.list),
            f"retrieve ×{CONCURRENT}": lambda s: concurrently(lambda: s.retrieve(message_id)),
        }
        results: dict[str, dict[str, float]] = {side.name: {} for side in sides}
        for operation, make in operations.items():
            medians = await _medians(rounds, {side.name: make(side) for side in sides})
            for name, median in medians.items():
                results[name][operation] = median
        return results
    finally:
        for side in sides:
            await side.close()


def report(results: dict[str, dict[str, float]]) -> str:
    a, p = results["asyncpg"], results["psycopg"]
    lines = [f"{'operation':<18} {'asyncpg ms':>11} {'psycopg ms':>11} {'psycopg/asyncpg':>16}"]
    for op in a:
        lines.append(f"{op:<18} {a[op] * 1000:>11.2f} {p[op] * 1000:>11.2f} {p[op] / a[op]:>16.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=50, help="timed rounds per row")
    args = parser.parse_args()
    ensure_packages()
    from tests.postgres import postgres_cluster

    with postgres_cluster() as cluster:
        url = cluster.new_database()
        results = asyncio.run(measure(url, args.rounds))
    print(f"medians of {args.rounds} rounds, one PostgreSQL on loopback (fsync on)")
    print(report(results))


if __name__ == "__main__":
    main()
