"""What a copy of a PostgreSQL data directory shows about arrival order (issue 14).

Starts a private cluster (tests/postgres.py), stores messages the way the PostgreSQL
store does, runs an order pass (a straight port of the SQLite one: swaps by UPDATE,
CLUSTER of the small tables, CHECKPOINT), copies the data directory as a thief would
and looks for every blob and mailbox row: in which files, how many copies, and
Kendall's τ between arrival and (a) the place in the file, (b) the tuple's xmin.

    .venv/bin/python -m bench.pg_disk_audit [--messages 300] [--variant none|naive]

"none": no pass at all (the WAL alone); "naive": the straight port. The defended store
is measured by tests/pg/test_order_audit_pg.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from tests.hardening.thief import Order, order_of
from tests.pg.pgthief import Hit, find, read_copy
from tests.postgres import PostgresServer, postgres_cluster

BLOB = 18_846  # a STORED MESSAGE of the 16 KiB class
CHUNK = 7680

NAIVE_SCHEMA = (
    'CREATE TABLE accounts (address text COLLATE "C" PRIMARY KEY, public_key bytea NOT NULL)',
    """CREATE TABLE mailbox (receiver text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL,
        size bigint NOT NULL, slots bigint[] NOT NULL, epoch smallint NOT NULL DEFAULT 0,
        PRIMARY KEY (receiver, id))""",
    """CREATE TABLE chunks (slot bigint PRIMARY KEY, receiver text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL, seq integer NOT NULL, data bytea NOT NULL)""",
    "ALTER TABLE chunks ALTER COLUMN data SET STORAGE PLAIN",
    "CREATE INDEX chunks_owner ON chunks (receiver, id)",
    'CREATE TABLE usage (receiver text COLLATE "C" PRIMARY KEY, bytes bigint, count integer)',
)


async def naive_deliver(conn: asyncpg.Connection, top: int, receiver: str, blob: bytes) -> int:
    message_id = str(uuid.uuid4())
    pieces = [blob[i : i + CHUNK].ljust(CHUNK, b"\0") for i in range(0, len(blob), CHUNK)]
    slots = list(range(top, top + len(pieces)))
    async with conn.transaction():
        await conn.copy_records_to_table(
            "chunks",
            records=[
                (s, receiver, message_id, q, p)
                for q, (s, p) in enumerate(zip(slots, pieces, strict=True))
            ],
            columns=("slot", "receiver", "id", "seq", "data"),
        )
        await conn.execute(
            "INSERT INTO mailbox (receiver, id, size, slots) VALUES ($1, $2, $3, $4)",
            receiver,
            message_id,
            len(blob),
            slots,
        )
        await conn.execute(
            """INSERT INTO usage VALUES ($1, $2, 1) ON CONFLICT (receiver) DO UPDATE
               SET bytes = usage.bytes + $2, count = usage.count + 1""",
            receiver,
            len(blob),
        )
    return top + len(pieces)


async def naive_pass(conn: asyncpg.Connection, top: int, rng: random.Random) -> None:
    """Fisher–Yates by UPDATE swaps in steps of 256, then CLUSTER, then CHECKPOINT."""
    for start in range(0, top, 256):
        async with conn.transaction():
            for i in range(start, min(top, start + 256)):
                j = rng.randrange(i + 1)
                if j == i:
                    continue
                a = await conn.fetchrow(
                    "SELECT receiver, id, seq, data FROM chunks WHERE slot=$1", i
                )
                b = await conn.fetchrow(
                    "SELECT receiver, id, seq, data FROM chunks WHERE slot=$1", j
                )
                if a is None or b is None:
                    continue
                await conn.execute(
                    "UPDATE chunks SET receiver=$1, id=$2, seq=$3, data=$4 WHERE slot=$5", *b, i
                )
                await conn.execute(
                    "UPDATE chunks SET receiver=$1, id=$2, seq=$3, data=$4 WHERE slot=$5", *a, j
                )
        async with conn.transaction():
            await conn.execute(
                """UPDATE mailbox m SET slots = o.slots FROM (SELECT receiver, id,
                   array_agg(slot ORDER BY seq) AS slots FROM chunks GROUP BY receiver, id) o
                   WHERE m.receiver = o.receiver AND m.id = o.id AND m.slots <> o.slots"""
            )
    for table in ("accounts", "mailbox", "usage"):
        await conn.execute(f"CLUSTER {table} USING {table}_pkey")
    await conn.execute("VACUUM chunks")
    await conn.execute("CHECKPOINT")


def copy_cluster(cluster: PostgresServer, into: Path) -> dict[str, bytes]:
    shutil.copytree(cluster.data, into, symlinks=True)
    return read_copy(into)


def report(what: str, per_item: list[list[Hit]]) -> list[Order]:
    """Copies found, and τ of arrival against file place and against xmin."""
    counts = Counter(len(hits) for hits in per_item)
    where = Counter(
        hit.path.split("/")[0]
        + ("/" + hit.path.split("/")[1] if hit.path.startswith("base/") else "")
        for hits in per_item
        for hit in hits
    )
    print(f"{what}: copies per item {dict(sorted(counts.items()))}; files {dict(where)}")
    orders = []
    heap = [[h for h in hits if h.xmin is not None] for hits in per_item]
    if heap and all(heap):
        newest = [max(h, key=lambda x: x.xmin or 0) for h in heap]
        orders.append(
            order_of(
                f"{what} by place (live copy)",
                [(hash(h.path) % 1000) * 10**9 + h.offset for h in newest],
            )
        )
        orders.append(order_of(f"{what} by xmin (live copy)", [h.xmin or 0 for h in newest]))
        oldest = [min(h, key=lambda x: x.xmin or 0) for h in heap]
        orders.append(order_of(f"{what} by xmin (oldest copy)", [h.xmin or 0 for h in oldest]))
    wal = [[h for h in hits if h.in_wal] for hits in per_item]
    if wal and all(wal):
        orders.append(
            order_of(
                f"{what} by WAL place",
                [hash(min((h.path, h.offset) for h in w)) and sorted_rank(w) for w in wal],
            )
        )
    for order in orders:
        print("  ", order)
    return orders


_ALL_WAL: list[tuple[str, int]] = []


def sorted_rank(hits: list[Hit]) -> int:
    first = min((h.path, h.offset) for h in hits)
    return _ALL_WAL.index(first)


async def run(messages: int, variant: str) -> None:
    with postgres_cluster() as cluster:
        url = cluster.new_database()
        conn = await asyncpg.connect(url)
        rng = random.Random(7)
        for statement in NAIVE_SCHEMA:
            await conn.execute(statement)
        users = [f"user{n:02d}-{uuid.uuid4().hex[:6]}@example.org" for n in range(40)]
        for user in users:
            await conn.execute("INSERT INTO accounts VALUES ($1, $2)", user, os.urandom(1248))
        blobs, receivers, top = [], [], 0
        for _ in range(messages):
            blob = os.urandom(BLOB)
            receiver = rng.choice(users)
            top = await naive_deliver(conn, top, receiver, blob)
            blobs.append(blob)
            receivers.append(receiver)
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM mailbox")]
        if variant == "naive":
            await naive_pass(conn, top, rng)
        await conn.close()
        with tempfile.TemporaryDirectory() as tmp:
            files = copy_cluster(cluster, Path(tmp) / "data")
        print(
            f"variant {variant}: {messages} messages; {len(files)} files, "
            f"{sum(map(len, files.values())):,} bytes"
        )
        # which mailbox row is which arrival: the ids in arrival order
        arrival_ids = await _ids_in_arrival(url, blobs)
        first = [find(files, blob[64:96]) for blob in blobs]
        last = [find(files, blob[-48:-16]) for blob in blobs]
        rows = [find(files, i.encode()) for i in arrival_ids]
        _ALL_WAL.clear()
        _ALL_WAL.extend(
            sorted({(h.path, h.offset) for hs in first + last + rows for h in hs if h.in_wal})
        )
        report("blobs (first chunk)", first)
        report("blobs (last chunk)", last)
        report("mailbox ids", rows)
        del ids


async def _ids_in_arrival(url: str, blobs: list[bytes]) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        found = {}
        for row in await conn.fetch("SELECT id, slots FROM mailbox"):
            data = await conn.fetchval("SELECT data FROM chunks WHERE slot = $1", row["slots"][0])
            found[bytes(data)[:64]] = row["id"]
        return [found[blob[:64]] for blob in blobs]
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--variant", choices=("none", "naive"), default="naive")
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.variant))


if __name__ == "__main__":
    main()
