"""The order pass on PostgreSQL: what a copy of the cluster's files shows about time
is erased here, as far as PostgreSQL lets it be.

What time leaves in a PostgreSQL cluster (measured in bench/pg_disk_audit.py, see
docs/server.md "What a copy of a PostgreSQL data directory reveals"): every row
version keeps ``t_xmin``, the counting id of the transaction that wrote it (freezing,
CLUSTER and VACUUM FULL keep it); new versions go where the free space map says, in
the order they are written; an UPDATE or DELETE leaves the old version on its page
until the space is reused (pruning does not zero it); an index page fills from its
end in insertion order; ``pg_wal`` holds every change in order until its segment is
removed or overwritten. A port of the SQLite slot shuffle (swaps by UPDATE) left
every blob in 4–20 copies, τ = +0.46 between arrival and xmin, and the mailbox rows'
old versions in arrival order (τ = +0.51 by xmin).

So the pass does not shuffle positions; it cuts links and rewrites:

1. **Move the fresh chunks** (:func:`move_step`). Chunk rows and slot lists are
   sealed (chunks.py), so a chunk row links to nothing a thief can name; what is left
   is that the chunks of one commit share an xmin and sit together, and their count
   matches their mailbox rows' sizes. Each chunk appended since the last pass (the
   ``fresh`` table) is re-sealed into a new slot, in a random order, ``STEP_MOVES`` a
   transaction: a step's xmin and place hold chunks of random messages of the window.
2. **Rewrite the small tables** (:func:`rewrite`): ``mailbox``, ``accounts``,
   ``usage``, ``invitations``, ``holds``, ``limits``, ``failures``, ``freed``,
   ``fresh`` and ``layout`` each have their rows deleted and inserted again in key
   order (one transaction: they share one xmin), then ``VACUUM FULL`` writes the
   live rows into new files for the table and its indexes and drops the old ones,
   so no old version, no deleted row and no old xmin survives in the data
   directory. CLUSTER alone would not do: it keeps each row's xmin.
3. **Age the WAL out** (:func:`flush_wal`): CHECKPOINT, ``pg_switch_wal()``,
   CHECKPOINT, so the segments holding the window's changes are no longer needed and
   are removed (``wal_recycle = off``) or recycled. Both need rights an operator
   grants (``pg_checkpoint``, EXECUTE on ``pg_switch_wal``); without them the WAL
   ages out at PostgreSQL's own pace (docs/server.md gives the settings).

It also frees the chunks of rows queued in ``freed`` (deleted without the key) and
sweeps the ``limits`` and ``failures`` rows whose time is over.

One owner across nodes: the store runs a pass only while it holds the session
advisory lock ``ORDER_LOCK``; a node's crash releases it with its connection. Every
step is its own transaction and the progress is the database's own state (``fresh``
and ``freed`` shrink as steps commit; ``layout.rewrite`` says which table is next),
so a pass cut short by a kill is finished by the next one, on any node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from . import chunks, failures
from .chunks import Connection, Seal

log = logging.getLogger("rune_proto.server")

STEP_MOVES = 128  # chunks moved in one step (one transaction)
STEP_FREED = 256  # queued deletions freed in one step
ORDER_LOCK = 0x72756E65_6F726472  # pg_try_advisory_lock key of the pass: "rune", "ordr"

# The tables written back in key order, and their keys. ``chunks`` is not among them:
# its rows are sealed, and moved by step 1.
REWRITTEN = (
    ("mailbox", "receiver, id"),
    ("accounts", "address"),
    ("usage", "receiver"),
    ("invitations", "token_hash"),
    ("holds", "address"),
    ("limits", "key"),
    ("failures", "kind, key"),
    ("freed", "receiver, id"),
    ("fresh", "slot"),
    ("layout", "name"),
)

Randbelow = Callable[[int], int]


@dataclass
class OrderProgress:
    chunks_moved: int = 0
    freed: int = 0
    tables_rewritten: int = 0
    steps: int = 0
    wal_flushed: bool = False
    done: bool = False
    queue: list[int] | None = None  # the fresh slots in the random order they are moved


async def due(conn: Connection) -> bool:
    """Whether a pass has work: a change since the last one began, or one cut short."""
    return bool(
        await conn.fetchval(
            """SELECT (SELECT value FROM layout WHERE name = 'pending') <> 0
                   OR (SELECT value FROM layout WHERE name = 'rewrite') <> 0
                   OR EXISTS (SELECT 1 FROM fresh) OR EXISTS (SELECT 1 FROM freed)"""
        )
    )


async def begin(conn: Connection) -> None:
    """Clear ``pending``: a change committed from now on sets it again (see covered)."""
    await conn.execute("UPDATE layout SET value = 0 WHERE name = 'pending'")


async def covered(conn: Connection) -> bool:
    """Whether the pass covered everything: nothing changed since :func:`begin`."""
    return not await conn.fetchval("SELECT value FROM layout WHERE name = 'pending'")


async def step(
    conn: Connection,
    seal: Seal,
    progress: OrderProgress,
    randbelow: Randbelow,
    *,
    now: float,
    failures_before: float | None = None,
) -> None:
    """One bounded step of the pass, in its own transaction(s); advances ``progress``."""
    moved = await free_step(conn, seal, progress) or await move_step(
        conn, seal, progress, randbelow
    )
    if not moved:
        table = int(await conn.fetchval("SELECT value FROM layout WHERE name = 'rewrite'"))
        if table == 0:
            await sweep(conn, now, failures_before)
        if table < len(REWRITTEN):
            await rewrite(conn, table)
            progress.tables_rewritten += 1
        else:
            progress.wal_flushed = await flush_wal(conn)
            await conn.execute("UPDATE layout SET value = 0 WHERE name = 'rewrite'")
            progress.done = True
    progress.steps += 1


async def free_step(conn: Connection, seal: Seal, progress: OrderProgress) -> bool:
    """Free the chunks of up to ``STEP_FREED`` queued deletions; whether there were any."""
    async with conn.transaction():
        await chunks.hold_still(conn)
        rows = await conn.fetch(
            f"""DELETE FROM freed WHERE (receiver, id) IN (SELECT receiver, id FROM freed
                ORDER BY receiver, id LIMIT {STEP_FREED} FOR UPDATE SKIP LOCKED)
                RETURNING receiver, id, slots"""
        )
        for receiver, message_id, sealed in rows:
            try:
                await chunks.free(conn, seal, str(receiver), str(message_id), bytes(sealed))
            except chunks.SealError:
                log.warning("order pass: a queued deletion did not open; its chunks stay")
    progress.freed += len(rows)
    return bool(rows)


async def move_step(
    conn: Connection, seal: Seal, progress: OrderProgress, randbelow: Randbelow
) -> bool:
    """Move up to ``STEP_MOVES`` fresh chunks, chosen at random, to new slots; whether
    there were any. Lock order as a DELETE's: the owners' mailbox rows, then chunks."""
    if not progress.queue:  # read once a pass (again after a kill), then taken in order
        progress.queue = [int(row[0]) for row in await conn.fetch("SELECT slot FROM fresh")]
        waiting = progress.queue
        for last in range(len(waiting) - 1, 0, -1):  # Fisher–Yates: a uniformly random order
            other = randbelow(last + 1)
            waiting[last], waiting[other] = waiting[other], waiting[last]
    if not progress.queue:
        return False
    batch, progress.queue = progress.queue[:STEP_MOVES], progress.queue[STEP_MOVES:]
    async with conn.transaction():  # new numbers, committed at once: next_slot stays free
        start = await chunks.take_slots(conn, len(batch))
    async with conn.transaction():
        await chunks.moving(conn)
        rows = await conn.fetch(
            "SELECT slot, data FROM chunks WHERE slot = ANY($1::bigint[])", batch
        )
        opened = {int(r[0]): seal.open_chunk(int(r[0]), bytes(r[1])) for r in rows}
        owners = sorted({(o.receiver, o.message_id) for o, _ in opened.values()})
        lists = {
            (str(r[0]), str(r[1])): seal.open_slots(str(r[0]), str(r[1]), bytes(r[2]))
            for r in await conn.fetch(
                """SELECT receiver, id, slots FROM mailbox
                   WHERE (receiver, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                   ORDER BY receiver, id FOR UPDATE""",
                [o[0] for o in owners],
                [o[1] for o in owners],
            )
        }
        # Rows deleted meanwhile (their owner gone, or the chunk freed) are not moved.
        still = {
            int(r[0])
            for r in await conn.fetch(
                "SELECT slot FROM chunks WHERE slot = ANY($1::bigint[]) FOR UPDATE",
                list(opened),
            )
        }
        records: list[tuple[int, bytes]] = []
        for offset, slot in enumerate(batch):
            if slot not in opened or slot not in still:
                continue
            owner, piece = opened[slot]
            slots = lists.get((owner.receiver, owner.message_id))
            if slots is None or owner.seq >= len(slots) or slots[owner.seq] != slot:
                continue  # a chunk whose message is gone (or a stale copy): freed below
            slots[owner.seq] = start + offset
            records.append((start + offset, seal.seal_chunk(start + offset, owner, piece)))
        await conn.execute("DELETE FROM chunks WHERE slot = ANY($1::bigint[])", batch)
        await conn.copy_records_to_table("chunks", records=records, columns=("slot", "data"))
        await conn.executemany(
            "UPDATE mailbox SET slots = $3 WHERE receiver = $1 AND id = $2",
            [(r, i, seal.seal_slots(r, i, slots)) for (r, i), slots in lists.items()],
        )
        await conn.execute("DELETE FROM fresh WHERE slot = ANY($1::bigint[])", batch)
    progress.chunks_moved += len(records)
    return True


async def rewrite(conn: Connection, table: int) -> None:
    """Write table number ``table`` of REWRITTEN again, in key order, into new files.

    First the rows are deleted and inserted again in key order, in one transaction
    holding the table's EXCLUSIVE lock (writes to it wait, reads go on: both see the
    old rows or the new, as MVCC promises). Then ``VACUUM FULL`` copies the live rows
    — one xmin, key order — into new files for the table and its indexes, and drops
    the old ones with every old version in them (ACCESS EXCLUSIVE while it copies).
    TRUNCATE would be one step, but it is not MVCC-safe: a reader whose snapshot
    predates it sees the table empty (found by test_store_parity.py).
    """
    name, key = REWRITTEN[table]
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {name} IN EXCLUSIVE MODE")
        await conn.execute(
            f"CREATE TEMPORARY TABLE rune_rewrite ON COMMIT DROP AS SELECT * FROM {name}"
        )
        await conn.execute(f"DELETE FROM {name}")
        await conn.execute(f"INSERT INTO {name} SELECT * FROM rune_rewrite ORDER BY {key}")
    await conn.execute(f"VACUUM (FULL) {name}")
    await conn.execute("UPDATE layout SET value = $1 WHERE name = 'rewrite'", table + 1)


async def sweep(conn: Connection, now: float, failures_before: float | None) -> None:
    """Drop abuse-limit counters whose window ended and throttle counts forgotten."""
    async with conn.transaction():
        await conn.execute("DELETE FROM limits WHERE ends <= $1", int(now))
        if failures_before is not None:
            await failures.sweep(conn, failures_before)


async def flush_wal(conn: Connection) -> bool:
    """CHECKPOINT, switch to a new WAL segment, CHECKPOINT: the window's segments are
    then past the redo point and go. Whether the role was allowed to, and the
    segments are removed rather than recycled (a recycled one keeps its old records
    until new ones overwrite it: measured, docs/server.md)."""
    try:
        await conn.execute("CHECKPOINT")
        await conn.execute("SELECT pg_switch_wal()")
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        return False
    return str(await conn.fetchval("SELECT current_setting('wal_recycle')")) == "off"


async def run_pass(
    conn: Connection,
    seal: Seal,
    randbelow: Randbelow,
    *,
    now: float,
    failures_before: float | None = None,
) -> OrderProgress:
    """A whole pass at once under the advisory lock (tests and tools); None-safe.

    Raises :class:`PassBusy` when another node holds the lock.
    """
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ORDER_LOCK):
        raise PassBusy("another node is running the order pass")
    try:
        await begin(conn)
        progress = OrderProgress()
        while not progress.done:
            await step(conn, seal, progress, randbelow, now=now, failures_before=failures_before)
        return progress
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ORDER_LOCK)


class PassBusy(Exception):
    """Another node holds the order pass."""
