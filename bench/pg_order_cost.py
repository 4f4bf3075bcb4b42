"""What the PostgreSQL order pass costs (rune_proto/server/pg/ordering.py).

Starts a private cluster (tests/postgres.py), fills a PgStore with STORED MESSAGEs of
the 16 KiB class, then measures: a pass over ``--new`` fresh messages (its cost per
moved chunk), a pass with nothing new at each store size (the rewrite of the small
tables and the WAL flush), how long the ``mailbox`` rewrite holds its lock, and the
worst wait of deliveries made while a pass runs.

    .venv/bin/python -m bench.pg_order_cost [--sizes 10000,50000] [--new 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time

import asyncpg

from rune_proto.server.pg import chunks, ordering
from rune_proto.server.pg.store import PgStore
from tests.postgres import postgres_cluster

BLOB = 18_846
QUOTA = 1 << 40
RECEIVERS = 1000
CONCURRENCY = 32


async def fill(store: PgStore, count: int) -> None:
    """``count`` messages to RECEIVERS mailboxes, CONCURRENCY at a time (group commits)."""
    blob = os.urandom(BLOB)
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            await store.add_message(f"r{n % RECEIVERS}@rune.test", blob, QUOTA)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def timed_pass(url: str, seal: chunks.Seal) -> tuple[float, float, ordering.OrderProgress]:
    """A whole pass: its seconds, and the seconds of the mailbox rewrite alone."""
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        original = ordering.rewrite
        lock_seconds = 0.0

        async def measured(conn: chunks.Connection, table: int) -> None:
            nonlocal lock_seconds
            began = time.perf_counter()
            await original(conn, table)
            if ordering.REWRITTEN[table][0] == "mailbox":
                lock_seconds = time.perf_counter() - began

        ordering.rewrite = measured
        try:
            progress = await ordering.run_pass(conn, seal, secrets.randbelow, now=time.time())
        finally:
            ordering.rewrite = original
        return time.perf_counter() - started, lock_seconds, progress
    finally:
        await conn.close()


async def deliveries_during_pass(store: PgStore, url: str, seal: chunks.Seal) -> tuple[float, int]:
    """The worst delivery latency (s) while a pass runs, and how many were made."""
    waits: list[float] = []
    passing = asyncio.create_task(timed_pass(url, seal))
    blob = os.urandom(BLOB)
    while not passing.done():
        began = time.perf_counter()
        await store.add_message("during@rune.test", blob, QUOTA)
        waits.append(time.perf_counter() - began)
    await passing
    return max(waits, default=0.0), len(waits)


async def run(sizes: list[int], new: int) -> None:
    with postgres_cluster() as cluster:
        cluster.psql("ALTER SYSTEM SET wal_recycle = off")
        cluster.psql("SELECT pg_reload_conf()")
        url = cluster.new_database()
        seal = chunks.Seal.from_identity(os.urandom(128))
        store = await PgStore.open(url, seal=seal, order_window=3600)
        stored = 0
        print(
            "stored | pass, nothing new (s) | mailbox lock (ms) | pass over new: s, µs/chunk"
            " | worst delivery during a pass (ms, n)"
        )
        for size in sizes:
            began = time.perf_counter()
            await fill(store, size - stored - new)
            await timed_pass(url, seal)  # settle: everything before is shuffled
            filled = time.perf_counter() - began
            await fill(store, new)
            stored = size
            busy, _, progress = await timed_pass(url, seal)
            moved = progress.chunks_moved
            idle, lock, _ = await timed_pass(url, seal)
            worst, count = await deliveries_during_pass(store, url, seal)
            print(
                f"{size:,} | {idle:.2f} | {lock * 1000:.0f} | {busy:.2f}, "
                f"{(busy - idle) / max(moved, 1) * 1e6:.0f} ({moved} chunks) | "
                f"{worst * 1000:.0f}, {count}   (fill {filled:.0f} s)",
                flush=True,
            )
        if store._order_timer is not None:
            store._order_timer.cancel()
            store._order_timer = None
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--new", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run([int(s) for s in args.sizes.split(",")], args.new))


if __name__ == "__main__":
    main()
