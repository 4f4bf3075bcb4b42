"""The order pass on PostgreSQL (first version: slot shuffle and hole filling only).

As compaction.py on SQLite: new chunks are appended at the end of the slot array and
deleted ones leave holes; a pass fills the holes with the last chunks and gives
every chunk appended since the last pass a uniformly random slot, by the same
inside-out Fisher–Yates as slots.py (a swap of two rows' contents; the mailbox
rows' slot lists follow). Steps are bounded (``STEP_SWAPS`` moves, one
transaction each), so the nodes' commits run between them.

One owner across nodes: the store runs a pass only while it holds the session
advisory lock ``ORDER_LOCK`` (store.py); a node that does not get it tries again
later. Progress lives in ``layout`` (``shuffled``, ``next_slot``), so a pass cut
short by a crash goes on from there, on whichever node runs the next one.

Not done yet (helper C owns this module): where PostgreSQL physically puts a row
version (MVCC, the free space map) is not where its slot number says; the small
tables are not rewritten; VACUUM's part is not considered. See docs/server.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import chunks
from .chunks import Connection

STEP_SWAPS = 256  # chunk moves in one step
ORDER_LOCK = 0x72756E65_6F726472  # pg_try_advisory_lock key of the pass: "rune", "ordr"

Randbelow = Callable[[int], int]


@dataclass
class OrderProgress:
    chunks_placed: int = 0
    steps: int = 0
    done: bool = False


async def due(conn: Connection) -> bool:
    """Whether a pass has work: a change since the last one began, or one cut short."""
    return bool(
        await conn.fetchval(
            """SELECT (SELECT value FROM layout WHERE name = 'pending') <> 0
                   OR (SELECT value FROM layout WHERE name = 'shuffled')
                      < (SELECT value FROM layout WHERE name = 'next_slot')
                   OR EXISTS (SELECT 1 FROM holes)"""
        )
    )


async def begin(conn: Connection) -> None:
    """Clear ``pending``: a change committed from now on sets it again (see finish)."""
    await conn.execute("UPDATE layout SET value = 0 WHERE name = 'pending'")


async def covered(conn: Connection) -> bool:
    """Whether the pass covered everything: nothing changed since :func:`begin`."""
    return not await conn.fetchval("SELECT value FROM layout WHERE name = 'pending'")


async def step(conn: Connection, progress: OrderProgress, randbelow: Randbelow) -> None:
    """One bounded step in its own transaction; advances ``progress``."""
    async with conn.transaction():
        # the lock order of transactions.py: moves, then next_slot (commits take it last)
        await chunks.moving(conn)
        top = int(
            await conn.fetchval("SELECT value FROM layout WHERE name = 'next_slot' FOR UPDATE")
        )
        moves, top, holes_left = await _fill_holes(conn, top, STEP_SWAPS)
        shuffled = int(await conn.fetchval("SELECT value FROM layout WHERE name = 'shuffled'"))
        start = min(shuffled, top)
        stop = start if holes_left else min(top, start + max(0, STEP_SWAPS - moves))
        pairs = [(i, j) for i in range(start, stop) if (j := randbelow(i + 1)) != i]
        if pairs:
            await conn.executemany(
                """UPDATE chunks AS c SET receiver = o.receiver, id = o.id, seq = o.seq,
                       data = o.data
                   FROM chunks AS o WHERE (c.slot, o.slot) IN (($1, $2), ($2, $1))""",
                pairs,
            )
            await _rebuild_owners(conn, sorted({s for pair in pairs for s in pair}))
        await conn.execute("UPDATE layout SET value = $1 WHERE name = 'shuffled'", stop)
        progress.chunks_placed += moves + (stop - start)
        progress.done = not holes_left and stop == top
    progress.steps += 1


async def _fill_holes(conn: Connection, top: int, budget: int) -> tuple[int, int, bool]:
    """Move the last chunk into the lowest hole, up to ``budget`` times: (moves, the new
    end of the array, whether holes are left). Holes at the end just shorten it."""
    moves = 0
    while True:
        last = await conn.fetchval("SELECT max(slot) FROM chunks WHERE slot < $1", top)
        top = 0 if last is None else int(last) + 1  # free slots at the end: just dropped
        await conn.execute("DELETE FROM holes WHERE slot >= $1", top)
        hole = await conn.fetchval("SELECT min(slot) FROM holes")
        if hole is None or moves >= budget:
            await conn.execute("UPDATE layout SET value = $1 WHERE name = 'next_slot'", top)
            return moves, top, hole is not None
        await conn.execute("DELETE FROM holes WHERE slot = $1", hole)
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM chunks WHERE slot = $1)", hole):
            await conn.execute("UPDATE chunks SET slot = $1 WHERE slot = $2", hole, top - 1)
            await _rebuild_owners(conn, [hole])
            top -= 1
            moves += 1


async def _rebuild_owners(conn: Connection, slots: list[int]) -> None:
    """Write again the slot lists of the messages that own chunks in ``slots``."""
    await conn.execute(
        """UPDATE mailbox AS m SET slots = s.slots
           FROM (SELECT c.receiver, c.id, array_agg(c.slot ORDER BY c.seq) AS slots
                 FROM chunks AS c
                 WHERE (c.receiver, c.id) IN
                     (SELECT receiver, id FROM chunks WHERE slot = ANY($1::bigint[]))
                 GROUP BY c.receiver, c.id) AS s
           WHERE m.receiver = s.receiver AND m.id = s.id""",
        slots,
    )
